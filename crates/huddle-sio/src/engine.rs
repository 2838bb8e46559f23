//! One Engine.IO session: its single bounded outbound queue, its namespace
//! sockets, and the reading of inbound packets (shared by both transports).
//!
//! Guarantees:
//! - the queue is bounded: a push past `outbound_queue_bytes` fails and the
//!   caller closes the session as a slow consumer. Nothing a client triggers
//!   (pongs, connect errors, acknowledgements) passes the bound; only the
//!   server's own `41`s may exceed it by a few;
//! - inbound events and CONNECTs share one token bucket per session, and at
//!   most [`MAX_HANDLERS_IN_FLIGHT`] event handlers run at once; when the
//!   session closes its running event handlers are cancelled (never a
//!   `disconnect` handler);
//! - an idle session holds no buffer: the queue's storage is taken whole by
//!   the writer and freed;
//! - a binary packet's attachments are held only until its last one
//!   arrives (at most [`packet::MAX_ATTACHMENTS`], all of it within
//!   `max_payload` bytes); an idle session holds none;
//! - closing is idempotent and runs the namespace handlers' `disconnect`
//!   exactly once per accepted socket.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use axum::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use huddle_core::{Refusal, TokenBucket};
use serde_json::Value;
use tokio::sync::Notify;

use crate::packet::{self, Kind};
use crate::server::Inner;
use crate::socket::{Event, Reason, Socket};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client sent Engine.IO's close packet or closed the websocket.
    TransportClose,
    /// I/O error or oversize message.
    TransportError,
    /// A packet that breaks Engine.IO or Socket.IO (unknown type, unreadable
    /// namespace or ack id, a CONNECT payload that is not an object).
    ProtocolError,
    PingTimeout,
    SlowConsumer,
    Shutdown,
    /// No namespace was joined within the connect timeout.
    ConnectTimeout,
    /// The server closed the connection ([`Socket::close_connection`]).
    ServerClose,
    /// A binary packet and its attachments together past `max_payload`.
    TooBig,
}

impl CloseReason {
    fn socket_reason(self) -> Reason {
        match self {
            CloseReason::TransportClose | CloseReason::ConnectTimeout => Reason::TransportClose,
            CloseReason::TransportError | CloseReason::ProtocolError | CloseReason::TooBig => {
                Reason::TransportError
            }
            CloseReason::PingTimeout => Reason::PingTimeout,
            CloseReason::SlowConsumer => Reason::SlowConsumer,
            CloseReason::Shutdown => Reason::Shutdown,
            CloseReason::ServerClose => Reason::ServerDisconnect,
        }
    }

    /// The websocket close frame of this ending (code and reason), so a
    /// client never sees 1006 for a close the server chose. One table:
    ///
    /// | reason          | code | text                   |
    /// |-----------------|------|------------------------|
    /// | client `1`      | 1000 |                        |
    /// | server close    | 1000 | `server closed`        |
    /// | shutdown        | 1001 | `server shutting down` |
    /// | protocol error  | 1002 | `protocol error`       |
    /// | too big         | 1009 | `message too big`      |
    /// | slow consumer   | 1008 | `slow consumer`        |
    /// | connect timeout | 1008 | `connect timeout`      |
    /// | ping timeout    | 1011 | `ping timeout`         |
    /// | I/O error       | 1011 | `transport error`      |
    pub fn close_frame(self) -> (u16, &'static str) {
        match self {
            CloseReason::TransportClose => (1000, ""),
            CloseReason::ServerClose => (1000, "server closed"),
            CloseReason::Shutdown => (1001, "server shutting down"),
            CloseReason::ProtocolError => (1002, "protocol error"),
            CloseReason::TooBig => (1009, "message too big"),
            CloseReason::SlowConsumer => (1008, "slow consumer"),
            CloseReason::ConnectTimeout => (1008, "connect timeout"),
            CloseReason::PingTimeout => (1011, "ping timeout"),
            CloseReason::TransportError => (1011, "transport error"),
        }
    }

    /// Whether the client still gets what is queued (the server's own
    /// `41`s) before the transport closes: on its websocket, or its next
    /// poll. Otherwise the queue is dropped, and a polling session is
    /// forgotten at once (its next request is answered 400).
    pub fn delivers_queue(self) -> bool {
        matches!(
            self,
            CloseReason::Shutdown | CloseReason::ServerClose | CloseReason::ConnectTimeout
        )
    }
}

