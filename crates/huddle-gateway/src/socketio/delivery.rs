//! Bus → sockets. One task reads every publication in order, updates the
//! sockets' subscriptions for membership changes *before* anything later is
//! delivered (so a kicked user's sockets receive nothing after the kick), then
//! encodes the seed's event once and hands it to the hub for its audience.
//!
//! Audiences follow SPEC §3; who may see a channel is the domain's answer.

use std::sync::Arc;

use serde_json::{json, Value};

use huddle_core::{BusRecvError, DisconnectReason, Frame, Topic};
use huddle_domain::events::Visibility;
use huddle_domain::roles::WorkspaceRole;
use huddle_domain::{DomainEvent, DomainResult};

use super::{
    topic_channel, topic_conversation, topic_member, topic_public, topic_session, topic_user,
    topic_workspace, Realtime,
};

pub(crate) fn spawn(rt: Arc<Realtime>) -> tokio::task::JoinHandle<()> {
    let mut sub = rt.domain.bus().subscribe();
    tokio::spawn(huddle_core::as_subscriber(async move {
        loop {
            match sub.recv().await {
                Ok(p) => {
                    let event: DomainEvent = match serde_json::from_slice(&p.payload) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::error!(event = %p.event, error = %e, "undecodable publication");
                            continue;
                        }
                    };
                    if let Err(e) = rt.deliver_community(&event).await {
                        tracing::error!(event = %p.event, error = %e, "community delivery failed");
                    }
                    if let Err(e) = rt.deliver(event).await {
                        tracing::error!(event = %p.event, error = %e, "delivery failed");
                    }
                }
                Err(BusRecvError::Lagged(n)) => {
                    // Subscriptions may now be stale: every client must resynchronise.
                    tracing::error!(
                        lost = n,
                        "socket delivery lagged behind the bus; disconnecting every socket"
                    );
                    rt.close_all(DisconnectReason::SlowConsumer);
                }
                Err(BusRecvError::Closed) => return,
            }
        }
    }))
}

fn frame(event: &str, payload: &impl serde::Serialize) -> Option<Frame> {
    match Frame::encode(event, payload) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(event, error = %e, "cannot encode event");
            None
        }
    }
}

impl Realtime {
    fn emit(&self, topic: &Topic, event: &str, payload: &impl serde::Serialize) {
        if let Some(f) = frame(event, payload) {
            self.hub.publish(topic, &f, None);
        }
    }

    fn emit_many(&self, topics: &[Topic], event: &str, payload: &impl serde::Serialize) {
        if let Some(f) = frame(event, payload) {
            self.hub.publish_many(topics, &f, None);
        }
    }

    /// Closes the sockets subscribed to `topic` and forgets them.
    fn close_topic(&self, topic: &Topic, reason: DisconnectReason) {
        for id in self.hub.subscribers(topic) {
            if let Some(conn) = self.hub.connection(&id) {
                self.hub.unregister(&id);
                conn.close(reason);
            }
        }
    }

