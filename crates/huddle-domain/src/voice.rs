//! Voice rooms and presence across devices (SPEC §3): socket authentication,
//! the grace period, one call per user, media-state rules, online status,
//! mute-for-all, invites, conversation broadcasts. State lives in the core's
//! [`Presence`](huddle_core::Presence); every change is published as a
//! [`DomainEvent`] so the socket front door (and, later, other nodes) deliver it.

use std::sync::Arc;
use std::time::Instant;

use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use huddle_core::presence::{Removed, Selected};
use huddle_core::{Device, MediaState, OnlineStatus, PresenceError};

use crate::events::DomainEvent;
use crate::invites::Invite;
use crate::model::{ActiveUser, ConnectionOptions, Selection};
use crate::roles::WorkspaceRole;
use crate::tokens::Claims;
use crate::{new_id, parse_id, Caller, Domain, DomainError, DomainResult};

/// `auth` event payload of the workspace socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketAuthInput {
    pub token: String,
    pub workspace_id: String,
    #[serde(default)]
    pub online_status: Option<OnlineStatus>,
    #[serde(default)]
    pub prev_socket_id: Option<String>,
}

/// A socket's successful authentication.
#[derive(Debug, Clone)]
pub struct SocketAuth {
    pub user_id: String,
    pub session_id: String,
    pub workspace_id: String,
    pub role: WorkspaceRole,
    pub online_status: OnlineStatus,
    /// A device was restored from its grace period (`prevSocketId`).
    pub reconnected: bool,
    /// Channels the user can see in the workspace (their channel topics).
    pub channels: Vec<String>,
    /// The call restored on reconnect.
    pub selected: Option<String>,
}

/// The media flags a client sends; timestamps are the server's business.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub struct MediaInput {
    pub microphone: bool,
    pub speakers: bool,
    pub screen: bool,
    pub camera: bool,
    pub speaking: bool,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The media rules: a flag turning on stamps its start time, turning off
/// removes it, staying on keeps it; microphone off forces `speaking: false`.
pub fn apply_media(prev: &MediaState, input: MediaInput) -> MediaState {
    let speaking = input.speaking && input.microphone;
    let stamp = |on: bool, was_on: bool, ts: &Option<String>| match (on, was_on) {
        (false, _) => None,
        (true, true) => ts.clone().or_else(|| Some(now_rfc3339())),
        (true, false) => Some(now_rfc3339()),
    };
    MediaState {
        microphone: input.microphone,
        speakers: input.speakers,
        screen: input.screen,
        camera: input.camera,
        speaking,
        start_screen_ts: stamp(input.screen, prev.screen, &prev.start_screen_ts),
        start_camera_ts: stamp(input.camera, prev.camera, &prev.start_camera_ts),
        start_speaking_ts: stamp(speaking, prev.speaking, &prev.start_speaking_ts),
    }
}

/// A stable room number for a channel id (FNV-1a, 31 bits, never 0).
fn room_id(channel_id: &str, salt: u8) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in channel_id.bytes().chain([salt]) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1)
}

fn presence_error(e: PresenceError) -> DomainError {
    match e {
        PresenceError::UnknownConnection => DomainError::invalid("socketId", "Socket not found"),
        PresenceError::NotInChannel => DomainError::invalid("channelId", "Channel is not selected"),
        PresenceError::TooManyConnections(n) => {
            DomainError::Conflict(format!("too many connections (at most {n} per user)"))
        }
    }
}

