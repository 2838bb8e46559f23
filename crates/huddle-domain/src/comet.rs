//! Comet pipes (seed 003, SPEC §5): the tenant (dev id), pipe and user rules,
//! authentication by stored hash or JWT, the private `msg` queue, pipe
//! history, presence edges. Transport-free: the websocket front door parses
//! frames and calls these; the backend API (HTTP now, CometQL later) calls the
//! same methods.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Domain, DomainError, DomainEvent, DomainResult};

/// Most pipes one `subscription` may name.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// Longest pipe or event name.
pub const MAX_NAME: usize = 64;
/// Longest kept history per pipe.
pub const MAX_HISTORY: usize = 99;
/// Longest user auth hash.
pub const MAX_HASH: usize = 32;

/// Comet settings.
#[derive(Debug, Clone)]
pub struct CometConfig {
    /// The server password: the backend API's credential, and with the dev id the JWT secret.
    pub password: String,
    /// Live connections per (dev id, user) (16).
    pub max_connections_per_user: usize,
    /// Private messages queued per offline user (1000); past it, sends are refused.
    pub queue_max: i64,
}

impl Default for CometConfig {
    fn default() -> Self {
        CometConfig {
            password: String::new(),
            max_connections_per_user: 16,
            queue_max: 1000,
        }
    }
}

/// A message kept in a pipe's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipeMessage {
    pub event: String,
    pub data: serde_json::Value,
    pub user_id: i64,
    /// Unix seconds.
    pub time: i64,
}

