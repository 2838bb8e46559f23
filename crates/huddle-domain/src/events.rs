//! Typed domain events. Every state change publishes one through the core
//! [`Bus`](huddle_core::Bus), encoded once; the delivery layer (socket front
//! doors) decides who receives what, checking membership at delivery time.
//!
//! Events carry ids and the snapshots a receiver could not look up afterwards
//! (e.g. who could see a channel that no longer exists).

use serde::{Deserialize, Serialize};

use huddle_core::{MediaState, OnlineStatus};

/// Who may see a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    SignedOut,
    Revoked,
    Expired,
}

/// Something that happened. Topic conventions: account events go to
/// `user:{id}`, workspace-wide ones to `workspace:{id}`, channel ones to
/// `channel:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DomainEvent {
    SignedIn {
        user_id: String,
        email: String,
        session_id: String,
    },
    SessionEnded {
        user_id: String,
        email: String,
        session_id: String,
        reason: SessionEnd,
    },
    AccountActivated {
        user_id: String,
        email: String,
    },
    AccountRemoved {
        user_id: String,
        email: String,
        workspace_ids: Vec<String>,
    },
    /// Public profile changed; goes to each of `workspace_ids`.
    UserUpdated {
        user_id: String,
        workspace_ids: Vec<String>,
    },
    /// Confidential data changed (`what`: e.g. `app-settings`).
    MeUpdated {
        user_id: String,
        what: Option<String>,
    },
    PasswordChanged {
        user_id: String,
    },
    /// The user gained a workspace (created or joined it).
    WorkspaceAdded {
        user_id: String,
        workspace_id: String,
    },
    WorkspaceUpdated {
        workspace_id: String,
    },
    WorkspaceDeleted {
        workspace_id: String,
        member_ids: Vec<String>,
    },
    MemberJoined {
        workspace_id: String,
        user_id: String,
    },
    MemberLeft {
        workspace_id: String,
        user_id: String,
        kicked: bool,
    },
    MemberRoleChanged {
        workspace_id: String,
        user_id: String,
        role: String,
    },
    /// `member_ids`: the explicit members (for a private channel, its whole audience).
    ChannelCreated {
        workspace_id: String,
        channel_id: String,
        visibility: Visibility,
        member_ids: Vec<String>,
    },
    ChannelUpdated {
        workspace_id: String,
        channel_id: String,
    },
    ChannelDeleted {
        workspace_id: String,
        channel_id: String,
        visibility: Visibility,
        member_ids: Vec<String>,
    },
    ChannelMembersAdded {
        workspace_id: String,
        channel_id: String,
        user_ids: Vec<String>,
    },
    ChannelMemberRemoved {
        workspace_id: String,
        channel_id: String,
        user_id: String,
    },
    /// A device joined a call. Real-time only (not stored).
    /// `replaced`: the user's other sockets that were in this same call and left
    /// it silently (a device switch is no leave for peers).
    ChannelSelected {
        workspace_id: String,
        channel_id: String,
        user_id: String,
        socket_id: String,
        media: MediaState,
        replaced: Vec<String>,
    },
    ChannelUnselected {
        workspace_id: String,
        channel_id: String,
        user_id: String,
        socket_id: String,
    },
    /// The user moved their call to another device; the old one must hang up.
    DeviceChanged {
        user_id: String,
    },
    MediaStateUpdated {
        workspace_id: String,
        channel_id: String,
        user_id: String,
        media: MediaState,
    },
    /// The user's aggregate status changed; goes to each of `workspace_ids`.
    OnlineStatusUpdated {
        user_id: String,
        status: OnlineStatus,
        workspace_ids: Vec<String>,
    },
    /// The user changed their status by hand on `socket_id`; their other devices follow.
    MyOnlineStatusUpdated {
        user_id: String,
        status: OnlineStatus,
        socket_id: String,
    },
    InviteSent {
        invite_id: String,
        from_user_id: String,
        to_user_id: String,
        workspace_id: String,
        channel_id: String,
        is_response_needed: bool,
        message: serde_json::Value,
    },
    /// `to_user_id` is the invite's sender, who receives the response.
    InviteResponded {
        invite_id: String,
        responder_id: String,
        to_user_id: String,
        response: serde_json::Value,
    },
    InviteCancelled {
        invite_id: String,
        to_user_id: String,
    },
    MutedForAll {
        from_user_id: String,
        to_user_id: String,
        socket_id: String,
    },
    /// A publication on comet pipe `pipe` of tenant `dev_id` (`user_id` 0: anonymous
    /// or the server). `origin`: the sending connection, which it skips.
    CometPipe {
        dev_id: String,
        pipe: String,
        event: String,
        data: serde_json::Value,
        user_id: i64,
        origin: Option<String>,
    },
    /// A private message to every live connection of a comet user.
    CometUserMessage {
        dev_id: String,
        user_id: i64,
        event: String,
        data: serde_json::Value,
    },
    /// A chat was stored (`new`), edited or deleted. `origin`: the sending socket,
    /// which the broadcast skips.
    Chat {
        workspace_id: String,
        action: crate::chat::ChatAction,
        chat: crate::chat::ChatInfo,
        origin: Option<String>,
    },
    /// A client's relay to its call. `action`/`data` may hold Socket.IO
    /// placeholders `{"_placeholder":true,"num":i}` naming `attachments[i]`
    /// (binary the client sent); on the bus each attachment is one base64
    /// string, encoded once per publication.
    ConversationBroadcast {
        channel_id: String,
        user_id: String,
        action: serde_json::Value,
        data: serde_json::Value,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "base64_list")]
        attachments: Vec<bytes::Bytes>,
    },
}

