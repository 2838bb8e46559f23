//! Namespace `/`: the workspace events API of seeds 000/001 (SPEC §3). The
//! socket is subscribe-only apart from `auth`, `logout` and
//! `conversation-broadcast`; everything else goes through REST with `?socketId=`.

use std::sync::Arc;

use serde_json::{json, Value};
use socketioxide::extract::{Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

use huddle_domain::roles::WorkspaceRole;
use huddle_domain::{DomainError, SocketAuthInput};

use super::conn::SioConn;
use super::{
    topic_channel, topic_conversation, topic_member, topic_public, topic_session, topic_user,
    topic_workspace, Realtime, SocketCtx,
};

/// What a client hears when it sends faster than its rate limit.
const RATE_LIMITED: &str = "Too many events: slow down";

pub(crate) fn register(rt: &Arc<Realtime>) {
    let io = rt.io.clone();
    let rt = rt.clone();
    // socketioxide acknowledges the connection *before* it calls the connect
    // handler, and the client's first packet may be dispatched on another worker
    // in between: handlers registered there could miss an immediate `auth`.
    // Connect middleware is awaited before the acknowledgement, so the event
    // handlers are registered in it.
    let register_handlers = move |socket: SocketRef| {
        on_connect(rt.clone(), socket);
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    };
    let connected = |_: SocketRef| std::future::ready(());
    io.ns("/", connected.with(register_handlers));
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

/// Reports a failed client event on both error channels.
fn api_error(s: &SocketRef, event: &str, transaction: Option<&str>, message: &str) {
    if let Err(e) = s.emit(
        "socket-api-error",
        &json!({"event": event, "message": message}),
    ) {
        tracing::debug!(socket = %s.id, error = %e, "could not report a socket error");
    }
    if let Some(t) = transaction {
        if let Err(e) = s.emit(
            format!("socket-api-error-{t}"),
            &json!({"message": message}),
        ) {
            tracing::debug!(socket = %s.id, error = %e, "could not report a socket error");
        }
    }
}

fn transaction_of(v: &Result<Value, impl std::fmt::Debug>) -> Option<String> {
    v.as_ref()
        .ok()
        .and_then(|v| v.get("transaction"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn on_connect(rt: Arc<Realtime>, socket: SocketRef) {
    // Unauthenticated sockets are closed after the auth timeout.
    {
        let (rt, s) = (rt.clone(), socket.clone());
        let timeout = rt.domain.realtime().auth_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if s.connected() && rt.ctx(&s.id.to_string()).is_none() {
                tracing::info!(socket = %s.id, reason = "auth_timeout", "closing socket");
                let _already_closed = s.disconnect();
            }
        });
    }
    let r = rt.clone();
    socket.on("auth", move |s: SocketRef, TryData(v): TryData<Value>| {
        let rt = r.clone();
        async move {
            if !rt.admit(&s.id.to_string()) {
                return api_error(&s, "auth", transaction_of(&v).as_deref(), RATE_LIMITED);
            }
            auth(rt, s, v.map_err(|e| e.to_string())).await
        }
    });
    let r = rt.clone();
    socket.on("logout", move |s: SocketRef| {
        let rt = r.clone();
        async move {
            let id = s.id.to_string();
            if rt.take_ctx(&id).is_some() {
                rt.hub.unregister(&id);
                if let Err(e) = rt.domain.socket_closed(&id, true).await {
                    tracing::error!(error = %e, "logout cleanup failed");
                }
            }
            let _already_closed = s.disconnect();
        }
    });
    let r = rt.clone();
    socket.on(
        "conversation-broadcast",
        move |s: SocketRef, TryData(v): TryData<Value>| {
            let rt = r.clone();
            async move {
                let transaction = transaction_of(&v);
                let fail =
                    |m: &str| api_error(&s, "conversation-broadcast", transaction.as_deref(), m);
                let id = s.id.to_string();
                if !rt.admit(&id) {
                    return fail(RATE_LIMITED);
                }
                if rt.ctx(&id).is_none() {
                    return fail("Socket is not authenticated");
                }
                let Some(obj) = v.ok().filter(Value::is_object) else {
                    return fail("Invalid data format for \"conversation-broadcast\" event");
                };
                let action = obj.get("action").cloned().unwrap_or(Value::Null);
                let data = obj.get("data").cloned().unwrap_or(Value::Null);
                if let Err(e) = rt.domain.conversation_broadcast(&id, action, data) {
                    fail(&message(&e));
                }
            }
        },
    );
    let r = rt.clone();
    socket.on_fallback(move |s: SocketRef, Event(event): Event| {
        let rt = r.clone();
        async move {
            let message = if rt.admit(&s.id.to_string()) {
                "Unknown event"
            } else {
                RATE_LIMITED
            };
            api_error(&s, &event, None, message);
        }
    });
    let r = rt;
    socket.on_disconnect(move |s: SocketRef| {
        let rt = r.clone();
        async move {
            let id = s.id.to_string();
            rt.forget_bucket(&id);
            if rt.take_ctx(&id).is_some() {
                rt.hub.unregister(&id);
                if let Err(e) = rt.domain.socket_closed(&id, false).await {
                    tracing::error!(error = %e, "disconnect cleanup failed");
                }
            }
        }
    });
}

async fn auth(rt: Arc<Realtime>, s: SocketRef, v: Result<Value, String>) {
    let id = s.id.to_string();
    let transaction = transaction_of(&v);
    let fail = |m: &str| api_error(&s, "auth", transaction.as_deref(), m);
    if rt.ctx(&id).is_some() {
        return fail("Socket is already authenticated");
    }
    let Some(input) = v
        .ok()
        .and_then(|v| serde_json::from_value::<SocketAuthInput>(v).ok())
    else {
        return fail("Invalid data format for \"auth\" event");
    };
    let auth = match rt.domain.socket_auth(&id, input).await {
        Ok(a) => a,
        Err(e) => return fail(&message(&e)),
    };
    rt.hub.register(Arc::new(SioConn::new(s.clone())));
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
        id.as_str().into(),
        SocketCtx {
            user_id: auth.user_id.clone(),
            workspace_id: auth.workspace_id.clone(),
            role: auth.role,
        },
    );
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
    if let Err(e) = s.emit("auth-success", &reply) {
        tracing::debug!(socket = %id, error = %e, "could not send auth-success");
    }
}
