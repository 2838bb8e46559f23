//! Group commit for new chats.
//!
//! Every new chat goes through a writer task ("lane") instead of a transaction
//! of its own. A lane takes what has queued up while its previous transaction
//! ran (up to [`MAX_BATCH`]) and stores it in one transaction: one sequence
//! increment per channel, one multi-row insert, one read-position upsert per
//! (channel, sender). The cost of a commit is shared by the whole batch, and
//! writers never contend for SQLite's write lock among themselves.
//!
//! Guarantees:
//! - ids stay gap-free and unique per channel: a channel's ids for a batch are
//!   taken from its sequence in the same transaction that inserts the rows;
//! - a channel always maps to the same lane, so its chats are numbered in the
//!   order they reached the lane;
//! - a caller's reply comes only after its row is committed;
//! - a chat with a [`ChatGate`] is stored only if its sender may post there,
//!   checked in the transaction that stores it (one query for the batch): no
//!   membership change can fall between the check and the insert;
//! - when a batch fails, each of its chats is retried in a transaction of its
//!   own, so one bad chat (a sender deleted meanwhile) fails alone;
//! - the queue in front of each lane is bounded ([`QUEUE`]): callers wait for
//!   room rather than growing memory.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::db::begin_write;
use crate::{ChatRecord, Engine, StoreError};

/// Most chats stored in one transaction.
pub const MAX_BATCH: usize = 256;
/// Chats waiting in front of one lane before callers wait for room.
const QUEUE: usize = 1024;
/// Rows per multi-row statement (6 parameters each, far below both engines'
/// parameter limits).
const ROWS_PER_STATEMENT: usize = 128;

/// A chat to store.
#[derive(Debug)]
pub(crate) struct NewChat {
    pub channel_id: String,
    pub kind: String,
    pub content: String,
    pub sender_id: String,
    pub now: i64,
    pub gate: Option<ChatGate>,
}

/// Who may post a chat: checked with the batch, in its transaction.
#[derive(Debug, Clone)]
pub struct ChatGate {
    /// The channel must belong to this workspace.
    pub within: Option<String>,
    /// The caller's rule: whether this sender may post in this channel.
    pub allow: fn(&ChannelGrant<'_>) -> bool,
}

/// What a sender is to a channel, as the gate sees it.
#[derive(Debug)]
pub struct ChannelGrant<'a> {
    pub user_id: &'a str,
    pub workspace_id: &'a str,
    pub is_private: bool,
    pub creator_id: &'a str,
    /// `None`: not a member of the channel's workspace.
    pub workspace_role: Option<&'a str>,
    /// `None`: not an explicit member of the channel.
    pub channel_role: Option<&'a str>,
}

/// A stored chat and its channel's workspace.
#[derive(Debug, Clone)]
pub struct StoredChat {
    pub record: ChatRecord,
    pub workspace_id: String,
}

type Reply = oneshot::Sender<Result<Option<StoredChat>, StoreError>>;

struct Pending {
    chat: NewChat,
    reply: Reply,
}

/// The senders of a pool's lanes; cheap to clone.
#[derive(Clone)]
pub(crate) struct ChatWriter {
    lanes: Vec<mpsc::Sender<Pending>>,
}

impl std::fmt::Debug for ChatWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatWriter")
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

