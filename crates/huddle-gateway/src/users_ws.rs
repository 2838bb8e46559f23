//! The users event socket (seed 004, SPEC §6): a websocket listener of its own
//! whose upgrades must come from an approved `Origin` (refused with 403
//! otherwise), JSON frames with a numeric `eventType`. Account events are
//! broadcast to every connected socket; Echo (10) answers the caller or all;
//! MetaRequest (9) needs the `users-api-key` header.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use huddle_core::{BusRecvError, ConnId, DisconnectReason, Frame, Hub, TokenBucket, Topic};
use huddle_domain::{Domain, DomainEvent};

use crate::wsconn::{self, Opening, QueuedConn, Replies};

/// Settings of the users socket.
#[derive(Debug, Clone)]
pub struct UsersSocketSettings {
    /// An upgrade's `Origin` must match one of these.
    pub approved: Vec<regex_lite::Regex>,
    pub allow_missing_origin: bool,
    /// The `users-api-key` header value that unlocks MetaRequest; unset: never.
    pub api_key: Option<String>,
    pub max_frame: usize,
    pub outbound_queue_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
}

/// The users socket's shared state.
pub struct UsersSocket {
    domain: Arc<Domain>,
    hub: Arc<Hub>,
    settings: UsersSocketSettings,
    next: AtomicU64,
    refused: AtomicU64,
}

fn everyone() -> Topic {
    Topic::new("users-ws", "all")
}

/// A server frame: every one carries `error`.
fn reply(event_type: Value, fields: Value, error: Option<&str>) -> Value {
    let mut v = json!({ "eventType": event_type, "error": error });
    if let Value::Object(extra) = fields {
        for (k, x) in extra {
            v[k] = x;
        }
    }
    v
}

impl UsersSocket {
    pub fn new(
        domain: Arc<Domain>,
        hub: Arc<Hub>,
        settings: UsersSocketSettings,
    ) -> Arc<UsersSocket> {
        Arc::new(UsersSocket {
            domain,
            hub,
            settings,
            next: AtomicU64::new(1),
            refused: AtomicU64::new(0),
        })
    }

    /// The listener's router: any path upgrades.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(upgrade))
            .route("/{*path}", get(upgrade))
            .with_state(self.clone())
    }

    /// Connected sockets (metrics).
    pub fn connections(&self) -> usize {
        self.hub.subscriber_count(&everyone())
    }

    /// Upgrades refused for their Origin (metrics).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Closes every socket (shutdown, close 1001).
    pub fn close_all(&self) {
        for id in self.hub.subscribers(&everyone()) {
            if let Some(c) = self.hub.connection(&id) {
                c.close(DisconnectReason::Shutdown);
            }
        }
    }

    /// Broadcasts account events (Login 1, Logout 2, Activated 3, Removed 4), each encoded once.
    pub fn spawn_delivery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut sub = me.domain.bus().subscribe();
        tokio::spawn(huddle_core::as_subscriber(async move {
            loop {
                let p = match sub.recv().await {
                    Ok(p) => p,
                    Err(BusRecvError::Lagged(n)) => {
                        tracing::error!(lost = n, "users socket delivery lagged behind the bus");
                        continue;
                    }
                    Err(BusRecvError::Closed) => return,
                };
                if !matches!(
                    p.event.as_str(),
                    "signed_in" | "session_ended" | "account_activated" | "account_removed"
                ) {
                    continue;
                }
                let Ok(event) = serde_json::from_slice::<DomainEvent>(&p.payload) else {
                    continue;
                };
                let (kind, email) = match event {
                    DomainEvent::SignedIn { email, .. } => (1, email),
                    DomainEvent::SessionEnded { email, .. } => (2, email),
                    DomainEvent::AccountActivated { email, .. } => (3, email),
                    DomainEvent::AccountRemoved { email, .. } => (4, email),
                    _ => continue,
                };
                if let Ok(f) = Frame::encode(
                    "users",
                    &reply(Value::from(kind), json!({ "username": email }), None),
                ) {
                    me.hub.publish(&everyone(), &f, None);
                }
            }
        }))
    }
}

async fn upgrade(State(us): State<Arc<UsersSocket>>, mut req: Request) -> Response {
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let allowed = match origin {
        Some(o) => us.settings.approved.iter().any(|re| re.is_match(o)),
        None => us.settings.allow_missing_origin,
    };
    if !allowed {
        us.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            origin = origin.unwrap_or("<none>"),
            "users socket upgrade refused: origin not approved"
        );
        let body = json!({"error": {"code": "origin_not_allowed", "message": "this Origin may not connect"}});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let trusted = match (
        &us.settings.api_key,
        headers.get("users-api-key").and_then(|v| v.to_str().ok()),
    ) {
        (Some(key), Some(given)) => {
            key.len() == given.len()
                && key
                    .bytes()
                    .zip(given.bytes())
                    .fold(0u8, |a, (x, y)| a | (x ^ y))
                    == 0
        }
        _ => false,
    };
    let (response, upgrade) = match huddle_ws::handshake(&mut req) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    let max = us.settings.max_frame;
    wsconn::spawn(upgrade, max, Box::pin(async move { open(us, trusted) }));
    response
}