/// No ping outstanding.
const PING_NONE: u8 = 0;
/// A ping is queued, not yet written to the client: a pong cannot answer it.
const PING_QUEUED: u8 = 1;
/// A ping was written; the client's next pong answers it.
const PING_SENT: u8 = 2;

/// Event handlers of one session running at once; past it an event is
/// answered through [`crate::Handler::malformed`] and counted
/// ([`Refusal::HandlersInFlight`]).
pub const MAX_HANDLERS_IN_FLIGHT: u32 = 16;

pub(crate) const POLLING: u8 = 0;
/// A websocket is probing; long-polls still wait for packets.
pub(crate) const UPGRADING: u8 = 1;
pub(crate) const WEBSOCKET: u8 = 2;
/// The probe was answered: a long-poll returns a noop at once (and no noop
/// is queued, so none reaches the websocket after the upgrade).
pub(crate) const PROBED: u8 = 3;

/// Why [`EngineConn::push`] did not queue a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is at its bound: the client is not keeping up.
    Full,
    /// The session is closing: it writes nothing more.
    Closed,
}

/// One outbound message: an Engine.IO packet, or a binary attachment that
/// follows its binary packet's header (a binary websocket frame; `b<base64>`
/// on polling). Both share their bytes: nothing is copied per receiver.
#[derive(Clone)]
pub(crate) enum Out {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Text(t) => t.len(),
            Out::Binary(b) => b.len(),
        }
    }
}

impl huddle_ws::Payload for Out {
    fn bytes(&self) -> &[u8] {
        match self {
            Out::Text(t) => t.as_str().as_bytes(),
            Out::Binary(b) => b,
        }
    }

    fn binary(&self) -> bool {
        matches!(self, Out::Binary(_))
    }
}

/// A binary packet whose attachments are still arriving.
struct Incoming {
    /// The socket its event goes to; `None`: read and dropped (a client's
    /// binary ack, a namespace not joined, an event already answered as
    /// malformed).
    to: Option<Arc<Socket>>,
    name: String,
    args: Vec<Value>,
    ack: Option<u64>,
    expected: u32,
    got: Vec<Bytes>,
    /// Bytes of the packet so far (its header's text included).
    bytes: usize,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Out>,
    /// The bytes of `queue`.
    bytes: usize,
    closed: Option<CloseReason>,
}