impl ChatWriter {
    /// Starts `lanes` writer tasks on `pool`. Each ends when every
    /// [`ChatWriter`] clone is dropped.
    pub(crate) fn start(pool: &AnyPool, engine: Engine, lanes: usize) -> ChatWriter {
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(pool.clone(), engine, rx));
                tx
            })
            .collect();
        ChatWriter { lanes }
    }

    /// Stores `chat` with its channel's next id. `None`: no such channel, or
    /// its gate refused the sender.
    pub(crate) async fn insert(&self, chat: NewChat) -> Result<Option<StoredChat>, StoreError> {
        let mut h = DefaultHasher::new();
        chat.channel_id.hash(&mut h);
        let lane = &self.lanes[(h.finish() % self.lanes.len() as u64) as usize];
        let (reply, answer) = oneshot::channel();
        lane.send(Pending { chat, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the chat writer has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the chat writer has stopped"))?
    }
}

async fn run(pool: AnyPool, engine: Engine, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = {
            let chats: Vec<&NewChat> = batch.iter().map(|p| &p.chat).collect();
            write(&pool, engine, &chats).await
        };
        match result {
            Ok(records) => {
                for (p, r) in batch.drain(..).zip(records) {
                    // The caller may have gone away; its chat is stored regardless.
                    let _ = p.reply.send(Ok(r));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(p) = batch.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, chats = batch.len(), "chat batch failed; retrying one by one");
                for p in batch.drain(..) {
                    let r = write(&pool, engine, &[&p.chat])
                        .await
                        .map(|mut v| v.pop().flatten());
                    let _ = p.reply.send(r);
                }
            }
        }
    }
}