impl DomainEvent {
    /// The event's name on the bus (the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::SignedIn { .. } => "signed_in",
            DomainEvent::SessionEnded { .. } => "session_ended",
            DomainEvent::AccountActivated { .. } => "account_activated",
            DomainEvent::AccountRemoved { .. } => "account_removed",
            DomainEvent::UserUpdated { .. } => "user_updated",
            DomainEvent::MeUpdated { .. } => "me_updated",
            DomainEvent::PasswordChanged { .. } => "password_changed",
            DomainEvent::WorkspaceAdded { .. } => "workspace_added",
            DomainEvent::WorkspaceUpdated { .. } => "workspace_updated",
            DomainEvent::WorkspaceDeleted { .. } => "workspace_deleted",
            DomainEvent::MemberJoined { .. } => "member_joined",
            DomainEvent::MemberLeft { .. } => "member_left",
            DomainEvent::MemberRoleChanged { .. } => "member_role_changed",
            DomainEvent::ChannelCreated { .. } => "channel_created",
            DomainEvent::ChannelUpdated { .. } => "channel_updated",
            DomainEvent::ChannelDeleted { .. } => "channel_deleted",
            DomainEvent::ChannelMembersAdded { .. } => "channel_members_added",
            DomainEvent::ChannelMemberRemoved { .. } => "channel_member_removed",
            DomainEvent::ChannelSelected { .. } => "channel_selected",
            DomainEvent::ChannelUnselected { .. } => "channel_unselected",
            DomainEvent::DeviceChanged { .. } => "device_changed",
            DomainEvent::MediaStateUpdated { .. } => "media_state_updated",
            DomainEvent::OnlineStatusUpdated { .. } => "online_status_updated",
            DomainEvent::MyOnlineStatusUpdated { .. } => "my_online_status_updated",
            DomainEvent::InviteSent { .. } => "invite_sent",
            DomainEvent::InviteResponded { .. } => "invite_responded",
            DomainEvent::InviteCancelled { .. } => "invite_cancelled",
            DomainEvent::MutedForAll { .. } => "muted_for_all",
            DomainEvent::ConversationBroadcast { .. } => "conversation_broadcast",
            DomainEvent::Chat { .. } => "chat",
            DomainEvent::CometPipe { .. } => "comet_pipe",
            DomainEvent::CometUserMessage { .. } => "comet_user_message",
        }
    }

    /// Encodes the event once into a publication on its topic.
    pub fn to_publication(&self) -> huddle_core::Publication {
        // Serializing an enum of strings and string vectors cannot fail.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        huddle_core::Publication {
            topic: self.topic(),
            event: self.name().to_owned(),
            payload: payload.into(),
        }
    }

    /// The topic the event is published on.
    pub fn topic(&self) -> huddle_core::Topic {
        use huddle_core::Topic;
        match self {
            DomainEvent::SignedIn { user_id, .. }
            | DomainEvent::SessionEnded { user_id, .. }
            | DomainEvent::AccountActivated { user_id, .. }
            | DomainEvent::AccountRemoved { user_id, .. }
            | DomainEvent::UserUpdated { user_id, .. }
            | DomainEvent::MeUpdated { user_id, .. }
            | DomainEvent::PasswordChanged { user_id }
            | DomainEvent::WorkspaceAdded { user_id, .. }
            | DomainEvent::DeviceChanged { user_id }
            | DomainEvent::OnlineStatusUpdated { user_id, .. }
            | DomainEvent::MyOnlineStatusUpdated { user_id, .. } => Topic::new("user", user_id),
            DomainEvent::InviteSent { to_user_id, .. }
            | DomainEvent::InviteResponded { to_user_id, .. }
            | DomainEvent::InviteCancelled { to_user_id, .. }
            | DomainEvent::MutedForAll { to_user_id, .. } => Topic::new("user", to_user_id),
            DomainEvent::WorkspaceUpdated { workspace_id }
            | DomainEvent::WorkspaceDeleted { workspace_id, .. }
            | DomainEvent::MemberJoined { workspace_id, .. }
            | DomainEvent::MemberLeft { workspace_id, .. }
            | DomainEvent::MemberRoleChanged { workspace_id, .. }
            | DomainEvent::ChannelCreated { workspace_id, .. }
            | DomainEvent::ChannelDeleted { workspace_id, .. } => {
                Topic::new("workspace", workspace_id)
            }
            DomainEvent::ChannelUpdated { channel_id, .. }
            | DomainEvent::ChannelMembersAdded { channel_id, .. }
            | DomainEvent::ChannelMemberRemoved { channel_id, .. }
            | DomainEvent::ChannelSelected { channel_id, .. }
            | DomainEvent::ChannelUnselected { channel_id, .. }
            | DomainEvent::MediaStateUpdated { channel_id, .. } => {
                Topic::new("channel", channel_id)
            }
            DomainEvent::Chat { chat, .. } => Topic::new("channel", &chat.channel_id),
            DomainEvent::CometPipe { dev_id, pipe, .. } => {
                Topic::new("pipe", format_args!("{dev_id}:{pipe}"))
            }
            DomainEvent::CometUserMessage {
                dev_id, user_id, ..
            } => Topic::new("comet-user", format_args!("{dev_id}:{user_id}")),
            DomainEvent::ConversationBroadcast { channel_id, .. } => {
                Topic::new("conversation", channel_id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matches_the_serde_tag() {
        let e = DomainEvent::ChannelCreated {
            workspace_id: "w".into(),
            channel_id: "c".into(),
            visibility: Visibility::Private,
            member_ids: vec!["u".into()],
        };
        let v = serde_json::to_value(&e).expect("encode");
        assert_eq!(v["type"], e.name());
        assert_eq!(e.topic().as_str(), "workspace:w");
        let back: DomainEvent = serde_json::from_value(v).expect("decode");
        assert_eq!(back, e);
    }

    #[test]
    fn broadcast_attachments_cross_the_bus_as_base64() {
        let e = DomainEvent::ConversationBroadcast {
            channel_id: "c".into(),
            user_id: "u".into(),
            action: "a".into(),
            data: serde_json::json!({"_placeholder": true, "num": 0}),
            attachments: vec![bytes::Bytes::from_static(&[0, 255, 1]), bytes::Bytes::new()],
        };
        let v = serde_json::to_value(&e).expect("encode");
        assert_eq!(v["attachments"], serde_json::json!(["AP8B", ""]));
        let back: DomainEvent = serde_json::from_value(v).expect("decode");
        assert_eq!(back, e);
        // Without binary, nothing is added (and older publications decode).
        let plain = DomainEvent::ConversationBroadcast {
            channel_id: "c".into(),
            user_id: "u".into(),
            action: "a".into(),
            data: serde_json::Value::Null,
            attachments: Vec::new(),
        };
        let v = serde_json::to_value(&plain).expect("encode");
        assert!(v.get("attachments").is_none());
        assert_eq!(
            serde_json::from_value::<DomainEvent>(v).expect("decode"),
            plain
        );
    }
}

/// Binary on the JSON bus: a list of standard base64 strings.
mod base64_list {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(list: &[bytes::Bytes], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<String> = list.iter().map(|b| STANDARD.encode(b)).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<bytes::Bytes>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| {
                STANDARD
                    .decode(t)
                    .map(bytes::Bytes::from)
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
