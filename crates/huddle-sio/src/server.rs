//! The server: configuration, the session registry, and the HTTP front
//! (`/socket.io/`) that picks a transport.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use huddle_core::{AddressCaps, CapExceeded, Place, Refusal, Refusals};

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
    /// Sessions per client address (IPv6: per /64), counted from the
    /// handshake until the session is forgotten; past it a handshake is
    /// refused with 429. Requests without a known peer address are not
    /// counted per address.
    pub sessions_per_address: usize,
    /// Sessions of the server; past it a handshake is refused with 503.
    pub max_sessions: usize,
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
            sessions_per_address: 512,
            max_sessions: 100_000,
            refusals: Arc::default(),
        }
    }
}

type Resolve = dyn Fn(&str) -> Option<Arc<dyn Handler>> + Send + Sync;

pub(crate) struct Inner {
    pub cfg: Config,
    resolve: Box<Resolve>,
    /// Each session with its place under the caps (freed when it is forgotten).
    conns: Mutex<HashMap<Arc<str>, Registered>>,
    /// Sessions (and handshakes under way) counted for the caps.
    counts: Arc<AddressCaps>,
    root: Arc<str>,
    /// Sessions this server closed as slow consumers (a full queue met by a
    /// reply or an emit; the hub counts its own).
    slow: AtomicU64,
}

/// A registered session and its place under the caps.
type Registered = (Arc<EngineConn>, SessionSlot);

/// A session's place under `sessions_per_address` and `max_sessions`, taken
/// at the handshake; dropping it frees the place.
pub(crate) type SessionSlot = Place;

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
        // Dropped after the registry's lock: the slot takes the counts' lock.
        let forgotten = lock(&self.conns).remove(sid);
        drop(forgotten);
    }

    pub fn find(&self, sid: &str) -> Option<Arc<EngineConn>> {
        lock(&self.conns).get(sid).map(|(c, _)| c.clone())
    }

    /// A place for a new session from `peer` (`None`: unknown, counted in
    /// the total only), or the 429/503 answer refusing it (counted).
    pub fn admit(&self, peer: Option<IpAddr>) -> Result<SessionSlot, Box<Response>> {
        match self.counts.admit(peer) {
            Ok(place) => Ok(place),
            Err(cap) => {
                let reason = match cap {
                    CapExceeded::PerAddress => Refusal::SessionsPerAddress,
                    CapExceeded::Total => Refusal::SessionsTotal,
                };
                self.cfg.refusals.count(reason);
                let (status, message) = match reason {
                    Refusal::SessionsPerAddress => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many sessions from this address",
                    ),
                    _ => (StatusCode::SERVICE_UNAVAILABLE, "Too many sessions"),
                };
                Err(Box::new(refuse_with(status, 4, message)))
            }
        }
    }

    /// A new registered session, in the place `slot` holds.
    pub fn open(
        self: &Arc<Self>,
        transport: u8,
        headers: Box<[(HeaderName, HeaderValue)]>,
        slot: SessionSlot,
    ) -> Arc<EngineConn> {
        let conn = Arc::new(EngineConn::new(self.clone(), transport, headers));
        lock(&self.conns).insert(conn.sid.clone(), (conn.clone(), slot));
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
        let counts = AddressCaps::new(cfg.sessions_per_address, cfg.max_sessions);
        SioServer {
            inner: Arc::new(Inner {
                cfg,
                resolve: Box::new(resolve),
                conns: Mutex::default(),
                counts,
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
        let conns: Vec<_> = lock(&self.inner.conns)
            .values()
            .map(|(c, _)| c.clone())
            .collect();
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
    refuse_with(StatusCode::BAD_REQUEST, code, message)
}

/// An Engine.IO error answer with another status (429 and 503 for the caps).
fn refuse_with(status: StatusCode, code: u8, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
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
    let fresh = sid.is_none() && method == Method::GET;
    let slot = match query(&q, "transport") {
        Some("websocket" | "polling") if fresh => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            match inner.admit(peer) {
                Ok(slot) => Some(slot),
                Err(refused) => return *refused,
            }
        }
        _ => None,
    };
    match query(&q, "transport") {
        Some("websocket") if method == Method::GET => ws::accept(inner, req, sid, headers, slot),
        Some("polling") => match (method, sid, slot) {
            (Method::GET, None, Some(slot)) => polling::handshake(inner, headers, slot),
            (Method::GET, Some(sid), _) => match inner.find(&sid) {
                Some(conn) => polling::poll(conn).await,
                None => refuse(1, "Session ID unknown"),
            },
            (Method::POST, Some(sid), _) => match inner.find(&sid) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_per_address_and_in_total_and_the_table_empties() {
        let refusals = Arc::new(Refusals::default());
        let server = SioServer::new(
            Config {
                sessions_per_address: 1,
                max_sessions: 3,
                refusals: refusals.clone(),
                ..Config::default()
            },
            |_| None,
        );
        let inner = &server.inner;
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let first = inner.admit(a).ok();
        assert!(first.is_some());
        let refused = inner.admit(a).err().map(|r| r.status());
        assert_eq!(refused, Some(StatusCode::TOO_MANY_REQUESTS));
        // No known address (a unit test, a custom server): the total only.
        let unknown = [inner.admit(None).ok(), inner.admit(None).ok()];
        assert!(unknown.iter().all(Option::is_some));
        let full = inner.admit(Some(IpAddr::from([10, 0, 0, 2])));
        assert_eq!(
            full.err().map(|r| r.status()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(refusals.get(Refusal::SessionsPerAddress), 1);
        assert_eq!(refusals.get(Refusal::SessionsTotal), 1);
        drop(first);
        drop(unknown);
        assert_eq!(inner.counts.taken(), 0);
        assert_eq!(
            inner.counts.addresses(),
            0,
            "an address outlived its sessions"
        );
    }
}
