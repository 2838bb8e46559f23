//! Storage for huddle: sqlx repositories over SQLite (default) or PostgreSQL.
//!
//! One SQL dialect serves both engines through sqlx's `Any` driver: ids are UUID
//! text, times are epoch milliseconds (`BIGINT`), booleans are `BOOLEAN`, and
//! placeholders are `$n`. Each engine has its own migration directory so that the
//! schemas may diverge where an engine needs it. The store holds no business
//! rules: it answers questions and applies changes exactly as asked.

mod channels;
mod chat_writer;
mod chats;
mod comet;
mod db;
mod error;
mod records;
pub mod sessions;
mod users;
mod workspaces;

pub use chat_writer::{ChannelGrant, ChatGate, StoredChat, MAX_BATCH as MAX_CHAT_BATCH};
pub use comet::QueuedMessage;
pub use db::{Db, DbOptions, Engine};
pub use error::StoreError;
pub use records::*;

/// Milliseconds since the Unix epoch, the unit of every stored time.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
