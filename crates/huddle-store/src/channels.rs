//! Channels and their explicit members.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::{ChannelMemberRecord, ChannelRecord, Db, StoreError};

impl Db {
    /// Creates a channel with its initial explicit members, atomically.
    pub async fn create_channel(
        &self,
        c: &ChannelRecord,
        members: &[ChannelMemberRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO channels (id, workspace_id, name, description, creator_id, is_private, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.id)
        .bind(&c.workspace_id)
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.creator_id)
        .bind(i64::from(c.is_private))
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        for m in members {
            sqlx::query("INSERT INTO channel_members (channel_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)")
                .bind(&m.channel_id)
                .bind(&m.user_id)
                .bind(&m.role)
                .bind(m.joined_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn channel_by_id(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM channels WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A channel with what `user_id` is to it, in one query: their workspace
    /// role (`None`: not a member of the channel's workspace) and their explicit
    /// channel role (`None`: no explicit membership).
    pub async fn channel_with_roles(
        &self,
        id: &str,
        user_id: &str,
    ) -> Result<Option<(ChannelRecord, Option<String>, Option<String>)>, StoreError> {
        let row: Option<AnyRow> = sqlx::query(
            "SELECT c.*, wm.role AS workspace_role, cm.role AS channel_role FROM channels c
             LEFT JOIN workspace_members wm ON wm.workspace_id = c.workspace_id AND wm.user_id = $2
             LEFT JOIN channel_members cm ON cm.channel_id = c.id AND cm.user_id = $2
             WHERE c.id = $1",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            ChannelRecord::from_row(&row)?,
            row.try_get("workspace_role")?,
            row.try_get("channel_role")?,
        )))
    }

    /// Most ids [`Db::channels_with_roles_in`] binds in one query (each is a
    /// bound parameter; both engines allow far more).
    pub const MAX_CHANNELS_PER_QUERY: usize = 500;

    /// The channels among `ids` that belong to `workspace_id`, each with what
    /// `user_id` is to it (as [`Db::channel_with_roles`]): one query per
    /// [`Db::MAX_CHANNELS_PER_QUERY`] ids. Ids of other workspaces and unknown
    /// ids yield no row, duplicates no extra row; nothing here decides who may
    /// read what.
    pub async fn channels_with_roles_in(
        &self,
        workspace_id: &str,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<(ChannelRecord, Option<String>, Option<String>)>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(Self::MAX_CHANNELS_PER_QUERY) {
            // `$3, $4, ...`: one placeholder per id (the `Any` driver binds no arrays).
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT c.*, wm.role AS workspace_role, cm.role AS channel_role FROM channels c
                 LEFT JOIN workspace_members wm ON wm.workspace_id = c.workspace_id AND wm.user_id = $2
                 LEFT JOIN channel_members cm ON cm.channel_id = c.id AND cm.user_id = $2
                 WHERE c.workspace_id = $1 AND c.id IN ({list})"
            );
            let mut q = sqlx::query(&sql).bind(workspace_id).bind(user_id);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push((
                    ChannelRecord::from_row(&row)?,
                    row.try_get("workspace_role")?,
                    row.try_get("channel_role")?,
                ));
            }
        }
        Ok(out)
    }

    /// Channels of a workspace that `user_id` can see: those they are an explicit
    /// member of, plus every public one when `sees_public`.
    pub async fn channels_visible_to(
        &self,
        workspace_id: &str,
        user_id: &str,
        sees_public: bool,
    ) -> Result<Vec<ChannelRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT c.* FROM channels c WHERE c.workspace_id = $1 AND (
                 ($3 = 1 AND c.is_private = 0)
                 OR EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $2))
             ORDER BY c.created_at, c.id",
        )
        .bind(workspace_id)
        .bind(user_id)
        .bind(i64::from(sees_public))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Saves name and description.
    pub async fn update_channel(&self, c: &ChannelRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE channels SET name = $1, description = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&c.name)
        .bind(&c.description)
        .bind(c.updated_at)
        .bind(&c.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_channel(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM channels WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Explicit members, in joining order.
    pub async fn channel_members(
        &self,
        channel_id: &str,
    ) -> Result<Vec<ChannelMemberRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM channel_members WHERE channel_id = $1 ORDER BY joined_at, user_id",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn channel_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<ChannelMemberRecord>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM channel_members WHERE channel_id = $1 AND user_id = $2")
                .bind(channel_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Adds explicit members, skipping those already present; returns the ids added.
    pub async fn add_channel_members(
        &self,
        members: &[ChannelMemberRecord],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut added = Vec::new();
        for m in members {
            let r = sqlx::query(
                "INSERT INTO channel_members (channel_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (channel_id, user_id) DO NOTHING",
            )
            .bind(&m.channel_id)
            .bind(&m.user_id)
            .bind(&m.role)
            .bind(m.joined_at)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                added.push(m.user_id.clone());
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    pub async fn remove_channel_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(channel_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn set_channel_role(
        &self,
        channel_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE channel_members SET role = $1 WHERE channel_id = $2 AND user_id = $3",
        )
        .bind(role)
        .bind(channel_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
