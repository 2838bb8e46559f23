//! Chat messages and read positions.

use std::collections::HashMap;

use crate::chat_writer::{ChatGate, NewChat, StoredChat};
use crate::{ChatRecord, Db, StoreError};

impl Db {
    /// Appends a chat with the channel's next id and moves the sender's read
    /// position to it. The sequence increment and the insert commit together
    /// (grouped with other chats arriving meanwhile, see `chat_writer`), so ids
    /// are gap-free and unique under concurrent writers. Returns once committed.
    /// With a `gate`, the sender must pass it, checked in the transaction that
    /// stores the chat. `None`: no such channel, or the gate refused (callers
    /// answer both the same way: not found).
    pub async fn insert_chat(
        &self,
        channel_id: &str,
        kind: &str,
        content: &str,
        sender_id: &str,
        now: i64,
        gate: Option<ChatGate>,
    ) -> Result<Option<StoredChat>, StoreError> {
        self.chats
            .insert(NewChat {
                channel_id: channel_id.into(),
                kind: kind.into(),
                content: content.into(),
                sender_id: sender_id.into(),
                now,
                gate,
            })
            .await
    }

    pub async fn chat(&self, channel_id: &str, id: i64) -> Result<Option<ChatRecord>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM chats WHERE channel_id = $1 AND id = $2")
                .bind(channel_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` chats with id below `before`, newest first.
    pub async fn chats_before(
        &self,
        channel_id: &str,
        before: i64,
        limit: i64,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM chats WHERE channel_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(channel_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the content of a live chat; returns the updated row.
    pub async fn update_chat(
        &self,
        channel_id: &str,
        id: i64,
        content: &str,
        now: i64,
    ) -> Result<Option<ChatRecord>, StoreError> {
        sqlx::query("UPDATE chats SET content = $1, updated_at = $2 WHERE channel_id = $3 AND id = $4 AND deleted_at IS NULL")
            .bind(content)
            .bind(now)
            .bind(channel_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.chat(channel_id, id).await
    }

    /// Soft-deletes a chat: its content is erased and `deleted_at` set.
    pub async fn delete_chat(
        &self,
        channel_id: &str,
        id: i64,
        now: i64,
    ) -> Result<Option<ChatRecord>, StoreError> {
        sqlx::query("UPDATE chats SET content = '', deleted_at = $1, updated_at = $1 WHERE channel_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(channel_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.chat(channel_id, id).await
    }

    /// Marks the channel read up to its newest chat for `user_id`.
    pub async fn mark_read(&self, channel_id: &str, user_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let last: i64 = sqlx::query_scalar("SELECT last_chat_id FROM channels WHERE id = $1")
            .bind(channel_id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        upsert_read(&mut tx, channel_id, user_id, last).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The first chat after the user's read position, if any.
    pub async fn first_unread(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let read = self.read_position(channel_id, user_id).await?;
        Ok(
            sqlx::query_scalar("SELECT MIN(id) FROM chats WHERE channel_id = $1 AND id > $2")
                .bind(channel_id)
                .bind(read)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn read_position(&self, channel_id: &str, user_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT last_read_chat_id FROM channel_reads WHERE channel_id = $1 AND user_id = $2",
        )
        .bind(channel_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0))
    }

    /// For each channel of a workspace: (newest chat id, the user's read position).
    pub async fn unread_state(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<HashMap<String, (i64, i64)>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT c.id, c.last_chat_id, r.last_read_chat_id FROM channels c
             LEFT JOIN channel_reads r ON r.channel_id = c.id AND r.user_id = $2
             WHERE c.workspace_id = $1",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, last, read)| (id, (last, read.unwrap_or(0))))
            .collect())
    }
}

async fn upsert_read(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    channel_id: &str,
    user_id: &str,
    chat_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO channel_reads (channel_id, user_id, last_read_chat_id) VALUES ($1, $2, $3)
         ON CONFLICT (channel_id, user_id) DO UPDATE SET last_read_chat_id = excluded.last_read_chat_id
         WHERE channel_reads.last_read_chat_id < excluded.last_read_chat_id",
    )
    .bind(channel_id)
    .bind(user_id)
    .bind(chat_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