/// One connection: who it is and its request budget.
struct Session {
    us: Arc<UsersSocket>,
    id: ConnId,
    trusted: bool,
    bucket: TokenBucket,
}

fn open(us: Arc<UsersSocket>, trusted: bool) -> Opening<Session> {
    let id: ConnId = format!("users-{}", us.next.fetch_add(1, Ordering::Relaxed)).into();
    let conn = QueuedConn::new(id.clone(), us.settings.outbound_queue_bytes);
    us.hub.register(conn.clone());
    us.hub.join(&id, everyone());
    let bucket = TokenBucket::new(
        us.settings.rate_per_sec,
        us.settings.rate_burst,
        Instant::now(),
    );
    let session = Session {
        us,
        id,
        trusted,
        bucket,
    };
    Opening {
        first: Vec::new(),
        session: Ok((session, conn)),
    }
}

impl wsconn::Session for Session {
    fn text<'a>(&'a mut self, text: &'a str) -> BoxFuture<'a, Replies> {
        Box::pin(async move {
            let answer = if self.bucket.take(Instant::now()) {
                handle(&self.us, text, self.trusted).await
            } else {
                Some(reply(
                    Value::Null,
                    json!({}),
                    Some("rate limited: slow down"),
                ))
            };
            Ok(answer.map(|a| a.to_string()).into_iter().collect())
        })
    }

    fn binary(&mut self) -> Replies {
        let r = reply(Value::Null, json!({}), Some("frames must be JSON text"));
        Ok(vec![r.to_string()])
    }

    fn finish(self) -> BoxFuture<'static, ()> {
        self.us.hub.unregister(&self.id);
        Box::pin(async {})
    }
}

/// A client frame, read.
#[derive(Debug, PartialEq)]
pub(crate) enum ClientFrame {
    /// Echo (10): the message back to the caller, or to everyone.
    Echo { message: Value, broadcast: bool },
    /// MetaRequest (9), its fields still to be checked (after the caller's key).
    Meta(Value),
}

/// Reads one client frame; `Err` is the error reply that answers it.
pub(crate) fn parse_request(text: &str) -> Result<ClientFrame, Value> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Err(reply(Value::Null, json!({}), Some("malformed JSON")));
    };
    let Some(kind) = v.get("eventType").and_then(Value::as_i64) else {
        return Err(reply(
            Value::Null,
            json!({}),
            Some("eventType must be a number"),
        ));
    };
    match kind {
        10 => {
            let Some(message) = v.get("message").filter(|m| m.is_string()).cloned() else {
                return Err(reply(
                    Value::from(10),
                    json!({}),
                    Some("message must be a string"),
                ));
            };
            let broadcast = match v.get("broadcast") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(reply(
                        Value::from(10),
                        json!({}),
                        Some("broadcast must be a boolean"),
                    ))
                }
            };
            Ok(ClientFrame::Echo { message, broadcast })
        }
        9 => Ok(ClientFrame::Meta(v)),
        other => Err(reply(
            Value::from(other),
            json!({}),
            Some("unknown eventType"),
        )),
    }
}

/// One client frame → the reply to send back (broadcast echoes go through the hub).
async fn handle(us: &UsersSocket, text: &str, trusted: bool) -> Option<Value> {
    match parse_request(text) {
        Err(refused) => Some(refused),
        Ok(ClientFrame::Echo { message, broadcast }) => {
            let echo = reply(Value::from(10), json!({ "message": message }), None);
            if broadcast {
                if let Ok(f) = Frame::encode("users", &echo) {
                    us.hub.publish(&everyone(), &f, None);
                }
                None
            } else {
                Some(echo)
            }
        }
        Ok(ClientFrame::Meta(v)) => Some(meta_request(us, &v, trusted).await),
    }
}

/// Entry points for the fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a client frame as a connection does; whether it is served (not
    /// answered with an error).
    pub fn request(text: &str) -> bool {
        super::parse_request(text).is_ok()
    }
}

async fn meta_request(us: &UsersSocket, v: &Value, trusted: bool) -> Value {
    let fail = |m: &str| reply(Value::from(9), json!({}), Some(m));
    if !trusted {
        return fail("MetaRequest needs the users-api-key header");
    }
    let Some(username) = v.get("username").and_then(Value::as_str) else {
        return fail("username must be a string");
    };
    let property = match v.get("property") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.is_empty() && p.len() <= 128 => Some(p.as_str()),
        Some(_) => return fail("property must be a non-empty string"),
    };
    // The four forms: property+val sets one; property gets one; val replaces
    // the whole object; neither gets the whole object.
    let result = match v.get("val") {
        Some(val) => {
            us.domain
                .set_user_meta(username, property, val.clone())
                .await
        }
        None => us.domain.user_meta(username, property).await,
    };
    match result {
        Ok(val) => reply(Value::from(9), json!({ "val": val }), None),
        Err(e) => fail(&e.to_string()),
    }
}
