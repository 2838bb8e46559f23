//! The accept loop of every listener (the HTTP port, `comet.listen`, the users
//! socket): hyper's connections with huddle's own bounds around them.
//!
//! - **Caps.** A connection is admitted only under the per-address cap
//!   ([`ServeSettings::connections_per_address`], IPv6 counted by /64) and
//!   the node's total ([`ServeSettings::max_connections`]), shared by every
//!   listener since they share the process's file descriptors. Past either,
//!   the connection is closed at once, before anything is read.
//! - **Header timeout.** A new connection has `header_read_timeout` to
//!   deliver its first request's headers (HTTP/1, or HTTP/2's preface and
//!   first request), or it is closed: a client that opens connections and
//!   trickles bytes (Slowloris) holds each only that long.
//! - **Idle timeout.** Between requests a keep-alive connection has
//!   `idle_timeout` until the next request's headers are complete (hyper's
//!   own header timer, which runs from the end of the previous response, for
//!   HTTP/1; a watchdog for HTTP/2).
//! - **Body timeout.** A request body must arrive in full within
//!   `body_read_timeout` of its headers (a slow POST is failed, and hyper
//!   closes a connection whose body was not read to its end).
//! - **Upgrades keep their slot.** Each request carries the connection's slot
//!   ([`ConnectionSlot`]) in its extensions; a websocket handshake takes it
//!   into the websocket's task, so an upgraded connection counts until it
//!   closes, while its `TcpStream` stays bare (no wrapper IO).
//! - **Shutdown.** On the stop signal the loop stops accepting and every
//!   connection shuts down gracefully (in-flight requests finish); the loop
//!   returns once they all have. The caller bounds that wait.
//!
//! Every refusal is counted in [`Refusals`] by reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use huddle_core::{AddressCaps, CapExceeded, Place, Refusal, Refusals};
use huddle_gateway::http::MetricsSource;
use huddle_ws::ConnectionSlot;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

/// Timeouts and caps of every listener.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Longest a new connection may take to deliver its first request's headers.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait between requests (until the
    /// next request's headers are complete).
    pub idle_timeout: Duration,
    /// Longest a request body may take to arrive in full, from its headers.
    pub body_read_timeout: Duration,
    /// Open connections per client address (IPv6: per /64), all listeners together.
    pub connections_per_address: usize,
    /// Open connections of the node, all listeners together.
    pub max_connections: usize,
}

/// The listeners of a node, each with its own gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Http,
    Comet,
    UsersSocket,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Http, Listener::Comet, Listener::UsersSocket];

    fn as_str(self) -> &'static str {
        match self {
            Listener::Http => "http",
            Listener::Comet => "comet",
            Listener::UsersSocket => "users_socket",
        }
    }
}

/// The open connections of a node, counted per client address and in total
/// ([`AddressCaps`], shared by every listener: they share the process's file
/// descriptors), with a gauge per listener.
pub struct Connections {
    settings: ServeSettings,
    refusals: Arc<Refusals>,
    caps: Arc<AddressCaps>,
    /// Open connections per listener (indexed like [`Listener::ALL`]).
    open: [AtomicUsize; 3],
}

/// A connection's place under the caps; dropping it frees the place. Held by
/// the connection's task and, through the request's extensions, by an
/// upgraded websocket.
struct Slot {
    connections: Arc<Connections>,
    listener: Listener,
    _place: Place,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open[self.listener as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn new(settings: ServeSettings, refusals: Arc<Refusals>) -> Arc<Connections> {
        Arc::new(Connections {
            caps: AddressCaps::new(settings.connections_per_address, settings.max_connections),
            settings,
            refusals,
            open: Default::default(),
        })
    }

    /// A place for a connection from `peer`, or the cap it is over.
    fn admit(self: &Arc<Self>, listener: Listener, peer: IpAddr) -> Result<Slot, Refusal> {
        let place = self.caps.admit(Some(peer)).map_err(|cap| match cap {
            CapExceeded::PerAddress => Refusal::ConnectionsPerAddress,
            CapExceeded::Total => Refusal::ConnectionsTotal,
        })?;
        self.open[listener as usize].fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            connections: self.clone(),
            listener,
            _place: place,
        })
    }

    /// Open connections of `listener` (upgraded websockets included).
    pub fn open(&self, listener: Listener) -> usize {
        self.open[listener as usize].load(Ordering::Relaxed)
    }

    /// Client addresses with an open connection (the table's size).
    pub fn addresses(&self) -> usize {
        self.caps.addresses()
    }
}

impl MetricsSource for Connections {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP huddle_tcp_connections Open TCP connections by listener (upgraded websockets included).\n# TYPE huddle_tcp_connections gauge\n");
        for l in Listener::ALL {
            let _ = writeln!(
                out,
                "huddle_tcp_connections{{listener=\"{}\"}} {}",
                l.as_str(),
                self.open(l)
            );
        }
        out.push_str("# HELP huddle_tcp_connection_addresses Client addresses with an open connection.\n# TYPE huddle_tcp_connection_addresses gauge\n");
        let _ = writeln!(out, "huddle_tcp_connection_addresses {}", self.addresses());
    }
}