impl Domain {
    /// Authenticates a workspace socket: a valid access token of a member of
    /// the workspace. Restores a device still in its grace period when
    /// `prevSocketId` names one of the same user and workspace.
    pub async fn socket_auth(
        &self,
        conn: &str,
        input: SocketAuthInput,
    ) -> DomainResult<SocketAuth> {
        let caller = self
            .authenticate(&input.token)
            .await
            .map_err(|_| DomainError::Unauthorized("Invalid access token"))?;
        let forbidden = DomainError::Forbidden("Can't listen workspace events");
        let workspace_id = uuid::Uuid::parse_str(&input.workspace_id)
            .map_err(|_| DomainError::Forbidden("Can't listen workspace events"))?
            .to_string();
        let role = self
            .workspace_role(&workspace_id, &caller.user_id)
            .await?
            .ok_or(forbidden)?;
        let channels = self
            .db
            .channels_visible_to(&workspace_id, &caller.user_id, role.sees_public_channels())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let status = input.online_status.unwrap_or(OnlineStatus::Online);
        let restored = input.prev_socket_id.as_deref().and_then(|prev| {
            self.presence.reattach(
                prev,
                conn.into(),
                &caller.user_id,
                &workspace_id,
                caller.session_id.as_str().into(),
            )
        });
        let (reconnected, selected) = match restored {
            Some(device) => {
                if let Some(channel) = &device.channel {
                    self.emit(DomainEvent::ConversationBroadcast {
                        channel_id: channel.to_string(),
                        user_id: caller.user_id.clone(),
                        action: Value::from("socket-reconnecting"),
                        data: Value::Bool(false),
                        attachments: Vec::new(),
                    })
                    .await;
                }
                if let Some(agg) = self
                    .presence
                    .set_status(conn, status)
                    .map_err(presence_error)?
                {
                    self.status_changed(&caller.user_id, agg).await?;
                }
                (true, device.channel.map(|c| c.to_string()))
            }
            None => {
                let device = Device {
                    conn: conn.into(),
                    user_id: caller.user_id.as_str().into(),
                    workspace_id: workspace_id.as_str().into(),
                    session_id: caller.session_id.as_str().into(),
                    status,
                    channel: None,
                    media: MediaState::default(),
                    grace_until: None,
                };
                let attached = self.presence.attach(device).map_err(|e| {
                    if matches!(e, PresenceError::TooManyConnections(_)) {
                        self.refusals
                            .count(huddle_core::Refusal::ConnectionsPerUser);
                    }
                    presence_error(e)
                })?;
                if let Some(agg) = attached {
                    if let Err(e) = self.status_changed(&caller.user_id, agg).await {
                        // The caller gets an error and no socket: the device must go too.
                        self.presence.remove(conn);
                        return Err(e);
                    }
                }
                (false, None)
            }
        };
        Ok(SocketAuth {
            user_id: caller.user_id,
            session_id: caller.session_id,
            workspace_id,
            role,
            online_status: status,
            reconnected,
            channels,
            selected,
        })
    }

    /// Whether a socket authenticated as `session_id` of `user_id` in
    /// `workspace_id` may stay so: the session is live and the user still a
    /// member. A front door calls it once, *after* subscribing the socket to
    /// its topics: an end committed before this read is seen here, and one
    /// committed after it publishes its event after the socket subscribed, so
    /// the event reaches the socket. Either way no socket outlives its session
    /// or membership, whatever the interleaving with its authentication.
    pub async fn socket_still_authorized(
        &self,
        session_id: &str,
        user_id: &str,
        workspace_id: &str,
    ) -> DomainResult<bool> {
        Ok(self
            .db
            .session_in_workspace(session_id, user_id, workspace_id)
            .await?)
    }

    async fn status_changed(&self, user_id: &str, status: OnlineStatus) -> DomainResult<()> {
        let workspace_ids = self.db.workspace_ids_of_user(user_id).await?;
        self.emit(DomainEvent::OnlineStatusUpdated {
            user_id: user_id.into(),
            status,
            workspace_ids,
        })
        .await;
        Ok(())
    }

    /// Publishes what a device's removal means to others.
    async fn device_removed(&self, removed: Removed) -> DomainResult<()> {
        let d = removed.device;
        if let Some(channel) = d.channel {
            self.emit(DomainEvent::ChannelUnselected {
                workspace_id: d.workspace_id.to_string(),
                channel_id: channel.to_string(),
                user_id: d.user_id.to_string(),
                socket_id: d.conn.to_string(),
            })
            .await;
        }
        if let Some(status) = removed.status_change {
            self.status_changed(&d.user_id, status).await?;
        }
        Ok(())
    }

