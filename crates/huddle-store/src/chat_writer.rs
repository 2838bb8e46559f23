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
//! - when a batch fails, each of its chats is retried in a transaction of its
//!   own, so one bad chat (a sender deleted meanwhile) fails alone;
//! - the queue in front of each lane is bounded ([`QUEUE`]): callers wait for
//!   room rather than growing memory.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::{ChatRecord, StoreError};

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
}

type Reply = oneshot::Sender<Result<Option<ChatRecord>, StoreError>>;

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
    pub(crate) fn start(pool: &AnyPool, lanes: usize) -> ChatWriter {
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(pool.clone(), rx));
                tx
            })
            .collect();
        ChatWriter { lanes }
    }

    /// Stores `chat` with its channel's next id. `None`: no such channel.
    pub(crate) async fn insert(&self, chat: NewChat) -> Result<Option<ChatRecord>, StoreError> {
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

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = {
            let chats: Vec<&NewChat> = batch.iter().map(|p| &p.chat).collect();
            write(&pool, &chats).await
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
                    let r = write(&pool, &[&p.chat])
                        .await
                        .map(|mut v| v.pop().flatten());
                    let _ = p.reply.send(r);
                }
            }
        }
    }
}

/// Stores `chats` in one transaction; the result is in input order (`None`:
/// that chat's channel does not exist).
async fn write(pool: &AnyPool, chats: &[&NewChat]) -> Result<Vec<Option<ChatRecord>>, StoreError> {
    // Group by channel, keeping arrival order inside each channel.
    let mut by_channel: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, c) in chats.iter().enumerate() {
        match by_channel.iter_mut().find(|(ch, _)| *ch == c.channel_id) {
            Some((_, idx)) => idx.push(i),
            None => by_channel.push((&c.channel_id, vec![i])),
        }
    }
    let mut ids: Vec<Option<i64>> = vec![None; chats.len()];
    let mut tx = pool.begin().await?;
    for (channel, idx) in &by_channel {
        let n = idx.len() as i64;
        let last: Option<i64> = sqlx::query_scalar(
            "UPDATE channels SET last_chat_id = last_chat_id + $2 WHERE id = $1 RETURNING last_chat_id",
        )
        .bind(*channel)
        .bind(n)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(last) = last {
            for (k, &i) in idx.iter().enumerate() {
                ids[i] = Some(last - n + 1 + k as i64);
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
        .zip(ids)
        .map(|(c, id)| {
            id.map(|id| ChatRecord {
                channel_id: c.channel_id.clone(),
                id,
                kind: c.kind.clone(),
                content: c.content.clone(),
                sender_id: c.sender_id.clone(),
                created_at: c.now,
                updated_at: c.now,
                deleted_at: None,
            })
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
