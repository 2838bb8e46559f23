//! Namespaces `/socket/commu-{workspaceId}`: the community chat API of seed 002
//! (SPEC §4). Handshake `auth: {token: "Bearer <accessToken>"}`; `join`, `chat`
//! and `invite-users-to-channel` with the seed's acknowledgements.
//!
//! Unlike the original, `join` joins only the calling socket and only to
//! channels it may read, and invites reach the invitees' sockets in this
//! namespace wherever they connected. Topics are `commu-*`, separate from the
//! workspace namespace's, so the two APIs never see each other's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use axum::http::HeaderName;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use huddle_core::{ConnId, Connection, DisconnectReason, Frame, Refusal, Topic};
use huddle_domain::{Caller, DomainError, DomainEvent, DomainResult};
use huddle_sio::{Event, Handler, Reason, Socket};

use super::workspace_ns::message;
use super::Realtime;

/// Handshake headers that may carry the token (kept by the transport).
pub(crate) const HANDSHAKE_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("token"),
    HeaderName::from_static("authorization"),
];

pub(crate) fn topic_ws(ws: &str) -> Topic {
    Topic::new("commu-ws", ws)
}
pub(crate) fn topic_member(ws: &str, user: &str) -> Topic {
    Topic::new("commu-member", format_args!("{ws}:{user}"))
}
pub(crate) fn topic_user(user: &str) -> Topic {
    Topic::new("commu-user", user)
}
pub(crate) fn topic_session(sid: &str) -> Topic {
    Topic::new("commu-session", sid)
}
pub(crate) fn topic_channel(ch: &str) -> Topic {
    Topic::new("commu-channel", ch)
}

/// What an authenticated community socket is.
#[derive(Debug, Clone)]
pub(crate) struct CommuCtx {
    pub caller: Caller,
    pub workspace_id: String,
}

/// The authenticated community sockets and how many each user has, for
/// `limits.max_connections_per_user`. Community sockets are counted apart from
/// the workspace sockets of namespace `/` (a separate API, as comet is): a
/// user has at most that many of each. One std `Mutex`, never held across
/// `.await`; a user's count leaves the map with their last socket.
#[derive(Default)]
pub(crate) struct CommuSockets {
    inner: Mutex<CommuInner>,
}

#[derive(Default)]
struct CommuInner {
    sockets: HashMap<ConnId, CommuCtx>,
    per_user: HashMap<String, usize>,
}

impl CommuSockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, CommuInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, id: &str) -> Option<CommuCtx> {
        self.lock().sockets.get(id).cloned()
    }

    /// Adds an authenticated socket, unless its user already has `max`.
    pub(crate) fn insert(&self, id: ConnId, ctx: CommuCtx, max: usize) -> Result<(), ()> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.sockets.contains_key(&id) {
            return Ok(());
        }
        let n = inner
            .per_user
            .entry(ctx.caller.user_id.clone())
            .or_default();
        if *n >= max {
            if *n == 0 {
                inner.per_user.remove(&ctx.caller.user_id);
            }
            return Err(());
        }
        *n += 1;
        inner.sockets.insert(id, ctx);
        Ok(())
    }

    /// Forgets a socket and frees its user's slot; `None` if it was not here.
    pub(crate) fn remove(&self, id: &str) -> Option<CommuCtx> {
        let mut inner = self.lock();
        let ctx = inner.sockets.remove(id)?;
        if let Some(n) = inner.per_user.get_mut(&ctx.caller.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.per_user.remove(&ctx.caller.user_id);
            }
        }
        Some(ctx)
    }

    /// Authenticated community sockets.
    pub(crate) fn len(&self) -> usize {
        self.lock().sockets.len()
    }
}

/// The handler of the namespaces `/socket/{name}`.
pub(crate) struct CommunityNs(pub Weak<Realtime>);

impl Handler for CommunityNs {
    /// Authenticates in the handshake: a refusal is the client's `connect_error`.
    fn connect(
        &self,
        socket: Arc<Socket>,
        auth: Option<Value>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let rt = self.0.upgrade();
        Box::pin(async move {
            let rt = rt.ok_or_else(|| "Server is shutting down".to_owned())?;
            handshake(rt, socket, auth).await
        })
    }

    fn event(&self, socket: Arc<Socket>, event: Event) -> BoxFuture<'static, ()> {
        let rt = self.0.upgrade();
        Box::pin(async move {
            if let Some(rt) = rt {
                on_event(rt, socket, event).await;
            }
        })
    }

    fn malformed(
        &self,
        socket: Arc<Socket>,
        ack: Option<u64>,
        error: &'static str,
    ) -> BoxFuture<'static, ()> {
        let m = format!("Malformed packet: {error}");
        answer(&socket, ack, json!({ "error": m }), Some(m.clone()));
        Box::pin(std::future::ready(()))
    }

    fn disconnect(&self, socket: Arc<Socket>, _reason: Reason) -> BoxFuture<'static, ()> {
        let rt = self.0.upgrade();
        Box::pin(async move {
            if let Some(rt) = rt {
                let id = socket.id();
                rt.commu.remove(id);
                rt.hub.unregister(id);
            }
        })
    }
}