    /// A socket went away. `immediate` (logout, revoked session, kick) removes
    /// the device at once; otherwise it keeps its place for the grace period and
    /// its call peers are told it is reconnecting.
    pub async fn socket_closed(&self, conn: &str, immediate: bool) -> DomainResult<()> {
        if immediate {
            if let Some(removed) = self.presence.remove(conn) {
                self.device_removed(removed).await?;
            }
            return Ok(());
        }
        let rt = &self.cfg.realtime;
        if self
            .presence
            .disconnect(
                conn,
                Instant::now(),
                rt.grace_period,
                rt.grace_period_in_call,
            )
            .is_some()
        {
            if let Some(d) = self.presence.device(conn) {
                if let Some(channel) = d.channel {
                    self.emit(DomainEvent::ConversationBroadcast {
                        channel_id: channel.to_string(),
                        user_id: d.user_id.to_string(),
                        action: Value::from("socket-reconnecting"),
                        data: Value::Bool(true),
                        attachments: Vec::new(),
                    })
                    .await;
                }
            }
        }
        Ok(())
    }

    /// Removes devices whose grace period is over; call it periodically.
    pub async fn expire_presence(&self) -> DomainResult<usize> {
        let removed = self.presence.expire_due(Instant::now());
        let n = removed.len();
        for r in removed {
            self.device_removed(r).await?;
        }
        Ok(n)
    }

