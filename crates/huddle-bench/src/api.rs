//! huddle's REST API, as far as the scenarios need it: accounts in
//! workspaces, channels, joining a call, chat history.

use futures::StreamExt;
use serde_json::{json, Value};

/// Requests in flight while setting up.
const PARALLEL: usize = 16;

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A signed-up account and the workspace it was put in.
#[derive(Clone, Debug)]
pub struct Account {
    pub token: String,
    pub workspace: String,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// One call; a 429 or 503 (a limit of the server, e.g. password hashing at
    /// its bound while thousands of accounts sign up) is retried after its
    /// `Retry-After`, as a well-behaved client does, up to a minute in all.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = r.status();
            let retry_after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let limited = status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
            if let (true, Some(secs)) = (limited, retry_after) {
                if std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_secs(secs.clamp(1, 5))).await;
                    continue;
                }
            }
            if !status.is_success() {
                return Err(format!("{path}: {status}: {v}"));
            }
            return Ok(v);
        }
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// `n` accounts; each group of `group` consecutive accounts (all of them
    /// when `group` is 0) shares a workspace that its first account created.
    pub async fn accounts(&self, n: usize, group: usize) -> Result<Vec<Account>, String> {
        let run = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let signed: Vec<Result<String, String>> = futures::stream::iter(0..n)
            .map(|i| {
                let run = run.clone();
                async move {
                    let v = self
                        .post(
                            "/api/auth/signup",
                            None,
                            json!({"email": format!("bench-{run}-{i}@bench.invalid"),
                                   "password": "bench password", "name": format!("b{i}")}),
                        )
                        .await?;
                    v["credentials"]["accessToken"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "signup answered no token".to_owned())
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;
        let signed: Vec<String> = signed.into_iter().collect::<Result<_, _>>()?;
        let group = if group == 0 { n.max(1) } else { group };
        let mut accounts = Vec::with_capacity(n);
        for chunk in signed.chunks(group) {
            let owner = &chunk[0];
            let ws = self
                .post("/api/workspaces", Some(owner), json!({"name": "bench"}))
                .await?;
            let ws = ws["id"].as_str().ok_or("no workspace id")?.to_owned();
            let code = self
                .post(
                    &format!("/api/workspaces/{ws}/invites"),
                    Some(owner),
                    json!({}),
                )
                .await?;
            let code = code["code"].as_str().ok_or("no invite code")?.to_owned();
            let joined: Vec<Result<Value, String>> = futures::stream::iter(&chunk[1..])
                .map(|t| {
                    let path = format!("/api/join/{code}");
                    async move { self.post(&path, Some(t), json!({})).await }
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
            for j in joined {
                j?;
            }
            accounts.extend(chunk.iter().map(|token| Account {
                token: token.clone(),
                workspace: ws.clone(),
            }));
        }
        Ok(accounts)
    }

    /// A public channel in the workspace; returns its id.
    pub async fn channel(
        &self,
        token: &str,
        workspace: &str,
        name: &str,
    ) -> Result<String, String> {
        let v = self
            .post(
                &format!("/api/workspaces/{workspace}/channels"),
                Some(token),
                json!({"name": name}),
            )
            .await?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("channel creation answered no id: {v}"))
    }

    /// Joins the channel's call from the device `socket_id`.
    pub async fn select(&self, token: &str, channel: &str, socket_id: &str) -> Result<(), String> {
        self.post(
            &format!("/api/channels/{channel}/select?socketId={socket_id}"),
            Some(token),
            json!({"microphone": false, "speakers": true, "screen": false, "camera": false, "speaking": false}),
        )
        .await
        .map(drop)
    }

    /// Every chat id of the channel, paging its history back from the newest.
    pub async fn chat_ids(&self, token: &str, channel: &str) -> Result<Vec<i64>, String> {
        let mut ids = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let q = before.map(|b| format!("&before={b}")).unwrap_or_default();
            let page = self
                .get(&format!("/api/channels/{channel}/chat?limit=100{q}"), token)
                .await?;
            let chats = page["chats"]
                .as_array()
                .ok_or_else(|| format!("chat history without chats: {page}"))?;
            let mut lowest = None;
            for c in chats {
                let id = c["id"].as_i64().ok_or("a chat without a numeric id")?;
                ids.push(id);
                lowest = Some(lowest.map_or(id, |l: i64| l.min(id)));
            }
            match (page["hasMore"].as_bool(), lowest) {
                (Some(true), Some(l)) => before = Some(l),
                _ => return Ok(ids),
            }
        }
    }
}
