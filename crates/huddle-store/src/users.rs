//! Accounts.

use crate::{now_ms, Db, ProfilePatch, StoreError, UserRecord};

impl Db {
    /// Inserts a new account. A taken email is [`StoreError::Conflict`].
    pub async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, avatar, lang, app_settings, activated, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(&u.avatar)
        .bind(&u.lang)
        .bind(&u.app_settings)
        .bind(i64::from(u.activated))
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Looks an account up by its (already lower-cased) email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Applies a profile patch and returns the updated row (`None`: no such user).
    pub async fn update_profile(
        &self,
        id: &str,
        p: &ProfilePatch,
    ) -> Result<Option<UserRecord>, StoreError> {
        let Some(mut u) = self.user_by_id(id).await? else {
            return Ok(None);
        };
        if let Some(name) = &p.name {
            u.name = name.clone();
        }
        if let Some(avatar) = &p.avatar {
            u.avatar = avatar.clone();
        }
        if let Some(lang) = &p.lang {
            u.lang = lang.clone();
        }
        u.updated_at = now_ms();
        sqlx::query(
            "UPDATE users SET name = $1, avatar = $2, lang = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&u.name)
        .bind(&u.avatar)
        .bind(&u.lang)
        .bind(u.updated_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(Some(u))
    }

    pub async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the app-settings JSON text.
    pub async fn set_app_settings(&self, id: &str, json: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET app_settings = $1, updated_at = $2 WHERE id = $3")
            .bind(json)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks an account activated; returns whether it changed anything.
    pub async fn set_activated(&self, id: &str, activated: bool) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE users SET activated = $1, updated_at = $2 WHERE id = $3 AND activated <> $1",
        )
        .bind(i64::from(activated))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes an account; sessions and memberships go with it (cascade).
    pub async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The meta object (JSON text) of the account with this email.
    pub async fn user_meta(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT meta FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces the meta object (JSON text) of the account with this email.
    pub async fn set_user_meta(&self, email: &str, meta: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET meta = $1 WHERE email = $2")
            .bind(meta)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Whether two users are members of at least one common workspace.
    pub async fn share_a_workspace(&self, a: &str, b: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM workspace_members x JOIN workspace_members y
               ON x.workspace_id = y.workspace_id WHERE x.user_id = $1 AND y.user_id = $2",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