fn token_of(socket: &Socket, auth: Option<&Value>) -> Option<String> {
    if let Some(t) = auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    socket
        .header("token")
        .or_else(|| socket.header("authorization"))
        .map(str::to_owned)
}

async fn handshake(
    rt: Arc<Realtime>,
    socket: Arc<Socket>,
    auth: Option<Value>,
) -> Result<(), String> {
    let Some(ws) = socket
        .ns()
        .strip_prefix("/socket/commu-")
        .map(str::to_owned)
    else {
        return Err("Forbidden".into());
    };
    let token = token_of(&socket, auth.as_ref()).ok_or("Unauthorized")?;
    let caller = rt.domain.community_auth(&token, &ws).await?;
    let ws = uuid::Uuid::parse_str(&ws)
        .map_err(|_| "Forbidden")?
        .to_string();
    let id = socket.id().clone();
    let topics = [
        topic_ws(&ws),
        topic_member(&ws, &caller.user_id),
        topic_user(&caller.user_id),
        topic_session(&caller.session_id),
    ];
    // The slot first: a refused socket never reaches the hub.
    let max = rt.domain.realtime().max_connections_per_user;
    let (session_id, user_id, workspace_id) = (
        caller.session_id.clone(),
        caller.user_id.clone(),
        ws.clone(),
    );
    let ctx = CommuCtx {
        caller,
        workspace_id: ws,
    };
    if rt.commu.insert(id.clone(), ctx, max).is_err() {
        rt.domain.refusals().count(Refusal::ConnectionsPerUser);
        return Err(format!(
            "Too many connections: at most {max} community sockets per user"
        ));
    }
    let conn: Arc<dyn Connection> = socket;
    rt.hub.register(conn);
    for t in topics {
        rt.hub.join(&id, t);
    }
    // The token and membership were read before the socket subscribed: an end
    // committed in between published its close event to no one. Checked again
    // now, an end this misses reaches the subscribed socket (see
    // `Domain::socket_still_authorized`).
    let still = rt
        .domain
        .socket_still_authorized(&session_id, &user_id, &workspace_id)
        .await;
    if !matches!(still, Ok(true)) {
        if let Err(e) = still {
            tracing::error!(socket = %id, error = %e, "re-checking a community handshake failed");
        }
        rt.commu.remove(&id);
        rt.hub.unregister(&id);
        return Err("Unauthorized".into());
    }
    Ok(())
}

/// Answers through the ack when one was asked for; otherwise reports a failure
/// as `failed-to-send-message`.
fn answer(s: &Socket, ack: Option<u64>, reply: Value, failure: Option<String>) {
    if let Some(id) = ack {
        let _full = s.ack(id, &reply);
    } else if let Some(m) = failure {
        let _full = s.emit("failed-to-send-message", &json!({ "message": m }));
    }
}

/// The namespace's acknowledged client events: one handler shape for all.
#[derive(Debug, Clone, Copy)]
enum Op {
    Join,
    Chat,
    Invite,
}

impl Op {
    fn parse(event: &str) -> Option<Op> {
        match event {
            "join" => Some(Op::Join),
            "chat" => Some(Op::Chat),
            "invite-users-to-channel" => Some(Op::Invite),
            _ => None,
        }
    }

    /// The acknowledgement of a success.
    async fn run(self, rt: &Realtime, id: &str, v: Option<Value>) -> DomainResult<Value> {
        match self {
            Op::Join => join(rt, id, v)
                .await
                .map(|(joined, refused)| json!({ "joined": joined, "refused": refused })),
            Op::Chat => chat(rt, id, v)
                .await
                .map(|info| json!({ "written": true, "chatInfo": info })),
            Op::Invite => invite(rt, id, v)
                .await
                .map(|()| json!({ "isSuccess": true })),
        }
    }

    /// The acknowledgement of a failure, in the seed's shape.
    fn failure(self, m: &str) -> Value {
        match self {
            Op::Join => json!({ "joined": [], "refused": [], "error": m }),
            Op::Chat => json!({ "written": false, "error": m }),
            Op::Invite => json!({ "isSuccess": false, "error": m }),
        }
    }
}