    fn close_all(&self, reason: DisconnectReason) {
        for (id, _) in self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some(conn) = self.hub.connection(id) {
                self.hub.unregister(id);
                conn.close(reason);
            }
        }
    }

    /// Re-derives the channel topics of `user`'s sockets in `ws` from what they may see now.
    async fn resync_channels(&self, ws: &str, user: &str) -> DomainResult<Vec<String>> {
        let visible = self.domain.visible_channel_ids(ws, user).await?;
        for id in self.hub.subscribers(&topic_member(ws, user)) {
            for t in self.hub_channel_topics(&id) {
                if !visible.iter().any(|c| topic_channel(c) == t) {
                    self.hub.leave(&id, &t);
                }
            }
            for c in &visible {
                self.hub.join(&id, topic_channel(c));
            }
        }
        Ok(visible)
    }

    fn hub_channel_topics(&self, id: &str) -> Vec<Topic> {
        self.hub
            .topics_of(id)
            .into_iter()
            .filter(|t| t.kind() == "channel")
            .collect()
    }

    async fn deliver(&self, event: DomainEvent) -> DomainResult<()> {
        match event {
            DomainEvent::SignedIn { .. }
            | DomainEvent::AccountActivated { .. }
            | DomainEvent::Chat { .. }
            | DomainEvent::CometPipe { .. }
            | DomainEvent::CometUserMessage { .. } => {}
            DomainEvent::SessionEnded { session_id, .. } => {
                self.close_forgotten(&topic_session(&session_id)).await;
            }
            DomainEvent::AccountRemoved { user_id, .. } => {
                self.close_forgotten(&topic_user(&user_id)).await;
            }
            DomainEvent::UserUpdated {
                user_id,
                workspace_ids,
            } => {
                if let Some(user) = self.domain.user_view(&user_id).await? {
                    let topics: Vec<Topic> =
                        workspace_ids.iter().map(|w| topic_workspace(w)).collect();
                    self.emit_many(&topics, "user-updated", &json!({ "user": user }));
                }
            }
            DomainEvent::MeUpdated { user_id, what } => {
                if let Some(me) = self.domain.me_view(&user_id).await? {
                    let mut payload = json!({ "user": me });
                    if let Some(w) = what {
                        payload["whatWasUpdated"] = Value::from(w);
                    }
                    self.emit(&topic_user(&user_id), "me-updated", &payload);
                }
            }
            DomainEvent::PasswordChanged { user_id } => {
                self.emit(&topic_user(&user_id), "password-changed", &Value::Null)
            }
            DomainEvent::WorkspaceAdded {
                user_id,
                workspace_id,
            } => {
                if let Some(w) = self.domain.workspace_for(&workspace_id, &user_id).await? {
                    self.emit(
                        &topic_user(&user_id),
                        "workspace-added",
                        &json!({ "workspace": w }),
                    );
                }
            }
            DomainEvent::WorkspaceUpdated { workspace_id } => {
                if let Some(w) = self.domain.workspace_view(&workspace_id).await? {
                    self.emit(
                        &topic_workspace(&workspace_id),
                        "workspace-updated",
                        &json!({ "workspace": w }),
                    );
                }
            }
            DomainEvent::WorkspaceDeleted { workspace_id, .. } => {
                let topic = topic_workspace(&workspace_id);
                self.emit(
                    &topic,
                    "workspace-deleted",
                    &json!({ "workspaceId": workspace_id }),
                );
                // Its sockets are bound to a workspace that is gone: closed,
                // as those of a departed member (below).
                self.close_forgotten(&topic).await;
            }
            DomainEvent::MemberJoined {
                workspace_id,
                user_id,
            } => {
                if let Some(user) = self.domain.user_view(&user_id).await? {
                    self.emit(
                        &topic_workspace(&workspace_id),
                        "user-joined",
                        &json!({ "user": user }),
                    );
                }
            }
            DomainEvent::MemberLeft {
                workspace_id,
                user_id,
                kicked,
            } => {
                let member = topic_member(&workspace_id, &user_id);
                if kicked {
                    self.emit(
                        &member,
                        "kicked-from-workspace",
                        &json!({ "workspaceId": workspace_id }),
                    );
                }
                // A socket of `/` is bound to one workspace: its user no longer
                // being a member, it is closed (after the notice queued above),
                // as the community sockets are. Merely unsubscribed, it stayed
                // authenticated and counted where no later sign-out or account
                // deletion, addressed by topic, could reach it.
                self.close_forgotten(&member).await;
                let payload = json!({ "userId": user_id, "workspaceId": workspace_id });
                self.emit(
                    &topic_workspace(&workspace_id),
                    "user-leaved-workspace",
                    &payload,
                );
            }
            DomainEvent::MemberRoleChanged {
                workspace_id,
                user_id,
                role,
            } => {
                let role = WorkspaceRole::parse(&role)?;
                self.set_role(&workspace_id, &user_id, role);
                for id in self.hub.subscribers(&topic_member(&workspace_id, &user_id)) {
                    if role == WorkspaceRole::Guest {
                        self.hub.leave(&id, &topic_public(&workspace_id));
                    } else {
                        self.hub.join(&id, topic_public(&workspace_id));
                    }
                }
                self.resync_channels(&workspace_id, &user_id).await?;
            }
            DomainEvent::ChannelCreated {
                workspace_id,
                channel_id,
                visibility,
                member_ids,
            } => {
                let channel = topic_channel(&channel_id);
                let audience = match visibility {
                    Visibility::Public => self.hub.subscribers(&topic_public(&workspace_id)),
                    Visibility::Private => member_ids
                        .iter()
                        .flat_map(|m| self.hub.subscribers(&topic_member(&workspace_id, m)))
                        .collect(),
                };
                for id in &audience {
                    self.hub.join(id, channel.clone());
                }
                let payload = json!({ "channelId": channel_id, "workspaceId": workspace_id });
                self.emit(&channel, "channel-created", &payload);
            }
            DomainEvent::ChannelUpdated { channel_id, .. } => {
                if let Some(c) = self.domain.channel_view_by_id(&channel_id).await? {
                    self.emit(
                        &topic_channel(&channel_id),
                        "channel-updated",
                        &json!({ "channel": c }),
                    );
                }
            }
            DomainEvent::ChannelDeleted {
                workspace_id,
                channel_id,
                ..
            } => {
                let channel = topic_channel(&channel_id);
                self.emit(
                    &channel,
                    "channel-deleted",
                    &json!({ "channelId": channel_id, "workspaceId": workspace_id }),
                );
                self.hub.drop_topic(&channel);
                self.hub.drop_topic(&topic_conversation(&channel_id));
            }
            DomainEvent::ChannelMembersAdded {
                workspace_id,
                channel_id,
                user_ids,
            } => {
                let channel = topic_channel(&channel_id);
                let payload = json!({ "channelId": channel_id, "workspaceId": workspace_id });
                let Some(f) = frame("channel-created", &payload) else {
                    return Ok(());
                };
                for user in &user_ids {
                    for id in self.hub.subscribers(&topic_member(&workspace_id, user)) {
                        if !self.hub.is_subscribed(&id, &channel) {
                            self.hub.join(&id, channel.clone());
                            if let Some(conn) = self.hub.connection(&id) {
                                self.hub.send_to(&conn, &f);
                            }
                        }
                    }
                }
            }
            DomainEvent::ChannelMemberRemoved {
                workspace_id,
                channel_id,
                user_id,
            } => {
                if !self.domain.can_see_channel(&channel_id, &user_id).await? {
                    let member = topic_member(&workspace_id, &user_id);
                    let payload = json!({ "channelId": channel_id, "workspaceId": workspace_id });
                    if let Some(f) = frame("channel-deleted", &payload) {
                        for id in self.hub.subscribers(&member) {
                            if self.hub.is_subscribed(&id, &topic_channel(&channel_id)) {
                                if let Some(conn) = self.hub.connection(&id) {
                                    self.hub.send_to(&conn, &f);
                                }
                                self.hub.leave(&id, &topic_channel(&channel_id));
                                self.hub.leave(&id, &topic_conversation(&channel_id));
                            }
                        }
                    }
                }
            }
            DomainEvent::ChannelSelected {
                channel_id,
                user_id,
                socket_id,
                media,
                replaced,
                ..
            } => {
                for old in &replaced {
                    self.hub.leave(old, &topic_conversation(&channel_id));
                }
                self.hub.join(&socket_id, topic_conversation(&channel_id));
                let payload = json!({ "userId": user_id, "channelId": channel_id, "userMediaState": media, "socketId": socket_id });
                self.emit(
                    &topic_channel(&channel_id),
                    "user-selected-channel",
                    &payload,
                );
            }
            DomainEvent::ChannelUnselected {
                channel_id,
                user_id,
                socket_id,
                ..
            } => {
                self.hub.leave(&socket_id, &topic_conversation(&channel_id));
                let payload =
                    json!({ "userId": user_id, "channelId": channel_id, "socketId": socket_id });
                self.emit(
                    &topic_channel(&channel_id),
                    "user-unselected-channel",
                    &payload,
                );
            }
            DomainEvent::DeviceChanged { user_id } => {
                self.emit(&topic_user(&user_id), "user-changed-device", &Value::Null)
            }
            DomainEvent::MediaStateUpdated {
                channel_id,
                user_id,
                media,
                ..
            } => {
                let payload =
                    json!({ "userId": user_id, "userMediaState": media, "channelId": channel_id });
                self.emit(&topic_channel(&channel_id), "media-state-updated", &payload);
            }
            DomainEvent::OnlineStatusUpdated {
                user_id,
                status,
                workspace_ids,
            } => {
                let topics: Vec<Topic> = workspace_ids.iter().map(|w| topic_workspace(w)).collect();
                self.emit_many(
                    &topics,
                    "online-status-updated",
                    &json!({ "userId": user_id, "onlineStatus": status }),
                );
            }
            DomainEvent::MyOnlineStatusUpdated {
                user_id,
                status,
                socket_id,
            } => {
                if let Some(f) = frame(
                    "my-online-status-updated",
                    &json!({ "onlineStatus": status }),
                ) {
                    self.hub
                        .publish(&topic_user(&user_id), &f, Some(&socket_id));
                }
            }
            DomainEvent::InviteSent {
                invite_id,
                from_user_id,
                to_user_id,
                workspace_id,
                channel_id,
                is_response_needed,
                message,
            } => {
                let payload = json!({
                    "inviteId": invite_id, "isResponseNeeded": is_response_needed, "userId": from_user_id,
                    "workspaceId": workspace_id, "channelId": channel_id, "message": message,
                });
                self.emit(&topic_user(&to_user_id), "invite", &payload);
            }
            DomainEvent::InviteResponded {
                invite_id,
                responder_id,
                to_user_id,
                response,
            } => {
                let payload =
                    json!({ "inviteId": invite_id, "userId": responder_id, "response": response });
                self.emit(&topic_user(&to_user_id), "invite-response", &payload);
            }
            DomainEvent::InviteCancelled {
                invite_id,
                to_user_id,
            } => {
                self.emit(
                    &topic_user(&to_user_id),
                    "invite-cancelled",
                    &json!({ "inviteId": invite_id }),
                );
            }
            DomainEvent::MutedForAll {
                from_user_id,
                to_user_id,
                socket_id,
            } => {
                self.emit(
                    &topic_user(&to_user_id),
                    "muted-for-all",
                    &json!({ "fromUserId": from_user_id, "socketId": socket_id }),
                );
            }
            DomainEvent::ConversationBroadcast {
                channel_id,
                user_id,
                action,
                data,
                attachments,
            } => {
                // Placeholders stay as the client sent them; the attachments
                // they name go along, shared by every receiver.
                let payload = json!({ "action": action, "userId": user_id, "data": data });
                if let Some(f) = frame("conversation-broadcast", &payload) {
                    let f = f.with_attachments(attachments.into());
                    self.hub.publish(&topic_conversation(&channel_id), &f, None);
                }
            }
        }
        Ok(())
    }

    /// Forgets (presence at once) and closes every socket subscribed to `topic`.
    async fn close_forgotten(&self, topic: &Topic) {
        for id in self.hub.subscribers(topic) {
            if let Err(e) = self.forget(&id).await {
                tracing::error!(socket = %id, error = %e, "socket cleanup failed");
            }
        }
        self.close_topic(topic, DisconnectReason::SessionEnded);
    }

    /// Forgets an authenticated socket that the server is about to close.
    async fn forget(&self, id: &str) -> DomainResult<()> {
        if self.take_ctx(id).is_some() {
            self.domain.socket_closed(id, true).await?;
        }
        Ok(())
    }
}