/// Node-local comet state: live connection counts and pipe histories.
/// Std mutexes, never held across `.await`; both maps are bounded — counts by
/// live connections, histories by the pipes an operator enabled (≤99 each).
#[derive(Default)]
pub struct CometState {
    online: Mutex<HashMap<(String, i64), usize>>,
    history_len: Mutex<HashMap<(String, String), usize>>,
    history: Mutex<HashMap<(String, String), VecDeque<PipeMessage>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `name` is a valid pipe or event name: 1..=64 of `[A-Za-z0-9_-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a dev id: the tenant key, `[A-Za-z0-9_-]{1,64}`.
pub fn valid_dev_id(dev: &str) -> bool {
    valid_name(dev)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Deserialize)]
struct CometClaims {
    user_id: serde_json::Value,
}

/// Who a publication on a web pipe comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Anonymous,
    User(i64),
}

impl Domain {
    pub fn comet_config(&self) -> &CometConfig {
        &self.cfg.comet
    }

    /// Loads the pipes with history enabled (at start).
    pub async fn comet_load_settings(&self) -> DomainResult<()> {
        let rows = self.db.comet_history_settings().await?;
        let mut map = lock(&self.comet.history_len);
        for (dev, pipe, len) in rows {
            map.insert(
                (dev, pipe),
                usize::try_from(len).unwrap_or(0).min(MAX_HISTORY),
            );
        }
        Ok(())
    }

    /// Whether `key` authenticates `user` of tenant `dev` for a connection
    /// from `client` (its address; `None` when the listener does not know it).
    ///
    /// Guessing is bounded: failed authorisations are counted per client
    /// address (`limits.comet_auth_ip_failures`) and per (dev id, user id)
    /// (`limits.comet_auth_user_failures`) within `limits.comet_auth_window`.
    /// Past either bound the key is not checked at all and the connection is
    /// anonymous, exactly as with a wrong key (comet clients have no other
    /// answer for a bad hash: they connect, with `authorized: false`), counted
    /// as `Refusal::CometAuthRate`. A guesser learns nothing, and gets no
    /// faster than the bound.
    pub async fn comet_authenticate(
        &self,
        dev: &str,
        user: i64,
        key: &str,
        client: Option<&str>,
    ) -> DomainResult<bool> {
        if user <= 0 || key.is_empty() {
            return Ok(false);
        }
        let pair = format!("{dev}\n{user}");
        let over = client.is_some_and(|c| self.comet_auth_by_ip.check(c).is_err())
            || self.comet_auth_by_user.check(&pair).is_err();
        if over {
            self.refusals.count(huddle_core::Refusal::CometAuthRate);
            return Ok(false);
        }
        let ok = self.comet_key_is_valid(dev, user, key).await?;
        if !ok {
            if let Some(c) = client {
                self.comet_auth_by_ip.record(c);
            }
            self.comet_auth_by_user.record(&pair);
        }
        Ok(ok)
    }

    /// The stored hash, or an HS256 JWT signed with `password + dev` naming
    /// the user and not revoked.
    async fn comet_key_is_valid(&self, dev: &str, user: i64, key: &str) -> DomainResult<bool> {
        if let Some(hash) = self.db.comet_auth(dev, user).await? {
            if !hash.is_empty() && hash == key {
                return Ok(true);
            }
        }
        if key.matches('.').count() != 2 {
            return Ok(false);
        }
        let secret = format!("{}{}", self.cfg.comet.password, dev);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let Ok(data) = decode::<CometClaims>(
            key,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        ) else {
            return Ok(false);
        };
        let claimed = match &data.claims.user_id {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        };
        if claimed != Some(user) {
            return Ok(false);
        }
        Ok(!self.db.comet_is_revoked(dev, &token_hash(key)).await?)
    }

    /// Registers an authorised connection. Returns whether it is the user's first
    /// (an online edge); refuses the connection past the per-user limit.
    pub async fn comet_connected(&self, dev: &str, user: i64) -> DomainResult<bool> {
        let first = {
            let mut online = lock(&self.comet.online);
            let n = online.entry((dev.to_owned(), user)).or_insert(0);
            if *n >= self.cfg.comet.max_connections_per_user {
                return Err(DomainError::Conflict(format!(
                    "too many connections for this user (at most {})",
                    self.cfg.comet.max_connections_per_user
                )));
            }
            *n += 1;
            *n == 1
        };
        if first {
            self.db.comet_set_time(dev, user, 0).await?;
            self.comet_status_edge(dev, user, "online").await;
        }
        Ok(first)
    }

    /// Unregisters an authorised connection; the last one is an offline edge.
    pub async fn comet_disconnected(&self, dev: &str, user: i64) -> DomainResult<()> {
        let last = {
            let mut online = lock(&self.comet.online);
            let key = (dev.to_owned(), user);
            match online.get_mut(&key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    online.remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            self.db.comet_set_time(dev, user, unix_now()).await?;
            self.comet_status_edge(dev, user, "offline").await;
        }
        Ok(())
    }

    async fn comet_status_edge(&self, dev: &str, user: i64, status: &str) {
        self.emit(DomainEvent::CometPipe {
            dev_id: dev.into(),
            pipe: format!("user_status_{user}"),
            event: status.into(),
            data: serde_json::Value::from(status),
            user_id: 0,
            origin: None,
        })
        .await;
    }

    /// Live authorised connections of a user on this node.
    pub fn comet_connections(&self, dev: &str, user: i64) -> usize {
        lock(&self.comet.online)
            .get(&(dev.to_owned(), user))
            .copied()
            .unwrap_or(0)
    }

    /// Publishes to a pipe (history kept when enabled). `origin`: the sending
    /// connection, which does not receive its own message.
    pub async fn comet_publish(
        &self,
        dev: &str,
        pipe: &str,
        event: &str,
        data: serde_json::Value,
        user_id: i64,
        origin: Option<String>,
    ) -> DomainResult<()> {
        if !valid_name(pipe) {
            return Err(DomainError::invalid(
                "pipe",
                "pipe names are 1..64 of [A-Za-z0-9_-]",
            ));
        }
        if !valid_name(event) {
            return Err(DomainError::invalid(
                "event",
                "event names are 1..64 of [A-Za-z0-9_-]",
            ));
        }
        let key = (dev.to_owned(), pipe.to_owned());
        if let Some(len) = lock(&self.comet.history_len)
            .get(&key)
            .copied()
            .filter(|l| *l > 0)
        {
            let mut history = lock(&self.comet.history);
            let q = history.entry(key).or_default();
            q.push_back(PipeMessage {
                event: event.into(),
                data: data.clone(),
                user_id,
                time: unix_now(),
            });
            while q.len() > len {
                q.pop_front();
            }
        }
        self.emit(DomainEvent::CometPipe {
            dev_id: dev.into(),
            pipe: pipe.into(),
            event: event.into(),
            data,
            user_id,
            origin,
        })
        .await;
        Ok(())
    }

    /// A client's `web_pipe2`: only `web_`, `@web_` (published anonymously) and
    /// `webauth_` (authorised senders) pipes. Returns the pipe it went to.
    pub async fn comet_web_publish(
        &self,
        dev: &str,
        pipe: &str,
        event: &str,
        message: &str,
        sender: Sender,
        origin: String,
    ) -> DomainResult<String> {
        let (pipe, user_id) = if let Some(rest) = pipe.strip_prefix('@') {
            if !rest.starts_with("web_") {
                return Err(DomainError::Forbidden(
                    "only web_ pipes can be written anonymously with @",
                ));
            }
            (rest, 0)
        } else if pipe.starts_with("webauth_") {
            match sender {
                Sender::User(id) => (pipe, id),
                Sender::Anonymous => {
                    return Err(DomainError::Forbidden(
                        "webauth_ pipes need an authorised sender",
                    ))
                }
            }
        } else if pipe.starts_with("web_") {
            (
                pipe,
                match sender {
                    Sender::User(id) => id,
                    Sender::Anonymous => 0,
                },
            )
        } else {
            return Err(DomainError::Forbidden(
                "clients may only write to web_, @web_ and webauth_ pipes",
            ));
        };
        self.comet_publish(
            dev,
            pipe,
            event,
            serde_json::Value::from(message),
            user_id,
            Some(origin),
        )
        .await?;
        Ok(pipe.to_owned())
    }

    /// A pipe's stored history, oldest first.
    pub fn comet_history(&self, dev: &str, pipe: &str) -> Vec<PipeMessage> {
        lock(&self.comet.history)
            .get(&(dev.to_owned(), pipe.to_owned()))
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn comet_clear_history(&self, dev: &str, pipe: &str) {
        lock(&self.comet.history).remove(&(dev.to_owned(), pipe.to_owned()));
    }

    /// Enables (1..=99) or disables (0) a pipe's history.
    pub async fn comet_set_history_length(
        &self,
        dev: &str,
        pipe: &str,
        length: i64,
    ) -> DomainResult<()> {
        if !valid_name(pipe) {
            return Err(DomainError::invalid(
                "pipe",
                "pipe names are 1..64 of [A-Za-z0-9_-]",
            ));
        }
        let Ok(len) = usize::try_from(length) else {
            return Err(DomainError::invalid("length", "length must be 0..99"));
        };
        if len > MAX_HISTORY {
            return Err(DomainError::invalid("length", "length must be 0..99"));
        }
        self.db.comet_set_history(dev, pipe, length).await?;
        let key = (dev.to_owned(), pipe.to_owned());
        if len == 0 {
            lock(&self.comet.history_len).remove(&key);
            lock(&self.comet.history).remove(&key);
        } else {
            lock(&self.comet.history_len).insert(key.clone(), len);
            if let Some(q) = lock(&self.comet.history).get_mut(&key) {
                while q.len() > len {
                    q.pop_front();
                }
            }
        }
        Ok(())
    }

    pub fn comet_history_length(&self, dev: &str, pipe: &str) -> usize {
        lock(&self.comet.history_len)
            .get(&(dev.to_owned(), pipe.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Sends to a user's private `msg` pipe: to every live connection, or queued
    /// when there is none. Returns (connections reached, queued). A full queue
    /// refuses the message (409) rather than dropping one.
    pub async fn comet_send_to_user(
        &self,
        dev: &str,
        user: i64,
        event: &str,
        message: serde_json::Value,
    ) -> DomainResult<(usize, bool)> {
        if !valid_name(event) {
            return Err(DomainError::invalid(
                "event",
                "event names are 1..64 of [A-Za-z0-9_-]",
            ));
        }
        let live = self.comet_connections(dev, user);
        if live > 0 {
            self.emit(DomainEvent::CometUserMessage {
                dev_id: dev.into(),
                user_id: user,
                event: event.into(),
                data: message,
            })
            .await;
            return Ok((live, false));
        }
        let text = message.to_string();
        if self
            .db
            .comet_queue_push(
                dev,
                user,
                event,
                &text,
                unix_now(),
                self.cfg.comet.queue_max,
            )
            .await?
        {
            Ok((0, true))
        } else {
            Err(DomainError::Conflict(format!(
                "the user's queue is full ({} messages)",
                self.cfg.comet.queue_max
            )))
        }
    }

    /// Takes the user's queued private messages (for a new authorised connection).
    pub async fn comet_take_queue(
        &self,
        dev: &str,
        user: i64,
    ) -> DomainResult<Vec<huddle_store::QueuedMessage>> {
        Ok(self.db.comet_queue_take(dev, user).await?)
    }

    pub async fn comet_queue(
        &self,
        dev: &str,
        user: i64,
    ) -> DomainResult<Vec<huddle_store::QueuedMessage>> {
        Ok(self.db.comet_queue(dev, user).await?)
    }

    pub async fn comet_clear_queue(&self, dev: &str, user: i64) -> DomainResult<()> {
        Ok(self.db.comet_queue_clear(dev, user).await?)
    }

    /// Sets a user's auth hash (1..=32 of `[0-9A-Za-z=+/_]`).
    pub async fn comet_set_auth(&self, dev: &str, user: i64, hash: &str) -> DomainResult<()> {
        let ok = !hash.is_empty()
            && hash.len() <= MAX_HASH
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=+/_".contains(&b));
        if !ok {
            return Err(DomainError::invalid(
                "hash",
                "hash must be 1..32 of [0-9A-Za-z=+/_]",
            ));
        }
        Ok(self.db.comet_set_auth(dev, user, hash).await?)
    }

    pub async fn comet_auth_hash(&self, dev: &str, user: i64) -> DomainResult<Option<String>> {
        Ok(self.db.comet_auth(dev, user).await?)
    }

    pub async fn comet_delete_auth(&self, dev: &str, user: i64) -> DomainResult<()> {
        self.db.comet_delete_auth(dev, user).await?;
        Ok(())
    }

    /// Stores a user's data (JSON, at most 16 KiB).
    pub async fn comet_set_data(
        &self,
        dev: &str,
        user: i64,
        data: &serde_json::Value,
    ) -> DomainResult<()> {
        let text = data.to_string();
        if text.len() > 16 * 1024 {
            return Err(DomainError::invalid("data", "data must be at most 16 KiB"));
        }
        Ok(self.db.comet_set_data(dev, user, &text).await?)
    }

    pub async fn comet_data(
        &self,
        dev: &str,
        user: i64,
    ) -> DomainResult<Option<serde_json::Value>> {
        Ok(self
            .db
            .comet_data(dev, user)
            .await?
            .map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))))
    }

    pub async fn comet_delete_data(&self, dev: &str, user: i64) -> DomainResult<()> {
        self.db.comet_delete_data(dev, user).await?;
        Ok(())
    }

    /// Last-online time: 0 online now, -1 unknown, else unix seconds.
    pub async fn comet_user_time(&self, dev: &str, user: i64) -> DomainResult<i64> {
        if self.comet_connections(dev, user) > 0 {
            return Ok(0);
        }
        Ok(self.db.comet_time(dev, user).await?.unwrap_or(-1))
    }

    pub async fn comet_revoke(&self, dev: &str, token: &str) -> DomainResult<()> {
        Ok(self.db.comet_revoke(dev, &token_hash(token)).await?)
    }

    pub async fn comet_unrevoke(&self, dev: &str, token: &str) -> DomainResult<()> {
        Ok(self.db.comet_unrevoke(dev, &token_hash(token)).await?)
    }

    /// Checks the backend API credential (the comet password), in constant time.
    pub fn comet_check_password(&self, presented: &str) -> bool {
        let expected = self.cfg.comet.password.as_bytes();
        let given = presented.as_bytes();
        !expected.is_empty()
            && expected.len() == given.len()
            && expected
                .iter()
                .zip(given)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("web_chat-1"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(valid_name(&"a".repeat(64)));
        assert!(!valid_name("web chat"));
        assert!(!valid_name("web.chat"));
    }
}
