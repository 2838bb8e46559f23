//! Rows as stored. Ids are UUID text, times epoch milliseconds. The domain turns
//! these into the shapes clients see; nothing here is serialized to the wire.

/// An account.
#[derive(Debug, Clone, sqlx::FromRow)]
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

#[derive(Debug, Clone, sqlx::FromRow)]
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub creator_id: String,
    pub is_private: bool,
    pub created_at: i64,
    pub updated_at: i64,
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