async fn on_event(rt: Arc<Realtime>, s: Arc<Socket>, ev: Event) {
    let id = s.id().clone();
    let admitted = rt.admit(&s);
    let Some(op) = Op::parse(&ev.name) else {
        let m = if admitted {
            format!("Unknown event {:?}", ev.name)
        } else {
            rate_limited().to_string()
        };
        let _full = s.emit("failed-to-send-message", &json!({ "message": m }));
        if let Some(ack) = ev.ack {
            // A client awaiting the ack is answered too.
            let _full = s.ack(ack, &json!({ "error": m }));
        }
        return;
    };
    let result = if !ev.attachments.is_empty() {
        // No community event takes binary: refused in its ack.
        Err(DomainError::invalid(
            "data",
            "Binary attachments are not supported",
        ))
    } else if admitted {
        op.run(&rt, &id, ev.args.into_iter().next()).await
    } else {
        Err(rate_limited())
    };
    match result {
        Ok(reply) => answer(&s, ev.ack, reply, None),
        Err(e) => {
            let m = message(&e);
            answer(&s, ev.ack, op.failure(&m), Some(m));
        }
    }
}

fn rate_limited() -> DomainError {
    DomainError::RateLimited {
        retry_after_secs: 1,
    }
}

fn ctx(rt: &Realtime, id: &str) -> DomainResult<CommuCtx> {
    rt.commu
        .get(id)
        .ok_or(DomainError::Unauthorized("Unauthorized"))
}

fn field_str<'a>(v: &'a Value, key: &'static str) -> DomainResult<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| DomainError::invalid(key, format!("{key} must be a string")))
}

/// Checks that a channel the caller can see belongs to this namespace's workspace.
async fn channel_here(rt: &Realtime, c: &CommuCtx, channel_id: &str) -> DomainResult<()> {
    rt.domain
        .check_channel_in(&c.caller, channel_id, &c.workspace_id)
        .await
}

/// Joins the calling socket to the channels it names that it may read here:
/// one query whatever their number, at most `limits.max_join_channels` ids
/// (more is refused whole, counted as `join_too_large`).
async fn join(
    rt: &Realtime,
    id: &str,
    v: Option<Value>,
) -> DomainResult<(Vec<String>, Vec<String>)> {
    let c = ctx(rt, id)?;
    let channels = v
        .as_ref()
        .and_then(|v| v.get("channels"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            DomainError::invalid("channels", "channels must be an array of channel ids")
        })?;
    let max = rt.domain.realtime().max_join_channels;
    if channels.len() > max {
        rt.domain.refusals().count(Refusal::JoinTooLarge);
        return Err(DomainError::invalid(
            "channels",
            format!("at most {max} channels per join"),
        ));
    }
    let mut refused: Vec<String> = Vec::new();
    let ids: Vec<&str> = channels
        .iter()
        .filter_map(|raw| {
            let s = raw.as_str();
            if s.is_none() {
                refused.push(raw.to_string());
            }
            s
        })
        .collect();
    let selection = rt
        .domain
        .readable_channels_in(&c.caller, &c.workspace_id, &ids)
        .await?;
    let mut joined = Vec::with_capacity(selection.readable.len());
    for (raw, channel) in selection.readable {
        rt.hub.join(id, topic_channel(&channel));
        joined.push(raw);
    }
    refused.extend(selection.refused);
    Ok((joined, refused))
}

async fn chat(
    rt: &Realtime,
    id: &str,
    v: Option<Value>,
) -> DomainResult<huddle_domain::chat::ChatInfo> {
    let c = ctx(rt, id)?;
    let v = v
        .filter(Value::is_object)
        .ok_or_else(|| DomainError::invalid("chat", "the chat event needs an object"))?;
    let kind = field_str(&v, "chatType")?;
    let channel = field_str(&v, "channelId")?;
    let within = Some(c.workspace_id.as_str());
    let chat_id = || {
        v.get("chatId")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
            .ok_or_else(|| DomainError::invalid("chatId", "chatId must be a positive integer"))
    };
    let origin = Some(id.to_owned());
    match kind {
        "new" => {
            rt.domain
                .post_chat(
                    &c.caller,
                    channel,
                    within,
                    None,
                    field_str(&v, "content")?,
                    origin,
                )
                .await
        }
        "modify" => {
            rt.domain
                .modify_chat(
                    &c.caller,
                    channel,
                    within,
                    chat_id()?,
                    field_str(&v, "content")?,
                    origin,
                )
                .await
        }
        "delete" => {
            rt.domain
                .delete_chat(&c.caller, channel, within, chat_id()?, origin)
                .await
        }
        _ => Err(DomainError::invalid(
            "chatType",
            "chatType must be new, modify or delete",
        )),
    }
}