/// An Engine.IO session.
pub(crate) struct EngineConn {
    pub sid: Arc<str>,
    server: Arc<Inner>,
    out: Mutex<Outbox>,
    /// Wakes the pending long-poll (and the upgrade).
    pub wake: Notify,
    /// Wakes the websocket task.
    pub ws_waker: AtomicWaker,
    sockets: Mutex<Vec<Arc<Socket>>>,
    headers: Box<[(HeaderName, HeaderValue)]>,
    transport: AtomicU8,
    /// The heartbeat: [`PING_NONE`], [`PING_QUEUED`] or [`PING_SENT`].
    ping: AtomicU8,
    /// A long-poll request is pending.
    pub polling: AtomicBool,
    /// The binary packet being received, until its last attachment; `None`
    /// (nothing allocated) otherwise.
    incoming: Mutex<Option<Box<Incoming>>>,
    finished: AtomicBool,
    writer_done: AtomicBool,
    /// When the session opened (the connect timeout counts from here).
    pub opened: tokio::time::Instant,
    /// A namespace socket was accepted at least once.
    joined: AtomicBool,
    /// Inbound events and CONNECTs of the whole session (not per namespace:
    /// leaving and re-joining does not refill it).
    bucket: Mutex<TokenBucket>,
    /// Event handlers running.
    in_flight: AtomicU32,
    /// Told when the session closes: running event handlers stop.
    cancel: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EngineConn {
    pub fn new(
        server: Arc<Inner>,
        transport: u8,
        headers: Box<[(HeaderName, HeaderValue)]>,
    ) -> EngineConn {
        let now = Instant::now();
        let bucket = TokenBucket::new(server.cfg.events_per_sec, server.cfg.events_burst, now);
        EngineConn {
            sid: uuid::Uuid::new_v4().simple().to_string().into(),
            server,
            out: Mutex::default(),
            wake: Notify::new(),
            ws_waker: AtomicWaker::new(),
            sockets: Mutex::default(),
            headers,
            transport: AtomicU8::new(transport),
            ping: AtomicU8::new(PING_NONE),
            polling: AtomicBool::new(false),
            incoming: Mutex::new(None),
            finished: AtomicBool::new(false),
            writer_done: AtomicBool::new(false),
            opened: tokio::time::Instant::now(),
            joined: AtomicBool::new(false),
            bucket: Mutex::new(bucket),
            in_flight: AtomicU32::new(0),
            cancel: Notify::new(),
        }
    }

    /// The heartbeat queued a ping.
    pub fn ping_queued(&self) {
        self.ping.store(PING_QUEUED, Ordering::Release);
    }

    /// The ping queued was written to the client (by the websocket writer,
    /// or in a long-poll's answer).
    pub fn ping_delivered(&self) {
        let _ =
            self.ping
                .compare_exchange(PING_QUEUED, PING_SENT, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A `3` answers only a ping that reached the client: one sent blindly,
    /// or before the ping could be written, does not satisfy the heartbeat.
    fn on_pong(&self) {
        let _ =
            self.ping
                .compare_exchange(PING_SENT, PING_NONE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The last ping has had no answer.
    pub fn pong_missing(&self) -> bool {
        self.ping.load(Ordering::Acquire) != PING_NONE
    }

    /// Takes a token of the session's event bucket; a refusal is counted.
    pub fn admit(&self) -> bool {
        let ok = lock(&self.bucket).take(Instant::now());
        if !ok {
            self.server.cfg.refusals.count(Refusal::SocketEvents);
        }
        ok
    }

    /// A namespace socket was accepted at least once.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    pub(crate) fn set_joined(&self) {
        self.joined.store(true, Ordering::Release);
    }

    /// Queues a packet the client caused (a pong, a connect error, an
    /// acknowledgement): never past the bound. A full queue closes the
    /// session as a slow consumer (counted).
    pub fn push_reply(self: &Arc<Self>, packet: Utf8Bytes) -> Result<(), CloseReason> {
        self.reply(self.push(packet, false))
    }

    fn reply(self: &Arc<Self>, pushed: Result<(), Refused>) -> Result<(), CloseReason> {
        match pushed {
            Ok(()) => Ok(()),
            Err(Refused::Full) => {
                self.slow_consumer();
                Err(CloseReason::SlowConsumer)
            }
            Err(Refused::Closed) => Err(CloseReason::TransportClose),
        }
    }

    /// Closes the session as a slow consumer, counted once.
    pub fn slow_consumer(self: &Arc<Self>) {
        if !self.is_closed() {
            self.server.count_slow();
        }
        self.close(CloseReason::SlowConsumer);
    }

    /// Runs an event handler's future, cancelled when the session closes.
    /// `counted`: it holds one of the [`MAX_HANDLERS_IN_FLIGHT`] places
    /// (taken by the caller), given back when it ends.
    fn spawn_handler(self: &Arc<Self>, fut: BoxFuture<'static, ()>, counted: bool) {
        /// Gives the place back however the task ends (done, cancelled, aborted).
        struct Place(Arc<EngineConn>, bool);
        impl Drop for Place {
            fn drop(&mut self) {
                if self.1 {
                    self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        let place = Place(self.clone(), counted);
        tokio::spawn(async move {
            let conn = place.0.clone();
            let cancelled = conn.cancel.notified();
            tokio::pin!(cancelled);
            cancelled.as_mut().enable();
            if conn.finished.load(Ordering::Acquire) {
                return;
            }
            tokio::select! {
                biased;
                () = cancelled => {}
                () = fut => {}
            }
            drop(place);
        });
    }

    /// Runs the handler of a socket's event, within the session's bound.
    fn dispatch(self: &Arc<Self>, s: Arc<Socket>, event: Event) {
        let reserved = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_HANDLERS_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            self.server.cfg.refusals.count(Refusal::HandlersInFlight);
            let error = "too many events in flight";
            self.spawn_handler(s.handler().malformed(s.clone(), event.ack, error), false);
            return;
        }
        self.spawn_handler(s.handler().event(s.clone(), event), true);
    }

    pub fn server(&self) -> &Arc<Inner> {
        &self.server
    }

    pub fn transport(&self) -> u8 {
        self.transport.load(Ordering::Acquire)
    }

    pub fn set_transport(&self, t: u8) {
        self.transport.store(t, Ordering::Release);
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// Queues a packet. `force` lets a control packet past the bound.
    pub fn push(&self, packet: Utf8Bytes, force: bool) -> Result<(), Refused> {
        self.push_all(Out::Text(packet), &[], force)
    }

    /// Queues a binary packet and its attachments, together (nothing comes
    /// between them) and within the bound as one packet.
    pub fn push_binary(&self, packet: Utf8Bytes, attachments: &[Bytes]) -> Result<(), Refused> {
        self.push_all(Out::Text(packet), attachments, false)
    }

    fn push_all(&self, packet: Out, attachments: &[Bytes], force: bool) -> Result<(), Refused> {
        let len = packet.len() + attachments.iter().map(Bytes::len).sum::<usize>();
        let mut out = lock(&self.out);
        if out.closed.is_some() {
            return Err(Refused::Closed);
        }
        let was_empty = out.queue.is_empty();
        if !force && !was_empty && out.bytes + len > self.server.cfg.outbound_queue_bytes {
            return Err(Refused::Full);
        }
        out.bytes += len;
        out.queue.push_back(packet);
        out.queue
            .extend(attachments.iter().map(|a| Out::Binary(a.clone())));
        drop(out);
        if was_empty {
            self.wake.notify_one();
            self.ws_waker.wake();
        }
        Ok(())
    }

    /// Everything queued (the storage goes with it), and whether the session closed.
    pub fn take(&self) -> (VecDeque<Out>, Option<CloseReason>) {
        let mut out = lock(&self.out);
        out.bytes = 0;
        (std::mem::take(&mut out.queue), out.closed)
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.out).closed.is_some()
    }

    /// Ends the session: the writer sends what is queued and closes the
    /// transport; the sockets leave their namespaces; running event handlers
    /// are cancelled. Idempotent.
    pub fn close(self: &Arc<Self>, reason: CloseReason) {
        let final_poll = {
            let mut out = lock(&self.out);
            if out.closed.is_none() {
                out.closed = Some(reason);
            }
            let final_poll = reason.delivers_queue() && !out.queue.is_empty();
            if !final_poll && self.transport() != WEBSOCKET {
                // Nobody will read it: free it now.
                out.queue = VecDeque::new();
                out.bytes = 0;
            }
            final_poll
        };
        self.wake.notify_waiters();
        self.wake.notify_one();
        self.ws_waker.wake();
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        self.cancel.notify_waiters();
        *lock(&self.incoming) = None;
        tracing::debug!(sid = %self.sid, ?reason, "engine.io session closed");
        if self.transport() != WEBSOCKET && final_poll {
            // A polling client gets its last packets (e.g. `41`) on its next
            // poll; the session stays findable until then, or a ping timeout.
            let (server, sid) = (self.server.clone(), self.sid.clone());
            tokio::spawn(async move {
                tokio::time::sleep(server.cfg.ping_timeout).await;
                server.forget(&sid);
            });
        } else {
            self.server.forget(&self.sid);
        }
        let sockets = std::mem::take(&mut *lock(&self.sockets));
        for s in sockets {
            if s.leave() {
                tokio::spawn(s.handler().disconnect(s.clone(), reason.socket_reason()));
            }
        }
    }

    /// Server shutdown: every socket is told `41` and leaves.
    pub fn disconnect_all(&self) {
        let sockets = std::mem::take(&mut *lock(&self.sockets));
        for s in sockets {
            if s.leave() {
                let _ = self.push(packet::disconnect(s.ns()).into(), true);
                tokio::spawn(s.handler().disconnect(s.clone(), Reason::Shutdown));
            }
        }
    }

    /// The writer has finished (or there is none to wait for).
    pub fn is_drained(&self) -> bool {
        self.writer_done.load(Ordering::Acquire)
            || (self.transport() == POLLING
                && !self.polling.load(Ordering::Acquire)
                && lock(&self.out).queue.is_empty())
    }

    /// The writer (websocket task or final long-poll) has written its last packet.
    pub fn set_writer_done(&self) {
        self.writer_done.store(true, Ordering::Release);
    }

    pub fn find_socket(&self, id: &str) -> Option<Arc<Socket>> {
        lock(&self.sockets)
            .iter()
            .find(|s| &**s.id() == id)
            .cloned()
    }

    fn find_ns(&self, ns: &str) -> Option<Arc<Socket>> {
        lock(&self.sockets).iter().find(|s| s.ns() == ns).cloned()
    }

    pub fn remove_socket(&self, id: &str) {
        lock(&self.sockets).retain(|s| &**s.id() != id);
    }

    /// Reads one Engine.IO packet from the client. `Err` ends the session.
    pub fn on_text(self: &Arc<Self>, text: &str) -> Result<(), CloseReason> {
        match text.as_bytes().first() {
            Some(b'4') => self.on_socket_packet(&text[1..]),
            Some(b'3') => {
                self.on_pong();
                Ok(())
            }
            // In Engine.IO v4 only the server pings (the client's `2probe`
            // belongs to the upgrade, handled by the websocket driver): a
            // client's ping is a protocol error, as the reference server's
            // "invalid heartbeat direction", not a reply it can make us queue.
            Some(b'2') => Err(self.protocol_error()),
            Some(b'1') => Err(CloseReason::TransportClose),
            Some(b'6') => Ok(()),
            _ => {
                tracing::debug!(sid = %self.sid, "unreadable engine.io packet");
                Err(self.protocol_error())
            }
        }
    }

    /// Counts a protocol error; the caller closes the session with it.
    pub(crate) fn protocol_error(&self) -> CloseReason {
        self.server.cfg.refusals.count(Refusal::ProtocolError);
        CloseReason::ProtocolError
    }

    /// A binary message: the next attachment of the binary packet being
    /// received. One that no packet announced is a protocol error; the
    /// packet past `max_payload` bytes ends the session as too big.
    pub fn on_binary(self: &Arc<Self>, data: Bytes) -> Result<(), CloseReason> {
        let mut slot = lock(&self.incoming);
        let Some(inc) = slot.as_mut() else {
            drop(slot);
            tracing::debug!(sid = %self.sid, "an attachment no packet announced");
            return Err(self.protocol_error());
        };
        inc.bytes += data.len();
        if inc.bytes > self.server.cfg.max_payload {
            *slot = None;
            return Err(CloseReason::TooBig);
        }
        inc.got.push(data);
        if inc.got.len() < inc.expected as usize {
            return Ok(());
        }
        let done = slot.take();
        drop(slot);
        if let Some(inc) = done {
            self.complete(*inc);
        }
        Ok(())
    }

    /// A binary packet has all its attachments: its event is handled.
    fn complete(self: &Arc<Self>, inc: Incoming) {
        let Some(s) = inc.to else { return };
        let event = Event {
            name: inc.name,
            args: inc.args,
            ack: inc.ack,
            attachments: inc.got,
        };
        self.dispatch(s, event);
    }

    /// The header of a binary packet: its attachments are awaited. The data
    /// must be JSON whose placeholders match the announced count, or it is a
    /// protocol error (as socket.io's "illegal attachments").
    fn on_binary_header(
        self: &Arc<Self>,
        p: &packet::SioPacket<'_>,
        to: Option<Arc<Socket>>,
    ) -> Result<(), CloseReason> {
        if p.data.len() > self.server.cfg.max_payload {
            return Err(CloseReason::TooBig);
        }
        let Ok(data) = serde_json::from_str::<Value>(p.data) else {
            tracing::debug!(sid = %self.sid, "a binary packet that is not JSON");
            return Err(self.protocol_error());
        };
        if let Err(e) = packet::check_placeholders(&data, p.attachments) {
            tracing::debug!(sid = %self.sid, error = e.0, "bad placeholders");
            return Err(self.protocol_error());
        }
        let (to, name, args) = match (p.kind, to) {
            (Kind::BinaryEvent, Some(s)) => match split_event(data) {
                Ok((name, args)) => (Some(s), name, args),
                Err(error) => {
                    // Answered now; its attachments are read and dropped.
                    self.spawn_handler(s.handler().malformed(s.clone(), p.ack, error), false);
                    (None, String::new(), Vec::new())
                }
            },
            _ => (None, String::new(), Vec::new()),
        };
        let inc = Incoming {
            to,
            name,
            args,
            ack: p.ack,
            expected: p.attachments,
            got: Vec::new(),
            bytes: p.data.len(),
        };
        if p.attachments == 0 {
            self.complete(inc);
        } else {
            *lock(&self.incoming) = Some(Box::new(inc));
        }
        Ok(())
    }

    fn on_socket_packet(self: &Arc<Self>, text: &str) -> Result<(), CloseReason> {
        let p = match packet::parse(text) {
            Ok(p) => p,
            Err(e) => {
                // Protocol-level garbage closes the connection, as socket.io does.
                tracing::debug!(sid = %self.sid, error = e.0, "unreadable socket.io packet");
                return Err(self.protocol_error());
            }
        };
        if lock(&self.incoming).is_some() {
            // Attachments follow their header with nothing in between.
            tracing::debug!(sid = %self.sid, "a packet inside a binary packet");
            return Err(self.protocol_error());
        }
        match p.kind {
            Kind::Connect => return self.connect(p.ns, p.data),
            Kind::Disconnect => {
                if let Some(s) = self.find_ns(p.ns) {
                    self.remove_socket(s.id());
                    if s.leave() {
                        tokio::spawn(s.handler().disconnect(s.clone(), Reason::ClientDisconnect));
                    }
                }
            }
            Kind::BinaryEvent | Kind::BinaryAck => {
                // The server asks for no acknowledgements: a binary ack's
                // attachments are read and dropped, as is an event for a
                // namespace not joined.
                let to = (p.kind == Kind::BinaryEvent)
                    .then(|| self.find_ns(p.ns).filter(|s| s.connected()))
                    .flatten();
                return self.on_binary_header(&p, to);
            }
            Kind::Event => {
                let Some(s) = self.find_ns(p.ns).filter(|s| s.connected()) else {
                    tracing::debug!(sid = %self.sid, ns = p.ns, "event for a namespace not joined");
                    return Ok(());
                };
                // Application-level errors are answered, the connection stays.
                match read_event(p.data) {
                    Ok((name, args)) => {
                        let event = Event {
                            name,
                            args,
                            ack: p.ack,
                            attachments: Vec::new(),
                        };
                        self.dispatch(s, event);
                    }
                    Err(error) => {
                        self.spawn_handler(s.handler().malformed(s.clone(), p.ack, error), false);
                    }
                }
            }
            // The server asks for no acknowledgements; clients send no errors.
            Kind::Ack | Kind::ConnectError => {}
        }
        Ok(())
    }

    fn connect(self: &Arc<Self>, ns: &str, data: &str) -> Result<(), CloseReason> {
        let auth = if data.is_empty() {
            None
        } else {
            match serde_json::from_str::<Value>(data) {
                Ok(v @ Value::Object(_)) => Some(v),
                // socket.io closes the connection on a payload that is not an object.
                _ => return Err(self.protocol_error()),
            }
        };
        if !self.admit() {
            let m = "Too many events: slow down";
            return self.push_reply(packet::connect_error(ns, m).into());
        }
        let Some(handler) = self.server.handler(ns) else {
            return self.push_reply(packet::connect_error(ns, "Invalid namespace").into());
        };
        if self.find_ns(ns).is_some() {
            tracing::debug!(sid = %self.sid, ns, "namespace joined twice; ignored");
            return Ok(());
        }
        let socket = Arc::new(Socket::new(
            self.clone(),
            self.server.ns_name(ns),
            handler.clone(),
        ));
        lock(&self.sockets).push(socket.clone());
        let conn = self.clone();
        tokio::spawn(async move {
            let verdict = handler.connect(socket.clone(), auth).await;
            match verdict {
                Ok(()) => {
                    // Queued before the socket counts as connected, so the
                    // acknowledgement precedes anything the socket is sent.
                    let ack = packet::connected(socket.ns(), socket.id());
                    if conn.push_reply(ack.into()).is_ok() {
                        conn.set_joined();
                    }
                    if !socket.accept() {
                        // The connection ended while the handler ran.
                        handler.disconnect(socket, Reason::TransportClose).await;
                    }
                }
                Err(message) => {
                    conn.remove_socket(socket.id());
                    let refusal = packet::connect_error(socket.ns(), &message);
                    let _closed_if_full = conn.push_reply(refusal.into());
                }
            }
        });
        Ok(())
    }
}

/// `["name", args...]` of an event packet.
fn read_event(data: &str) -> Result<(String, Vec<Value>), &'static str> {
    match serde_json::from_str::<Value>(data) {
        Ok(v) => split_event(v),
        Err(_) => Err("an event must be a JSON array"),
    }
}

fn split_event(data: Value) -> Result<(String, Vec<Value>), &'static str> {
    let Value::Array(mut items) = data else {
        return Err("an event must be a JSON array");
    };
    if items.is_empty() {
        return Err("an event needs a name");
    }
    match items.remove(0) {
        Value::String(name) => Ok((name, items)),
        _ => Err("an event name must be a string"),
    }
}

#[cfg(test)]
mod tests;
