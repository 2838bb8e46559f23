//! Namespace `/`: the workspace events API of seeds 000/001 (SPEC §3). The
//! socket is subscribe-only apart from `auth`, `logout`,
//! `conversation-broadcast` and `ping` (an acknowledged echo, for latency
//! checks); everything else goes through REST with `?socketId=`.

use std::sync::{Arc, Weak};

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
        "auth" => auth(rt, s, ev.data(), transaction).await,
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

async fn auth(rt: Arc<Realtime>, s: Arc<Socket>, v: &Value, transaction: Option<String>) {
    let id = s.id().clone();
    let fail = |m: &str| api_error(&s, "auth", transaction.as_deref(), m);
    if rt.ctx(&id).is_some() {
        return fail("Socket is already authenticated");
    }
    let Ok(input) = serde_json::from_value::<SocketAuthInput>(v.clone()) else {
        return fail("Invalid data format for \"auth\" event");
    };
    let auth = match rt.domain.socket_auth(&id, input).await {
        Ok(a) => a,
        Err(e) => return fail(&message(&e)),
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
    rt.auth_settled(&id);
    // The socket may have gone while we authenticated: whoever takes the
    // context first cleans up, so it happens exactly once.
    if !s.connected() {
        if rt.take_ctx(&id).is_some() {
            rt.hub.unregister(&id);
            if let Err(e) = rt.domain.socket_closed(&id, false).await {
                tracing::error!(error = %e, "cleanup after auth failed");
            }
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
