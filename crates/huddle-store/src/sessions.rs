//! Sessions and refresh tokens.

use crate::{now_ms, Db, RefreshTokenRecord, SessionRecord, StoreError};

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum RefreshLookup {
    /// No such token.
    Unknown,
    /// The token and its session, as stored.
    Found(RefreshTokenRecord, SessionRecord),
}

pub use RefreshLookup::*;

impl Db {
    /// Creates a session together with its first refresh token, atomically.
    pub async fn insert_session(
        &self,
        s: &SessionRecord,
        token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, NULL)")
            .bind(&s.id)
            .bind(&s.user_id)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, expires_at, used_at) VALUES ($1, $2, $3, NULL)")
            .bind(&token.token_hash)
            .bind(&token.session_id)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session_by_id(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Whether session `session_id` of `user_id` is still live (not revoked,
    /// not deleted with its account) and `user_id` still a member of
    /// `workspace_id`: one query, for re-checking a socket's authentication
    /// after it subscribed (see the Socket.IO front door).
    pub async fn session_in_workspace(
        &self,
        session_id: &str,
        user_id: &str,
        workspace_id: &str,
    ) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions s JOIN workspace_members m ON m.user_id = s.user_id \
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND m.workspace_id = $3",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(workspace_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Finds a refresh token by its hash, with its session.
    pub async fn refresh_token(&self, hash: &str) -> Result<RefreshLookup, StoreError> {
        let t: Option<RefreshTokenRecord> =
            sqlx::query_as("SELECT * FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(t) = t else { return Ok(Unknown) };
        match self.session_by_id(&t.session_id).await? {
            Some(s) => Ok(Found(t, s)),
            None => Ok(Unknown),
        }
    }

    /// Marks `old_hash` used, stores `next` in its place and slides the session's
    /// expiry to `next`'s, atomically. Returns
    /// `false` (and changes nothing) when `old_hash` was already used — a
    /// concurrent rotation or a replay — so that exactly one caller wins.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: &RefreshTokenRecord,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, expires_at, used_at) VALUES ($1, $2, $3, NULL)")
            .bind(&next.token_hash)
            .bind(&next.session_id)
            .bind(next.expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
            .bind(next.expires_at)
            .bind(&next.session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes one session; returns whether it was live before.
    pub async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Revokes every live session of `user_id` except `keep`; returns the ids revoked.
    pub async fn revoke_other_sessions(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(keep)
        .fetch_all(&self.pool)
        .await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(user_id)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(ids)
    }

    /// Live sessions whose expiry passed: (session id, user id).
    pub async fn expired_sessions(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, user_id FROM sessions WHERE expires_at <= $1 AND revoked_at IS NULL",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes sessions that expired or were revoked before `before_ms`; returns how many.
    pub async fn purge_sessions(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
