//! The shapes clients see (camelCase JSON, RFC 3339 times), built from store rows.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use huddle_store::{ChannelRecord, UserRecord, WorkspaceRecord};

use crate::roles::{ChannelRole, WorkspaceRole};

/// Converts stored epoch milliseconds to a UTC time.
pub fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A user as other members of a shared workspace see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub name: String,
    pub avatar: Option<String>,
    pub lang: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The signed-in user with their confidential fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    pub email: String,
    pub activated: bool,
    #[schema(value_type = Object)]
    pub app_settings: serde_json::Value,
}

impl From<&UserRecord> for User {
    fn from(u: &UserRecord) -> Self {
        User {
            id: u.id.clone(),
            name: u.name.clone(),
            avatar: u.avatar.clone(),
            lang: u.lang.clone(),
            created_at: time(u.created_at),
            updated_at: time(u.updated_at),
        }
    }
}

impl From<&UserRecord> for Me {
    fn from(u: &UserRecord) -> Self {
        Me {
            user: User::from(u),
            email: u.email.clone(),
            activated: u.activated,
            app_settings: serde_json::from_str(&u.app_settings)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
        }
    }
}

/// Tokens of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub access_token_expired_at: DateTime<Utc>,
    pub refresh_token_expired_at: DateTime<Utc>,
}

/// Result of sign-up and sign-in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthResult {
    pub user: Me,
    pub credentials: Credentials,
}

/// Result of a refresh.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refreshed {
    pub credentials: Credentials,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub avatar: Option<String>,
    pub creator_id: String,
    pub can_users_invite: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WorkspaceRecord> for Workspace {
    fn from(w: &WorkspaceRecord) -> Self {
        Workspace {
            id: w.id.clone(),
            name: w.name.clone(),
            avatar: w.avatar.clone(),
            creator_id: w.creator_id.clone(),
            can_users_invite: w.can_users_invite,
            created_at: time(w.created_at),
            updated_at: time(w.updated_at),
        }
    }
}

/// The caller's relation to a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceRelation {
    pub role: WorkspaceRole,
}

/// A workspace as one of its members sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceForUser {
    #[serde(flatten)]
    pub workspace: Workspace,
    pub user_relation: WorkspaceRelation,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub creator_id: String,
    pub is_private: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&ChannelRecord> for Channel {
    fn from(c: &ChannelRecord) -> Self {
        Channel {
            id: c.id.clone(),
            workspace_id: c.workspace_id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            creator_id: c.creator_id.clone(),
            is_private: c.is_private,
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

/// The caller's relation to a channel (`role` is null for implicit access to a public channel).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelRelation {
    pub role: Option<ChannelRole>,
}

/// A channel as a member sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelForUser {
    #[serde(flatten)]
    pub channel: Channel,
    pub user_relation: ChannelRelation,
}

/// Online status of a user, aggregated over their connections.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnlineStatus {
    Offline,
    Idle,
    Online,
}

/// A workspace member.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(flatten)]
    pub user: User,
    pub role: WorkspaceRole,
    pub online_status: OnlineStatus,
    pub joined_at: DateTime<Utc>,
}

/// An explicit channel member.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMember {
    pub user_id: String,
    pub role: ChannelRole,
    pub joined_at: DateTime<Utc>,
}

/// Everything a client needs to render a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceState {
    pub workspace: WorkspaceForUser,
    /// Channels visible to the caller.
    pub channels: Vec<ChannelForUser>,
    pub users: Vec<Member>,
}

/// A workspace invite code.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub code: String,
    pub workspace_id: String,
    pub expires_at: DateTime<Utc>,
}