    /// Removes every device of `user_id` bound to `workspace_id` (kick, leave).
    pub(crate) async fn evict_user_devices(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> DomainResult<()> {
        for d in self
            .presence
            .devices_of(user_id)
            .into_iter()
            .filter(|d| &*d.workspace_id == workspace_id)
        {
            if let Some(removed) = self.presence.remove(&d.conn) {
                self.device_removed(removed).await?;
            }
        }
        Ok(())
    }

    /// Ends the calls in `channel_id` (of one user, or everyone).
    pub(crate) async fn evict_from_channel(
        &self,
        workspace_id: &str,
        channel_id: &str,
        user_id: Option<&str>,
    ) {
        for d in self.presence.in_channel(channel_id) {
            if user_id.is_some_and(|u| u != &*d.user_id) {
                continue;
            }
            if self.presence.unselect(&d.conn).is_ok() {
                self.emit(DomainEvent::ChannelUnselected {
                    workspace_id: workspace_id.into(),
                    channel_id: channel_id.into(),
                    user_id: d.user_id.to_string(),
                    socket_id: d.conn.to_string(),
                })
                .await;
            }
        }
    }

    /// Checks that `socket_id` names a live, authenticated socket of the caller.
    pub fn require_device(&self, caller: &Caller, socket_id: &str) -> DomainResult<()> {
        self.device_of(caller, socket_id).map(|_| ())
    }

    /// The caller's live device named by `?socketId=`.
    fn device_of(&self, caller: &Caller, socket_id: &str) -> DomainResult<Device> {
        self.presence
            .device(socket_id)
            .filter(|d| *d.user_id == *caller.user_id && d.grace_until.is_none())
            .ok_or_else(|| DomainError::invalid("socketId", "Socket not found"))
    }

    /// Joins a call in a channel from one device (leaving any other call of the user).
    pub async fn select_channel(
        &self,
        caller: &Caller,
        socket_id: &str,
        channel_id: &str,
        media: MediaInput,
    ) -> DomainResult<Selection> {
        let device = self.device_of(caller, socket_id)?;
        let view = self.channel_view(caller, channel_id).await?;
        let channel = view.channel;
        if *device.workspace_id != *channel.workspace_id {
            return Err(DomainError::invalid(
                "socketId",
                "the socket is bound to another workspace",
            ));
        }
        if device.channel.as_deref() == Some(channel.id.as_str()) {
            return Err(DomainError::invalid(
                "channelId",
                "Channel already selected",
            ));
        }
        let state = apply_media(&MediaState::default(), media);
        let Selected {
            left,
            other_devices,
        } = self
            .presence
            .select(socket_id, channel.id.as_str().into(), state.clone())
            .map_err(presence_error)?;
        if !other_devices.is_empty() {
            self.emit(DomainEvent::DeviceChanged {
                user_id: caller.user_id.clone(),
            })
            .await;
        }
        for (conn, old) in other_devices.iter().filter(|(_, old)| **old != *channel.id) {
            self.emit(DomainEvent::ChannelUnselected {
                workspace_id: channel.workspace_id.clone(),
                channel_id: old.to_string(),
                user_id: caller.user_id.clone(),
                socket_id: conn.to_string(),
            })
            .await;
        }
        if let Some(old) = left {
            self.emit(DomainEvent::ChannelUnselected {
                workspace_id: channel.workspace_id.clone(),
                channel_id: old.to_string(),
                user_id: caller.user_id.clone(),
                socket_id: socket_id.into(),
            })
            .await;
        }
        self.emit(DomainEvent::ChannelSelected {
            workspace_id: channel.workspace_id.clone(),
            channel_id: channel.id.clone(),
            user_id: caller.user_id.clone(),
            socket_id: socket_id.into(),
            media: state,
            replaced: other_devices
                .iter()
                .filter(|(_, old)| **old == *channel.id)
                .map(|(c, _)| c.to_string())
                .collect(),
        })
        .await;
        for invite in self.invites.take_for(&caller.user_id, &channel.id) {
            self.emit(DomainEvent::InviteCancelled {
                invite_id: invite.id,
                to_user_id: invite.to,
            })
            .await;
        }
        Ok(Selection {
            connection_options: self.connection_options(&caller.user_id, &channel.id, socket_id)?,
        })
    }

    fn connection_options(
        &self,
        user_id: &str,
        channel_id: &str,
        socket_id: &str,
    ) -> DomainResult<ConnectionOptions> {
        let media = &self.cfg.media;
        let now = chrono::Utc::now().timestamp();
        let exp = now + i64::try_from(media.channel_token_ttl.as_secs()).unwrap_or(3600);
        // Signed with the access-token key, with `sid` = `{channel}:{socket}`: it can
        // never pass as an access token, since no session has such an id.
        let token = self.keys.sign(&Claims {
            sub: user_id.into(),
            sid: format!("{channel_id}:{socket_id}"),
            iat: now,
            exp,
        })?;
        Ok(ConnectionOptions {
            janus_server_url: media.janus_server_url.clone(),
            janus_ws_server_url: media.janus_ws_server_url.clone(),
            janus_auth_token: media.janus_auth_token.clone(),
            audio_room_id: room_id(channel_id, b'a'),
            video_room_id: room_id(channel_id, b'v'),
            channel_auth_token: token,
        })
    }

    /// Leaves the call in `channel_id` on this device.
    pub async fn unselect_channel(
        &self,
        caller: &Caller,
        socket_id: &str,
        channel_id: &str,
    ) -> DomainResult<()> {
        let device = self.device_of(caller, socket_id)?;
        let id = parse_id(channel_id, "channel")?;
        match device.channel.as_deref() {
            Some(c) if c == id => {}
            Some(_) => {
                return Err(DomainError::invalid(
                    "channelId",
                    "Channel was selected by another device",
                ))
            }
            None => return Err(DomainError::invalid("channelId", "Channel is not selected")),
        }
        self.presence.unselect(socket_id).map_err(presence_error)?;
        self.emit(DomainEvent::ChannelUnselected {
            workspace_id: device.workspace_id.to_string(),
            channel_id: id,
            user_id: caller.user_id.clone(),
            socket_id: socket_id.into(),
        })
        .await;
        Ok(())
    }

    /// Updates this device's media state; peers in the channel are told.
    pub async fn update_media_state(
        &self,
        caller: &Caller,
        socket_id: &str,
        media: MediaInput,
    ) -> DomainResult<MediaState> {
        let device = self.device_of(caller, socket_id)?;
        let state = apply_media(&device.media, media);
        let channel = self
            .presence
            .set_media(socket_id, state.clone())
            .map_err(presence_error)?;
        self.emit(DomainEvent::MediaStateUpdated {
            workspace_id: device.workspace_id.to_string(),
            channel_id: channel.to_string(),
            user_id: caller.user_id.clone(),
            media: state.clone(),
        })
        .await;
        Ok(state)
    }

    /// Sets this device's status by hand.
    pub async fn set_online_status(
        &self,
        caller: &Caller,
        socket_id: &str,
        status: OnlineStatus,
    ) -> DomainResult<()> {
        self.device_of(caller, socket_id)?;
        if let Some(agg) = self
            .presence
            .set_status(socket_id, status)
            .map_err(presence_error)?
        {
            self.status_changed(&caller.user_id, agg).await?;
        }
        self.emit(DomainEvent::MyOnlineStatusUpdated {
            user_id: caller.user_id.clone(),
            status,
            socket_id: socket_id.into(),
        })
        .await;
        Ok(())
    }

    /// Asks another participant of the caller's call to mute.
    pub async fn mute_for_all(
        &self,
        caller: &Caller,
        socket_id: &str,
        target_user: &str,
    ) -> DomainResult<()> {
        let device = self.device_of(caller, socket_id)?;
        let channel = device
            .channel
            .ok_or_else(|| DomainError::invalid("socketId", "you are not in a call"))?;
        let target = self
            .presence
            .in_channel(&channel)
            .into_iter()
            .find(|d| *d.user_id == *target_user && d.user_id != device.user_id)
            .ok_or_else(|| DomainError::invalid("userId", "the user is not in your call"))?;
        self.emit(DomainEvent::MutedForAll {
            from_user_id: caller.user_id.clone(),
            to_user_id: target.user_id.to_string(),
            socket_id: target.conn.to_string(),
        })
        .await;
        Ok(())
    }

    /// The devices in a call in a channel the caller can see.
    pub async fn active_users(
        &self,
        caller: &Caller,
        channel_id: &str,
    ) -> DomainResult<Vec<ActiveUser>> {
        let view = self.channel_view(caller, channel_id).await?;
        Ok(self
            .presence
            .in_channel(&view.channel.id)
            .into_iter()
            .map(|d| ActiveUser {
                user_id: d.user_id.to_string(),
                socket_id: d.conn.to_string(),
                media: d.media,
            })
            .collect())
    }

    /// Relays a client's `conversation-broadcast` to everyone in its call,
    /// with the binary `attachments` its placeholders name (see
    /// [`DomainEvent::ConversationBroadcast`]).
    pub async fn conversation_broadcast(
        &self,
        conn: &str,
        action: Value,
        data: Value,
        attachments: Vec<bytes::Bytes>,
    ) -> DomainResult<()> {
        let d = self
            .presence
            .device(conn)
            .ok_or_else(|| DomainError::invalid("socketId", "Socket not found"))?;
        let channel = d
            .channel
            .ok_or_else(|| DomainError::invalid("channelId", "Channel is not selected"))?;
        self.emit(DomainEvent::ConversationBroadcast {
            channel_id: channel.to_string(),
            user_id: d.user_id.to_string(),
            action,
            data,
            attachments,
        })
        .await;
        Ok(())
    }

    /// Invites a workspace member into a call. A second invite for the same
    /// person and channel returns the pending one. Invites needing a response
    /// get `no-response` after the invite timeout.
    pub async fn send_invite(
        self: &Arc<Self>,
        caller: &Caller,
        to_user: &str,
        channel_id: &str,
        is_response_needed: bool,
        message: Value,
    ) -> DomainResult<String> {
        let view = self.channel_view(caller, channel_id).await?;
        let to = uuid::Uuid::parse_str(to_user)
            .map_err(|_| DomainError::invalid("userId", "not a user id"))?
            .to_string();
        if to == caller.user_id {
            return Err(DomainError::invalid("userId", "you cannot invite yourself"));
        }
        let target = self
            .channel_access(&view.channel, &to)
            .await?
            .ok_or_else(|| DomainError::invalid("userId", "not a member of this workspace"))?;
        if !target.can_see() {
            return Err(DomainError::Forbidden(
                "the invitee cannot see this channel; add them to it first",
            ));
        }
        if self
            .presence
            .in_channel(&view.channel.id)
            .iter()
            .any(|d| *d.user_id == *to)
        {
            return Err(DomainError::Conflict(
                "the user is already in this call".into(),
            ));
        }
        if let Some(existing) =
            self.invites
                .existing(&caller.user_id, &to, &view.channel.id, is_response_needed)
        {
            return Ok(existing.id);
        }
        let invite = Invite {
            id: new_id(),
            from: caller.user_id.clone(),
            to: to.clone(),
            workspace_id: view.channel.workspace_id.clone(),
            channel_id: view.channel.id.clone(),
            is_response_needed,
        };
        if !self.invites.insert(invite.clone()) {
            return Err(DomainError::Conflict(
                "too many pending invites; try again later".into(),
            ));
        }
        self.emit(DomainEvent::InviteSent {
            invite_id: invite.id.clone(),
            from_user_id: invite.from.clone(),
            to_user_id: to,
            workspace_id: invite.workspace_id.clone(),
            channel_id: invite.channel_id.clone(),
            is_response_needed,
            message,
        })
        .await;
        // Every invite expires after the timeout so the store stays bounded; one
        // that needed an answer tells its sender `no-response`.
        let domain = Arc::clone(self);
        let id = invite.id.clone();
        let timeout = self.cfg.realtime.invite_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(expired) = domain.invites.take(&id) {
                if expired.is_response_needed {
                    domain
                        .emit(DomainEvent::InviteResponded {
                            invite_id: expired.id,
                            responder_id: expired.to,
                            to_user_id: expired.from,
                            response: Value::from("no-response"),
                        })
                        .await;
                }
            }
        });
        Ok(invite.id)
    }

    /// Answers an invite addressed to the caller.
    pub async fn respond_invite(
        &self,
        caller: &Caller,
        invite_id: &str,
        response: Value,
    ) -> DomainResult<()> {
        match self.invites.get(invite_id) {
            Some(i) if i.to == caller.user_id => {}
            _ => return Err(DomainError::NotFound("invite")),
        }
        let invite = self
            .invites
            .take(invite_id)
            .ok_or(DomainError::NotFound("invite"))?;
        self.emit(DomainEvent::InviteResponded {
            invite_id: invite.id,
            responder_id: invite.to,
            to_user_id: invite.from,
            response,
        })
        .await;
        Ok(())
    }

    /// Withdraws an invite the caller sent.
    pub async fn cancel_invite(&self, caller: &Caller, invite_id: &str) -> DomainResult<()> {
        match self.invites.get(invite_id) {
            Some(i) if i.from == caller.user_id => {}
            _ => return Err(DomainError::NotFound("invite")),
        }
        let invite = self
            .invites
            .take(invite_id)
            .ok_or(DomainError::NotFound("invite"))?;
        self.emit(DomainEvent::InviteCancelled {
            invite_id: invite.id,
            to_user_id: invite.to,
        })
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mic: bool, cam: bool, screen: bool, speaking: bool) -> MediaInput {
        MediaInput {
            microphone: mic,
            speakers: true,
            screen,
            camera: cam,
            speaking,
        }
    }

    #[test]
    fn media_rules() {
        let s1 = apply_media(&MediaState::default(), input(true, true, false, true));
        assert!(
            s1.start_camera_ts.is_some()
                && s1.start_speaking_ts.is_some()
                && s1.start_screen_ts.is_none()
        );
        let s2 = apply_media(&s1, input(true, true, true, true));
        assert_eq!(
            s2.start_camera_ts, s1.start_camera_ts,
            "staying on keeps the stamp"
        );
        assert!(s2.start_screen_ts.is_some());
        let s3 = apply_media(&s2, input(false, false, true, true));
        assert!(!s3.speaking, "microphone off forces speaking off");
        assert!(s3.start_speaking_ts.is_none() && s3.start_camera_ts.is_none());
        assert_eq!(s3.start_screen_ts, s2.start_screen_ts);
    }

    #[test]
    fn room_ids_are_stable_and_distinct() {
        assert_eq!(room_id("c", b'a'), room_id("c", b'a'));
        assert_ne!(room_id("c", b'a'), room_id("c", b'v'));
        assert!(room_id("c", b'a') > 0);
    }
}
