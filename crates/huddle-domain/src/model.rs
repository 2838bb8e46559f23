//! The shapes clients see (camelCase JSON, RFC 3339 times), built from store rows.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use huddle_store::{ChannelRecord, UserRecord, WorkspaceRecord};

use crate::roles::{ChannelRole, WorkspaceRole};
pub use huddle_core::OnlineStatus;

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

/// Result of sign-up and sign-in. `credentials` is null after a sign-up that
/// awaits activation (`auth.require_activation`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthResult {
    pub user: Me,
    pub credentials: Option<Credentials>,
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
    /// Chats newer than the caller's read position exist (their own count as read).
    pub exist_unread_chat: bool,
}

/// A workspace member.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(flatten)]
    pub user: User,
    pub role: WorkspaceRole,
    #[schema(value_type = String, example = "online")]
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

/// Media-server settings handed to a client that selects a channel; huddle
/// carries no media itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionOptions {
    pub janus_server_url: Option<String>,
    pub janus_ws_server_url: Option<String>,
    pub janus_auth_token: Option<String>,
    /// Stable numeric room ids derived from the channel id.
    pub audio_room_id: u32,
    pub video_room_id: u32,
    /// HS256 JWT `{sub: userId, channel, socket, exp}` the media server can verify.
    pub channel_auth_token: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    pub connection_options: ConnectionOptions,
}

/// A device in a call, as `GET /api/channels/{id}/active-users` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveUser {
    pub user_id: String,
    pub socket_id: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub media: huddle_core::MediaState,
}
