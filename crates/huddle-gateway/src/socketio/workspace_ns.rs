//! Namespace `/`: the workspace events API of seeds 000/001 (SPEC §3). The
//! socket is subscribe-only apart from `auth`, `logout`,
//! `conversation-broadcast` and `ping` (an acknowledged echo, for latency
//! checks); everything else goes through REST with `?socketId=`.

use std::sync::{Arc, Weak};
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use huddle_core::Connection;
use huddle_domain::roles::WorkspaceRole;
use huddle_domain::{DomainError, SocketAuthInput};
use huddle_sio::{Event, Handler, Reason, Socket};

use super::{
    topic_channel, topic_conversation, topic_member, topic_public, topic_session, topic_user,
    topic_workspace, Realtime, SocketCtx,
};

/// What a client hears when it sends faster than its rate limit.
const RATE_LIMITED: &str = "Too many events: slow down";

/// The handler of namespace `/`.
pub(crate) struct WorkspaceNs(pub Weak<Realtime>);

impl Handler for WorkspaceNs {
    fn connect(
        &self,
        socket: Arc<Socket>,
        _auth: Option<Value>,
    ) -> BoxFuture<'static, Result<(), String>> {
        // Anyone may connect; `auth` must follow within the auth timeout.
        let rt = self.0.upgrade();
        Box::pin(async move {
            let rt = rt.ok_or_else(|| "Server is shutting down".to_owned())?;
            rt.await_auth(socket);
            Ok(())
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
        api_error(&socket, "", None, &m);
        ack_error(&socket, ack, &m);
        Box::pin(std::future::ready(()))
    }

    fn disconnect(&self, socket: Arc<Socket>, _reason: Reason) -> BoxFuture<'static, ()> {
        let rt = self.0.upgrade();
        Box::pin(async move {
            let Some(rt) = rt else { return };
            let id = socket.id();
            rt.auth_settled(id);
            if rt.take_ctx(id).is_some() {
                rt.hub.unregister(id);
                if let Err(e) = rt.domain.socket_closed(id, false).await {
                    tracing::error!(error = %e, "disconnect cleanup failed");
                }
            }
        })
    }
}

/// The text a client sees for a failed event. Internal errors are logged and
/// reported as `System error`, as the original server did.
pub(super) fn message(e: &DomainError) -> String {
    match e {
        DomainError::Internal(detail) => {
            tracing::error!(error = %detail, "socket handler failed");
            "System error".to_owned()
        }
        other => other.to_string(),
    }
}

/// Reports a failed client event on both error channels. (A full queue
/// already disconnected the client as a slow consumer.)
fn api_error(s: &Socket, event: &str, transaction: Option<&str>, message: &str) {
    let _full = s.emit(
        "socket-api-error",
        &json!({"event": event, "message": message}),
    );
    if let Some(t) = transaction {
        let _full = s.emit(
            &format!("socket-api-error-{t}"),
            &json!({"message": message}),
        );
    }
}

/// Answers an acknowledged event that failed with `{error}` in its ack, so a
/// client awaiting it (`emitWithAck`) does not wait forever.
fn ack_error(s: &Socket, ack: Option<u64>, message: &str) {
    if let Some(id) = ack {
        let _full = s.ack(id, &json!({ "error": message }));
    }
}

/// The events of `/` that take binary attachments (passed through as sent).
fn takes_binary(event: &str) -> bool {
    matches!(event, "ping" | "conversation-broadcast")
}

