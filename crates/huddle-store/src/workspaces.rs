//! Workspaces, their members and invite codes.

use crate::{
    now_ms, Db, InviteRecord, MemberRecord, MemberWithUser, StoreError, WorkspaceRecord,
    WorkspaceWithRole,
};

impl Db {
    /// Creates a workspace with its creator as its first member, atomically.
    pub async fn create_workspace(
        &self,
        w: &WorkspaceRecord,
        creator_role: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, name, avatar, creator_id, can_users_invite, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&w.id)
        .bind(&w.name)
        .bind(&w.avatar)
        .bind(&w.creator_id)
        .bind(i64::from(w.can_users_invite))
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)")
            .bind(&w.id)
            .bind(&w.creator_id)
            .bind(creator_role)
            .bind(w.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn workspace_by_id(&self, id: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The workspaces `user_id` belongs to, oldest membership first.
    pub async fn workspaces_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<WorkspaceWithRole>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT w.*, m.role FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id
             WHERE m.user_id = $1 ORDER BY m.joined_at, w.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ids of the workspaces `user_id` belongs to.
    pub async fn workspace_ids_of_user(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT workspace_id FROM workspace_members WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Saves name, avatar and `can_users_invite`.
    pub async fn update_workspace(&self, w: &WorkspaceRecord) -> Result<(), StoreError> {
        sqlx::query("UPDATE workspaces SET name = $1, avatar = $2, can_users_invite = $3, updated_at = $4 WHERE id = $5")
            .bind(&w.name)
            .bind(&w.avatar)
            .bind(i64::from(w.can_users_invite))
            .bind(w.updated_at)
            .bind(&w.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a workspace with its channels, members and invites (cascade).
    pub async fn delete_workspace(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every member with their account, in joining order.
    pub async fn members(&self, workspace_id: &str) -> Result<Vec<MemberWithUser>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT u.*, m.role, m.joined_at FROM users u JOIN workspace_members m ON m.user_id = u.id
             WHERE m.workspace_id = $1 ORDER BY m.joined_at, u.id",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds a member. Already a member is [`StoreError::Conflict`].
    pub async fn add_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO workspace_members (workspace_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)")
            .bind(&m.workspace_id)
            .bind(&m.user_id)
            .bind(&m.role)
            .bind(m.joined_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a member and their memberships of the workspace's channels.
    pub async fn remove_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM channel_members WHERE user_id = $1
             AND channel_id IN (SELECT id FROM channels WHERE workspace_id = $2)",
        )
        .bind(user_id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        let r =
            sqlx::query("DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn set_member_role(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE workspace_members SET role = $1 WHERE workspace_id = $2 AND user_id = $3",
        )
        .bind(role)
        .bind(workspace_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// How many members hold `role`.
    pub async fn count_role(&self, workspace_id: &str, role: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM workspace_members WHERE workspace_id = $1 AND role = $2",
        )
        .bind(workspace_id)
        .bind(role)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn insert_invite(&self, i: &InviteRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO workspace_invites (code, workspace_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&i.code)
            .bind(&i.workspace_id)
            .bind(&i.created_by)
            .bind(i.created_at)
            .bind(i.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A live (unexpired) invite by code.
    pub async fn invite_by_code(&self, code: &str) -> Result<Option<InviteRecord>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_invites WHERE code = $1 AND expires_at > $2")
                .bind(code)
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