/// Serves `app` on `listener` until `stop` turns true, then until every
/// connection has shut down gracefully (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    which: Listener,
    app: Router,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header timer runs from the moment it waits for a request head:
    // on a keep-alive connection that is the end of the previous response,
    // so it bounds idle time plus the next head. The first head is bounded
    // more tightly by the connection's watchdog.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(connections.settings.idle_timeout);
    let builder = Arc::new(builder);
    // Every connection task holds a receiver; `closed()` tells when all ended.
    let (done_tx, done_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: wait, as axum does,
                // rather than spin on the error.
                tracing::error!(error = %e, listener = which.as_str(), "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let slot = match connections.admit(which, peer.ip()) {
            Ok(s) => Arc::new(s),
            Err(reason) => {
                connections.refusals.count(reason);
                tracing::debug!(%peer, reason = reason.as_str(), "connection refused");
                drop(tcp);
                continue;
            }
        };
        tokio::spawn(connection(Conn {
            builder: builder.clone(),
            tcp,
            peer,
            app: app.clone(),
            slot,
            stop: stop.clone(),
            _done: done_rx.clone(),
        }));
    }
    drop(listener);
    drop(done_rx);
    done_tx.closed().await;
}

/// Accept errors that concern one connection only (as axum and hyper treat them).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    slot: Arc<Slot>,
    stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
}

/// What the connection's requests did, for its watchdog.
#[derive(Default)]
struct Activity {
    /// Requests begun.
    requests: AtomicU64,
    /// Requests whose response has not been produced yet.
    in_flight: AtomicUsize,
    /// Milliseconds from the connection's start to the last response produced.
    last_done_ms: AtomicU64,
    /// The connection speaks HTTP/2 (hyper's HTTP/1 header timer does not apply).
    h2: std::sync::atomic::AtomicBool,
}

/// Marks a request done however its future ends.
struct InFlight {
    activity: Arc<Activity>,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_done_ms.store(ms, Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(c: Conn) {
    let Conn {
        builder,
        tcp,
        peer,
        app,
        slot,
        mut stop,
        _done,
    } = c;
    let connections = slot.connections.clone();
    let settings = connections.settings.clone();
    let start = Instant::now();
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        let (settings, connections) = (settings.clone(), connections.clone());
        let slot = ConnectionSlot(slot.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            activity.requests.fetch_add(1, Ordering::Relaxed);
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            if req.version() == hyper::Version::HTTP_2 {
                activity.h2.store(true, Ordering::Relaxed);
            }
            let done = InFlight {
                activity: activity.clone(),
                start,
            };
            // The peer address, as `into_make_service_with_connect_info` gave it.
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(slot.clone());
            let app = app.clone();
            let req = req.map(|body| {
                if http_body::Body::is_end_stream(&body) {
                    axum::body::Body::new(body)
                } else {
                    axum::body::Body::new(BodyDeadline {
                        body,
                        deadline: Box::pin(tokio::time::sleep(settings.body_read_timeout)),
                        connections: connections.clone(),
                        expired: false,
                    })
                }
            });
            async move {
                let response = app.oneshot(req).await;
                drop(done);
                response
            }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    // First look at the connection when either bound could have passed.
    let header_deadline = start + settings.header_read_timeout;
    let watchdog = tokio::time::sleep(settings.header_read_timeout.min(settings.idle_timeout));
    tokio::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    let timed_out = e
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_timeout);
                    if timed_out {
                        connections.refusals.count(if activity.requests.load(Ordering::Relaxed) == 0 {
                            Refusal::HeaderTimeout
                        } else {
                            Refusal::IdleTimeout
                        });
                    }
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut watchdog => {
                if activity.requests.load(Ordering::Relaxed) == 0 {
                    if Instant::now() < header_deadline {
                        watchdog.as_mut().reset(header_deadline);
                        continue;
                    }
                    connections.refusals.count(Refusal::HeaderTimeout);
                    tracing::debug!(%peer, "no request headers within the header read timeout; closing");
                    break;
                }
                if !activity.h2.load(Ordering::Relaxed) {
                    // HTTP/1: hyper's header timer bounds the idle time from here.
                    watchdog.as_mut().reset(Instant::now() + Duration::from_secs(86_400 * 365));
                    continue;
                }
                let last = start + Duration::from_millis(activity.last_done_ms.load(Ordering::Relaxed));
                let idle_until = last + settings.idle_timeout;
                if activity.in_flight.load(Ordering::Relaxed) > 0 || Instant::now() < idle_until {
                    watchdog.as_mut().reset(idle_until.max(Instant::now() + settings.idle_timeout / 4));
                    continue;
                }
                connections.refusals.count(Refusal::IdleTimeout);
                break;
            }
        }
    }
}

/// Raises the soft open-file limit to the hard limit (the binary calls it at
/// start: each connection is a descriptor, and distributions default the soft
/// limit to 1024). Returns the soft limit in force afterwards.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = getrlimit(Resource::Nofile),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

/// `limits.max_connections` when configured as 0: the open-file limit less
/// 256 descriptors kept for the database, files and the process, at least 64
/// (1 000 000 when the limit is unlimited or unknown).
pub fn default_max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match soft.map(usize::try_from) {
        Some(Ok(n)) => n.saturating_sub(256).max(64),
        _ => 1_000_000,
    }
}

/// A request body that fails once `deadline` passes before its end: a slow
/// POST holds its connection that long at most. Only bodies that are not
/// empty get one (a boxed timer).
struct BodyDeadline {
    body: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    connections: Arc<Connections>,
    /// The deadline passed (counted once; every later poll fails too).
    expired: bool,
}

impl http_body::Body for BodyDeadline {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let me = self.get_mut();
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut me.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if me.expired || me.deadline.as_mut().poll(cx).is_ready() {
            if !me.expired {
                me.expired = true;
                me.connections.refusals.count(Refusal::BodyTimeout);
            }
            return Poll::Ready(Some(Err("the request body did not arrive in time".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
