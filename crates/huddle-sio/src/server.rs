//! The server: configuration, the session registry, and the HTTP front
//! (`/socket.io/`) that picks a transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use huddle_core::Refusals;

use crate::engine::{CloseReason, EngineConn};
use crate::socket::Handler;
use crate::{polling, ws};

/// Transport settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Engine.IO heartbeat: a ping every interval...
    pub ping_interval: Duration,
    /// ...answered within this, or the session ends.
    pub ping_timeout: Duration,
    /// Largest inbound message (websocket) or request body (polling), bytes.
    pub max_payload: usize,
    /// Bytes of outbound packets queued per session (not counting the batch
    /// being written); past it the client is disconnected as a slow
    /// consumer. A single packet larger than the bound passes an empty queue.
    pub outbound_queue_bytes: usize,
    /// How long a websocket upgrade may take from probe to upgrade packet.
    pub upgrade_timeout: Duration,
    /// Handshake request headers kept for namespace handlers
    /// ([`Socket::header`](crate::Socket::header)); nothing else is kept.
    pub keep_headers: Vec<HeaderName>,
    /// A session that has joined no namespace this long after it opened is
    /// closed (socket.io's `connectTimeout`; counted as `connect_timeout`).
    pub connect_timeout: Duration,
    /// Inbound events (and CONNECTs) per second per Engine.IO session...
    pub events_per_sec: u32,
    /// ...with bursts of this many. Leaving and re-joining a namespace does
    /// not refill it.
    pub events_burst: u32,
    /// Where refusals are counted (the node's table).
    pub refusals: Arc<Refusals>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            outbound_queue_bytes: 1 << 20,
            upgrade_timeout: Duration::from_secs(10),
            keep_headers: Vec::new(),
            connect_timeout: Duration::from_secs(45),
            events_per_sec: 50,
            events_burst: 100,
            refusals: Arc::default(),
        }
    }
}

type Resolve = dyn Fn(&str) -> Option<Arc<dyn Handler>> + Send + Sync;

pub(crate) struct Inner {
    pub cfg: Config,
    resolve: Box<Resolve>,
    conns: Mutex<HashMap<Arc<str>, Arc<EngineConn>>>,
    root: Arc<str>,
    /// Sessions this server closed as slow consumers (a full queue met by a
    /// reply or an emit; the hub counts its own).
    slow: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub fn handler(&self, ns: &str) -> Option<Arc<dyn Handler>> {
        (self.resolve)(ns)
    }

    /// The namespace's name; the root's is shared by all its sockets.
    pub fn ns_name(&self, ns: &str) -> Arc<str> {
        if ns == "/" {
            self.root.clone()
        } else {
            ns.into()
        }
    }

    pub fn count_slow(&self) {
        self.slow.fetch_add(1, Ordering::Relaxed);
    }

    pub fn forget(&self, sid: &str) {
        lock(&self.conns).remove(sid);
    }

    pub fn find(&self, sid: &str) -> Option<Arc<EngineConn>> {
        lock(&self.conns).get(sid).cloned()
    }

    /// A new registered session.
    pub fn open(
        self: &Arc<Self>,
        transport: u8,
        headers: Box<[(HeaderName, HeaderValue)]>,
    ) -> Arc<EngineConn> {
        let conn = Arc::new(EngineConn::new(self.clone(), transport, headers));
        lock(&self.conns).insert(conn.sid.clone(), conn.clone());
        conn
    }

    pub fn open_packet(&self, sid: &str, upgrades: bool) -> String {
        crate::packet::open(
            sid,
            upgrades,
            self.cfg.ping_interval.as_millis(),
            self.cfg.ping_timeout.as_millis(),
            self.cfg.max_payload,
        )
    }
}

/// An Engine.IO v4 / Socket.IO v5 server. Cheap to clone.
#[derive(Clone)]
pub struct SioServer {
    inner: Arc<Inner>,
}

impl SioServer {
    /// A server whose namespaces are served by what `resolve` returns for a
    /// namespace path (`None`: the client gets `Invalid namespace`).
    pub fn new<F>(cfg: Config, resolve: F) -> SioServer
    where
        F: Fn(&str) -> Option<Arc<dyn Handler>> + Send + Sync + 'static,
    {
        SioServer {
            inner: Arc::new(Inner {
                cfg,
                resolve: Box::new(resolve),
                conns: Mutex::default(),
                root: "/".into(),
                slow: AtomicU64::new(0),
            }),
        }
    }

    /// Routes `/socket.io/` (GET and POST) to this server; merge it into any router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let handle = {
            let inner = self.inner.clone();
            move |req: Request| {
                let inner = inner.clone();
                async move { entry(inner, req).await }
            }
        };
        Router::new()
            .route("/socket.io/", axum::routing::any(handle.clone()))
            .route("/socket.io", axum::routing::any(handle))
    }

    #[cfg(test)]
    pub(crate) fn inner_for_tests(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Live sessions.
    pub fn sessions(&self) -> usize {
        lock(&self.inner.conns).len()
    }

    /// Sessions closed as slow consumers by the transport itself (its
    /// replies or a handler's emit met a full queue); the hub's own slow
    /// consumers are counted by the hub.
    pub fn slow_consumers(&self) -> u64 {
        self.inner.slow.load(Ordering::Relaxed)
    }

    /// Shutdown: every namespace socket is disconnected (`41`, the client's
    /// `io server disconnect`), every session closed after its queue is
    /// written; waits until they are gone or `grace` has passed.
    pub async fn close(&self, grace: Duration) {
        let conns: Vec<_> = lock(&self.inner.conns).values().cloned().collect();
        for c in &conns {
            c.disconnect_all();
            c.close(CloseReason::Shutdown);
        }
        let deadline = Instant::now() + grace;
        while conns.iter().any(|c| !c.is_drained()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Engine.IO's error answers: `{"code":N,"message":"..."}` with 400.
pub(crate) fn refuse(code: u8, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

async fn entry(inner: Arc<Inner>, req: Request) -> Response {
    let q = req.uri().query().unwrap_or("").to_owned();
    if query(&q, "EIO") != Some("4") {
        return refuse(5, "Unsupported protocol version");
    }
    let sid = query(&q, "sid").map(str::to_owned);
    let method = req.method().clone();
    let headers: Box<[(HeaderName, HeaderValue)]> = inner
        .cfg
        .keep_headers
        .iter()
        .filter_map(|n| req.headers().get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    match query(&q, "transport") {
        Some("websocket") if method == Method::GET => ws::accept(inner, req, sid, headers),
        Some("polling") => match (method, sid) {
            (Method::GET, None) => polling::handshake(inner, headers),
            (Method::GET, Some(sid)) => match inner.find(&sid) {
                Some(conn) => polling::poll(conn).await,
                None => refuse(1, "Session ID unknown"),
            },
            (Method::POST, Some(sid)) => match inner.find(&sid) {
                Some(conn) => polling::post(conn, req.into_body()).await,
                None => refuse(1, "Session ID unknown"),
            },
            _ => refuse(2, "Bad handshake method"),
        },
        _ => refuse(0, "Transport unknown"),
    }
}

/// A plain-text answer of the polling transport.
pub(crate) fn text(body: impl Into<Body>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body.into(),
    )
        .into_response()
}