/// Which of `chats` their gate lets through (those without a gate pass),
/// read in `tx`: one query per [`ROWS_PER_STATEMENT`] (channel, sender) pairs.
async fn admitted(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chats: &[&NewChat],
) -> Result<Vec<bool>, StoreError> {
    let mut pairs: Vec<(&str, &str)> = chats
        .iter()
        .filter(|c| c.gate.is_some())
        .map(|c| (c.channel_id.as_str(), c.sender_id.as_str()))
        .collect();
    if pairs.is_empty() {
        return Ok(vec![true; chats.len()]);
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut rows: Vec<AnyRow> = Vec::with_capacity(pairs.len());
    for part in pairs.chunks(ROWS_PER_STATEMENT) {
        // VALUES columns are `column1`, `column2` on both engines.
        let sql = format!(
            "SELECT s.column1 AS cid, s.column2 AS uid, c.workspace_id, c.is_private, c.creator_id,
                    wm.role AS workspace_role, cm.role AS channel_role
             FROM ({}) AS s
             JOIN channels c ON c.id = s.column1
             LEFT JOIN workspace_members wm ON wm.workspace_id = c.workspace_id AND wm.user_id = s.column2
             LEFT JOIN channel_members cm ON cm.channel_id = c.id AND cm.user_id = s.column2",
            values_sql("VALUES ", part.len(), 2, "")
        );
        let mut q = sqlx::query(&sql);
        for (channel, user) in part {
            q = q.bind(*channel).bind(*user);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    // (channel, sender) → workspace, is_private, creator, workspace role, channel role.
    type Found = (String, bool, String, Option<String>, Option<String>);
    // Keyed by the pair borrowed from the batch: no copy per chat.
    let mut found: HashMap<(&str, &str), Found> = HashMap::new();
    for r in &rows {
        let (cid, uid): (String, String) = (r.try_get("cid")?, r.try_get("uid")?);
        let Ok(i) = pairs.binary_search(&(cid.as_str(), uid.as_str())) else {
            continue;
        };
        found.insert(
            pairs[i],
            (
                r.try_get("workspace_id")?,
                r.try_get::<i64, _>("is_private")? != 0,
                r.try_get("creator_id")?,
                r.try_get("workspace_role")?,
                r.try_get("channel_role")?,
            ),
        );
    }
    Ok(chats
        .iter()
        .map(|c| {
            let Some(gate) = &c.gate else { return true };
            let key = (c.channel_id.as_str(), c.sender_id.as_str());
            let Some((workspace_id, is_private, creator_id, ws_role, ch_role)) = found.get(&key)
            else {
                return false;
            };
            gate.within.as_ref().is_none_or(|w| w == workspace_id)
                && (gate.allow)(&ChannelGrant {
                    user_id: &c.sender_id,
                    workspace_id,
                    is_private: *is_private,
                    creator_id,
                    workspace_role: ws_role.as_deref(),
                    channel_role: ch_role.as_deref(),
                })
        })
        .collect())
}

/// Stores `chats` in one transaction; the result is in input order (`None`:
/// that chat's channel does not exist, or its gate refused it).
async fn write(
    pool: &AnyPool,
    engine: Engine,
    chats: &[&NewChat],
) -> Result<Vec<Option<StoredChat>>, StoreError> {
    // It reads (the gate) before it writes: an immediate transaction on SQLite.
    let mut tx = begin_write(pool, engine).await?;
    let admitted = admitted(&mut tx, chats).await?;
    // Group by channel, keeping arrival order inside each channel.
    let mut by_channel: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, c) in chats.iter().enumerate() {
        if !admitted[i] {
            continue;
        }
        match by_channel.iter_mut().find(|(ch, _)| *ch == c.channel_id) {
            Some((_, idx)) => idx.push(i),
            None => by_channel.push((&c.channel_id, vec![i])),
        }
    }
    let mut ids: Vec<Option<i64>> = vec![None; chats.len()];
    let mut workspaces: Vec<Option<String>> = vec![None; chats.len()];
    for (channel, idx) in &by_channel {
        let n = idx.len() as i64;
        let row: Option<(i64, String)> = sqlx::query_as(
            "UPDATE channels SET last_chat_id = last_chat_id + $2 WHERE id = $1
             RETURNING last_chat_id, workspace_id",
        )
        .bind(*channel)
        .bind(n)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((last, workspace)) = row {
            for (k, &i) in idx.iter().enumerate() {
                ids[i] = Some(last - n + 1 + k as i64);
                workspaces[i] = Some(workspace.clone());
            }
        }
    }
    let stored: Vec<(usize, i64)> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| id.map(|id| (i, id)))
        .collect();
    for part in stored.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO chats (channel_id, id, type, content, sender_id, created_at, updated_at) VALUES ",
            part.len(),
            7,
            "",
        );
        let mut q = sqlx::query(&sql);
        for &(i, id) in part {
            let c = chats[i];
            q = q
                .bind(&c.channel_id)
                .bind(id)
                .bind(&c.kind)
                .bind(&c.content)
                .bind(&c.sender_id)
                .bind(c.now)
                .bind(c.now);
        }
        q.execute(&mut *tx).await?;
    }
    // The sender has read their own chat: one upsert per (channel, sender),
    // with the highest id (one statement may not touch a row twice).
    let mut reads: HashMap<(&str, &str), i64> = HashMap::new();
    for &(i, id) in &stored {
        let e = reads
            .entry((&chats[i].channel_id, &chats[i].sender_id))
            .or_insert(id);
        *e = (*e).max(id);
    }
    let reads: Vec<_> = reads.into_iter().collect();
    for part in reads.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            "INSERT INTO channel_reads (channel_id, user_id, last_read_chat_id) VALUES ",
            part.len(),
            3,
            " ON CONFLICT (channel_id, user_id) DO UPDATE SET last_read_chat_id = excluded.last_read_chat_id
              WHERE channel_reads.last_read_chat_id < excluded.last_read_chat_id",
        );
        let mut q = sqlx::query(&sql);
        for ((channel, user), id) in part {
            q = q.bind(*channel).bind(*user).bind(*id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(chats
        .iter()
        .zip(ids.into_iter().zip(workspaces))
        .map(|(c, stored)| match stored {
            (Some(id), Some(workspace_id)) => Some(StoredChat {
                record: ChatRecord {
                    channel_id: c.channel_id.clone(),
                    id,
                    kind: c.kind.clone(),
                    content: c.content.clone(),
                    sender_id: c.sender_id.clone(),
                    created_at: c.now,
                    updated_at: c.now,
                    deleted_at: None,
                },
                workspace_id,
            }),
            _ => None,
        })
        .collect())
}

/// `head` followed by `rows` groups of `cols` numbered placeholders, then `tail`:
/// `INSERT ... VALUES ($1, $2), ($3, $4) ...`.
fn values_sql(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 5);
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::values_sql;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", 2, 2, " RETURNING a"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
        assert_eq!(values_sql("V ", 1, 3, ""), "V ($1, $2, $3)");
    }
}
