//! Comet pipes storage: per-tenant user auth, data, times, the private queue,
//! revoked tokens and pipe history settings.

use crate::{Db, StoreError};

/// A queued private message.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedMessage {
    pub seq: i64,
    pub event: String,
    pub message: String,
    pub created_at: i64,
}

impl Db {
    async fn upsert_kv(
        &self,
        table: &str,
        column: &str,
        dev: &str,
        user: i64,
        value: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (dev_id, user_id, {column}) VALUES ($1, $2, $3)
             ON CONFLICT (dev_id, user_id) DO UPDATE SET {column} = excluded.{column}"
        );
        sqlx::query(&sql)
            .bind(dev)
            .bind(user)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_kv(
        &self,
        table: &str,
        column: &str,
        dev: &str,
        user: i64,
    ) -> Result<Option<String>, StoreError> {
        let sql = format!("SELECT {column} FROM {table} WHERE dev_id = $1 AND user_id = $2");
        Ok(sqlx::query_scalar(&sql)
            .bind(dev)
            .bind(user)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_kv(&self, table: &str, dev: &str, user: i64) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {table} WHERE dev_id = $1 AND user_id = $2");
        Ok(sqlx::query(&sql)
            .bind(dev)
            .bind(user)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn comet_set_auth(&self, dev: &str, user: i64, hash: &str) -> Result<(), StoreError> {
        self.upsert_kv("comet_users_auth", "hash", dev, user, hash)
            .await
    }
    pub async fn comet_auth(&self, dev: &str, user: i64) -> Result<Option<String>, StoreError> {
        self.get_kv("comet_users_auth", "hash", dev, user).await
    }
    pub async fn comet_delete_auth(&self, dev: &str, user: i64) -> Result<bool, StoreError> {
        self.delete_kv("comet_users_auth", dev, user).await
    }
    pub async fn comet_set_data(&self, dev: &str, user: i64, data: &str) -> Result<(), StoreError> {
        self.upsert_kv("comet_users_data", "data", dev, user, data)
            .await
    }
    pub async fn comet_data(&self, dev: &str, user: i64) -> Result<Option<String>, StoreError> {
        self.get_kv("comet_users_data", "data", dev, user).await
    }
    pub async fn comet_delete_data(&self, dev: &str, user: i64) -> Result<bool, StoreError> {
        self.delete_kv("comet_users_data", dev, user).await
    }

    /// Stores a user's last-online time (0: online now).
    pub async fn comet_set_time(&self, dev: &str, user: i64, time: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO comet_users_time (dev_id, user_id, time) VALUES ($1, $2, $3)
             ON CONFLICT (dev_id, user_id) DO UPDATE SET time = excluded.time",
        )
        .bind(dev)
        .bind(user)
        .bind(time)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn comet_time(&self, dev: &str, user: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT time FROM comet_users_time WHERE dev_id = $1 AND user_id = $2",
        )
        .bind(dev)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Appends to a user's private queue unless it holds `max` messages already;
    /// returns whether it was queued.
    pub async fn comet_queue_push(
        &self,
        dev: &str,
        user: i64,
        event: &str,
        message: &str,
        now: i64,
        max: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let (count, last): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(seq) FROM comet_users_messages WHERE dev_id = $1 AND user_id = $2")
                .bind(dev)
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
        if count >= max {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO comet_users_messages (dev_id, user_id, seq, event, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(dev)
        .bind(user)
        .bind(last.unwrap_or(0) + 1)
        .bind(event)
        .bind(message)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn comet_queue(
        &self,
        dev: &str,
        user: i64,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, event, message, created_at FROM comet_users_messages WHERE dev_id = $1 AND user_id = $2 ORDER BY seq",
        )
        .bind(dev)
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes and returns the whole queue, in order, atomically (so it is
    /// flushed exactly once even with two connections arriving together).
    pub async fn comet_queue_take(
        &self,
        dev: &str,
        user: i64,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<QueuedMessage> = sqlx::query_as(
            "SELECT seq, event, message, created_at FROM comet_users_messages WHERE dev_id = $1 AND user_id = $2 ORDER BY seq",
        )
        .bind(dev)
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(last) = rows.last() {
            sqlx::query(
                "DELETE FROM comet_users_messages WHERE dev_id = $1 AND user_id = $2 AND seq <= $3",
            )
            .bind(dev)
            .bind(user)
            .bind(last.seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows)
    }

    pub async fn comet_queue_clear(&self, dev: &str, user: i64) -> Result<(), StoreError> {
        self.delete_kv("comet_users_messages", dev, user)
            .await
            .map(|_| ())
    }

    pub async fn comet_revoke(&self, dev: &str, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO comet_revoked_tokens (dev_id, token_hash) VALUES ($1, $2) ON CONFLICT (dev_id, token_hash) DO NOTHING")
            .bind(dev)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn comet_unrevoke(&self, dev: &str, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM comet_revoked_tokens WHERE dev_id = $1 AND token_hash = $2")
            .bind(dev)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn comet_is_revoked(&self, dev: &str, token_hash: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM comet_revoked_tokens WHERE dev_id = $1 AND token_hash = $2",
        )
        .bind(dev)
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Sets (length > 0) or removes (0) a pipe's history length.
    pub async fn comet_set_history(
        &self,
        dev: &str,
        pipe: &str,
        length: i64,
    ) -> Result<(), StoreError> {
        if length == 0 {
            sqlx::query("DELETE FROM comet_pipes_settings WHERE dev_id = $1 AND pipe = $2")
                .bind(dev)
                .bind(pipe)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO comet_pipes_settings (dev_id, pipe, length) VALUES ($1, $2, $3)
                 ON CONFLICT (dev_id, pipe) DO UPDATE SET length = excluded.length",
            )
            .bind(dev)
            .bind(pipe)
            .bind(length)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Every pipe with history enabled: (dev_id, pipe, length).
    pub async fn comet_history_settings(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT dev_id, pipe, length FROM comet_pipes_settings")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
