//! Rows as stored. Ids are UUID text, times epoch milliseconds. The domain turns
//! these into the shapes clients see; nothing here is serialized to the wire.
//! Flags are stored as BIGINT 0/1, so the records holding one decode by hand.

use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

fn flag(row: &AnyRow, col: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

impl FromRow<'_, AnyRow> for UserRecord {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(UserRecord {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            password_hash: r.try_get("password_hash")?,
            avatar: r.try_get("avatar")?,
            lang: r.try_get("lang")?,
            app_settings: r.try_get("app_settings")?,
            activated: flag(r, "activated")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl FromRow<'_, AnyRow> for WorkspaceRecord {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(WorkspaceRecord {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            avatar: r.try_get("avatar")?,
            creator_id: r.try_get("creator_id")?,
            can_users_invite: flag(r, "can_users_invite")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl FromRow<'_, AnyRow> for ChannelRecord {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(ChannelRecord {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            creator_id: r.try_get("creator_id")?,
            is_private: flag(r, "is_private")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            last_chat_id: r.try_get("last_chat_id")?,
        })
    }
}

/// An account.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    /// Lower-cased at sign-up; unique.
    pub email: String,
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub avatar: Option<String>,
    pub lang: Option<String>,
    /// JSON object text.
    pub app_settings: String,
    pub activated: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A sign-in session; access tokens name it in `sid`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A refresh token (its SHA-256), current when `used_at` is `None`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub session_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct WorkspaceRecord {
    pub id: String,
    pub name: String,
    pub avatar: Option<String>,
    pub creator_id: String,
    pub can_users_invite: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A workspace together with the asking user's role in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceWithRole {
    #[sqlx(flatten)]
    pub workspace: WorkspaceRecord,
    pub role: String,
}

/// A user's membership of a workspace.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRecord {
    pub workspace_id: String,
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
}

/// A workspace member with the account behind it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberWithUser {
    #[sqlx(flatten)]
    pub user: UserRecord,
    pub role: String,
    pub joined_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRecord {
    pub code: String,
    pub workspace_id: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct ChannelRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub creator_id: String,
    pub is_private: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The id of the newest chat (0: none yet).
    pub last_chat_id: i64,
}

/// An explicit channel membership (private channels, and channel roles on public ones).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelMemberRecord {
    pub channel_id: String,
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
}

/// Fields of a profile update; `None` leaves the stored value alone.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub name: Option<String>,
    /// `Some(None)` clears the avatar.
    pub avatar: Option<Option<String>>,
    pub lang: Option<Option<String>>,
}

/// A chat message. `id` is sequential per channel, from 1.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatRecord {
    pub channel_id: String,
    pub id: i64,
    /// `TEXT` or `SYSTEM`.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// Empty once deleted.
    pub content: String,
    pub sender_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}