fn transaction_of(v: &Value) -> Option<String> {
    v.get("transaction")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn on_event(rt: Arc<Realtime>, s: Arc<Socket>, ev: Event) {
    let id = s.id().clone();
    let transaction = transaction_of(ev.data());
    // Leaving is never refused.
    if ev.name != "logout" && !rt.admit(&s) {
        ack_error(&s, ev.ack, RATE_LIMITED);
        return api_error(&s, &ev.name, transaction.as_deref(), RATE_LIMITED);
    }
    if !ev.attachments.is_empty() && !takes_binary(&ev.name) {
        let m = "Binary attachments are not supported by this event";
        ack_error(&s, ev.ack, m);
        return api_error(&s, &ev.name, transaction.as_deref(), m);
    }
    match ev.name.as_str() {
        // Its own task: event handlers are cancelled when the connection
        // closes, and an `auth` dropped between attaching the device and
        // setting the socket's context would leave a device no disconnect
        // finds. Run to its end, `auth` cleans up after a socket that went.
        "auth" => {
            let data = ev.data().clone();
            if let Err(e) = tokio::spawn(auth(rt, s, data, transaction)).await {
                tracing::error!(socket = %id, error = %e, "auth task failed");
            }
        }
        "logout" => {
            if rt.take_ctx(&id).is_some() {
                rt.hub.unregister(&id);
                if let Err(e) = rt.domain.socket_closed(&id, true).await {
                    tracing::error!(error = %e, "logout cleanup failed");
                }
            }
            s.disconnect();
        }
        "conversation-broadcast" => {
            let fail = |m: &str| api_error(&s, "conversation-broadcast", transaction.as_deref(), m);
            if rt.ctx(&id).is_none() {
                return fail("Socket is not authenticated");
            }
            let Some(obj) = Some(ev.data()).filter(|v| v.is_object()) else {
                return fail("Invalid data format for \"conversation-broadcast\" event");
            };
            let action = obj.get("action").cloned().unwrap_or(Value::Null);
            let data = obj.get("data").cloned().unwrap_or(Value::Null);
            let relayed = rt
                .domain
                .conversation_broadcast(&id, action, data, ev.attachments)
                .await;
            if let Err(e) = relayed {
                fail(&message(&e));
            }
        }
        // An acknowledged echo of the arguments (binary included), for
        // round-trip checks.
        "ping" => match ev.ack {
            Some(ack) => {
                let _full = s.ack_binary(ack, &ev.args, &ev.attachments);
            }
            None => api_error(
                &s,
                "ping",
                transaction.as_deref(),
                "ping needs an acknowledgement",
            ),
        },
        other => {
            ack_error(&s, ev.ack, "Unknown event");
            api_error(&s, other, None, "Unknown event");
        }
    }
}

/// Authenticates a socket of `/`, at most once and one attempt at a time.
///
/// Events of one socket run concurrently, so the attempt first takes the
/// socket's auth deadline (see [`Realtime::begin_auth`]): a second `auth`
/// arriving meanwhile is refused instead of subscribing the socket twice.
///
/// The session and membership are read before the socket is subscribed; an
/// end (sign-out, revoked session, deleted account, kick, deleted workspace)
/// committed in between would publish its close event to no one. So once
/// subscribed, the socket is checked again ([`huddle_domain::Domain::socket_still_authorized`],
/// one query): an end it misses is delivered after the subscription, and
/// reaches the socket. A socket that fails it is torn down, as the close event
/// would have done.
async fn auth(rt: Arc<Realtime>, s: Arc<Socket>, v: Value, transaction: Option<String>) {
    let id = s.id().clone();
    let fail = |m: &str| api_error(&s, "auth", transaction.as_deref(), m);
    if rt.ctx(&id).is_some() {
        return fail("Socket is already authenticated");
    }
    let Some(deadline) = rt.begin_auth(&id) else {
        return fail("Socket is already authenticating");
    };
    let Ok(input) = serde_json::from_value::<SocketAuthInput>(v) else {
        rt.auth_failed(&s, deadline);
        return fail("Invalid data format for \"auth\" event");
    };
    let auth = match rt.domain.socket_auth(&id, input).await {
        Ok(a) => a,
        Err(e) => {
            rt.auth_failed(&s, deadline);
            return fail(&message(&e));
        }
    };
    let conn: Arc<dyn Connection> = s.clone();
    rt.hub.register(conn);
    let mut topics = vec![
        topic_workspace(&auth.workspace_id),
        topic_member(&auth.workspace_id, &auth.user_id),
        topic_user(&auth.user_id),
        topic_session(&auth.session_id),
    ];
    if auth.role != WorkspaceRole::Guest {
        topics.push(topic_public(&auth.workspace_id));
    }
    topics.extend(auth.channels.iter().map(|c| topic_channel(c)));
    if let Some(c) = &auth.selected {
        topics.push(topic_conversation(c));
    }
    for t in topics {
        rt.hub.join(&id, t);
    }
    rt.set_ctx(
        id.clone(),
        SocketCtx {
            user_id: auth.user_id.clone(),
            workspace_id: auth.workspace_id.clone(),
            role: auth.role,
        },
    );
    // Subscribed (and its context set, for whoever closes it): check again.
    let still = rt
        .domain
        .socket_still_authorized(&auth.session_id, &auth.user_id, &auth.workspace_id)
        .await;
    let ended = match still {
        Ok(holds) => !holds,
        Err(e) => {
            tracing::error!(socket = %id, error = %e, "re-checking an auth failed");
            true
        }
    };
    // The socket may have gone while we authenticated, or its session or
    // membership ended: whoever takes the context first cleans up, so it
    // happens exactly once.
    if ended || !s.connected() {
        if rt.take_ctx(&id).is_some() {
            rt.hub.unregister(&id);
            if let Err(e) = rt.domain.socket_closed(&id, ended).await {
                tracing::error!(error = %e, "cleanup after auth failed");
            }
        }
        if ended {
            tracing::info!(socket = %id, reason = "session_ended", "closing socket");
            s.disconnect();
        }
        return;
    }
    let reply = json!({
        "transaction": transaction,
        "userId": auth.user_id,
        "onlineStatus": auth.online_status,
        "reconnected": auth.reconnected,
    });
    let _full = s.emit("auth-success", &reply);
}

impl Realtime {
    /// Starts an `auth` of socket `id` by taking it out of the auth timeout:
    /// its deadline, or `None` when it is not waiting to authenticate (another
    /// `auth` is running, it is authenticated, or it is gone).
    fn begin_auth(&self, id: &str) -> Option<Instant> {
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .map(|(deadline, _)| deadline)
    }

    /// A refused `auth`: the socket waits again, under its first deadline.
    /// (A socket that left meanwhile may be put back; the sweeper forgets it
    /// at that deadline.)
    fn auth_failed(&self, socket: &Arc<Socket>, deadline: Instant) {
        if socket.connected() {
            self.unauthenticated
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(socket.id().clone(), (deadline, socket.clone()));
        }
    }
}