async fn invite(rt: &Realtime, id: &str, v: Option<Value>) -> DomainResult<()> {
    let c = ctx(rt, id)?;
    let v = v
        .filter(Value::is_object)
        .ok_or_else(|| DomainError::invalid("invite", "the invite needs an object"))?;
    let community = field_str(&v, "community_id")?;
    if community != c.workspace_id {
        return Err(DomainError::invalid(
            "community_id",
            "community_id is not this namespace's community",
        ));
    }
    let channel = field_str(&v, "channel_id")?;
    channel_here(rt, &c, channel).await?;
    let users: Vec<String> = v
        .get("users")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|u| u.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| DomainError::invalid("users", "users must be an array of user ids"))?;
    rt.domain
        .add_channel_members(&c.caller, channel, &users)
        .await?;
    Ok(())
}

impl Realtime {
    fn frame(event: &str, payload: &impl serde::Serialize) -> Option<Frame> {
        Frame::encode(event, payload)
            .map_err(|e| tracing::error!(event, error = %e, "cannot encode"))
            .ok()
    }

    fn close_commu_topic(&self, topic: &Topic, reason: DisconnectReason) {
        for id in self.hub.subscribers(topic) {
            self.commu.remove(&id);
            if let Some(conn) = self.hub.connection(&id) {
                self.hub.unregister(&id);
                conn.close(reason);
            }
        }
    }

    /// Takes a user's community sockets out of a channel room they may no longer read.
    async fn leave_if_unseen(
        &self,
        workspace_id: &str,
        channel_id: &str,
        user_id: &str,
    ) -> DomainResult<()> {
        if !self.domain.can_see_channel(channel_id, user_id).await? {
            for id in self.hub.subscribers(&topic_member(workspace_id, user_id)) {
                self.hub.leave(&id, &topic_channel(channel_id));
            }
        }
        Ok(())
    }

    /// The community namespaces' share of an event's delivery.
    pub(crate) async fn deliver_community(&self, event: &DomainEvent) -> DomainResult<()> {
        match event {
            DomainEvent::Chat {
                action,
                chat,
                origin,
                ..
            } => {
                if let Some(f) = Self::frame(action.event(), chat) {
                    self.hub
                        .publish(&topic_channel(&chat.channel_id), &f, origin.as_deref());
                }
            }
            DomainEvent::ChannelMembersAdded {
                workspace_id,
                channel_id,
                user_ids,
            } => {
                let sockets: Vec<_> = user_ids
                    .iter()
                    .flat_map(|u| self.hub.subscribers(&topic_member(workspace_id, u)))
                    .collect();
                if sockets.is_empty() {
                    return Ok(());
                }
                let Some(channel) = self.domain.community_channel(channel_id).await? else {
                    return Ok(());
                };
                let Some(f) = Self::frame("invited-to-channel", &channel) else {
                    return Ok(());
                };
                let room = topic_channel(channel_id);
                for id in sockets {
                    if !self.hub.is_subscribed(&id, &room) {
                        self.hub.join(&id, room.clone());
                        if let Some(conn) = self.hub.connection(&id) {
                            self.hub.send_to(&conn, &f);
                        }
                    }
                }
            }
            DomainEvent::ChannelMemberRemoved {
                workspace_id,
                channel_id,
                user_id,
            } => {
                self.leave_if_unseen(workspace_id, channel_id, user_id)
                    .await?;
            }
            DomainEvent::MemberRoleChanged {
                workspace_id,
                user_id,
                ..
            } => {
                let visible = self
                    .domain
                    .visible_channel_ids(workspace_id, user_id)
                    .await?;
                for id in self.hub.subscribers(&topic_member(workspace_id, user_id)) {
                    for t in self
                        .hub
                        .topics_of(&id)
                        .into_iter()
                        .filter(|t| t.kind() == "commu-channel")
                    {
                        if !visible.iter().any(|c| topic_channel(c) == t) {
                            self.hub.leave(&id, &t);
                        }
                    }
                }
            }
            DomainEvent::ChannelDeleted { channel_id, .. } => {
                self.hub.drop_topic(&topic_channel(channel_id))
            }
            DomainEvent::MemberLeft {
                workspace_id,
                user_id,
                ..
            } => {
                self.close_commu_topic(
                    &topic_member(workspace_id, user_id),
                    DisconnectReason::SessionEnded,
                );
            }
            DomainEvent::WorkspaceDeleted { workspace_id, .. } => {
                self.close_commu_topic(&topic_ws(workspace_id), DisconnectReason::SessionEnded);
            }
            DomainEvent::SessionEnded { session_id, .. } => {
                self.close_commu_topic(&topic_session(session_id), DisconnectReason::SessionEnded);
            }
            DomainEvent::AccountRemoved { user_id, .. } => {
                self.close_commu_topic(&topic_user(user_id), DisconnectReason::SessionEnded);
            }
            _ => {}
        }
        Ok(())
    }
}
