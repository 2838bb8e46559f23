//! One Engine.IO session: its single bounded outbound queue, its namespace
//! sockets, and the reading of inbound packets (shared by both transports).
//!
//! Guarantees:
//! - the queue is bounded: a push past `outbound_queue_bytes` fails and the
//!   caller closes the session as a slow consumer (control packets such as a
//!   disconnect may exceed it by a few);
//! - an idle session holds no buffer: the queue's storage is taken whole by
//!   the writer and freed;
//! - closing is idempotent and runs the namespace handlers' `disconnect`
//!   exactly once per accepted socket.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use axum::http::{HeaderName, HeaderValue};
use futures::task::AtomicWaker;
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
    /// I/O error, oversize message, or a packet that cannot be read.
    TransportError,
    PingTimeout,
    SlowConsumer,
    Shutdown,
    /// No namespace was joined within the connect timeout.
    NoNamespace,
}

impl CloseReason {
    fn socket_reason(self) -> Reason {
        match self {
            CloseReason::TransportClose | CloseReason::NoNamespace => Reason::TransportClose,
            CloseReason::TransportError => Reason::TransportError,
            CloseReason::PingTimeout => Reason::PingTimeout,
            CloseReason::SlowConsumer => Reason::SlowConsumer,
            CloseReason::Shutdown => Reason::Shutdown,
        }
    }
}

pub(crate) const POLLING: u8 = 0;
pub(crate) const UPGRADING: u8 = 1;
pub(crate) const WEBSOCKET: u8 = 2;

/// Why [`EngineConn::push`] did not queue a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is at its bound: the client is not keeping up.
    Full,
    /// The session is closing: it writes nothing more.
    Closed,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Utf8Bytes>,
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
    /// A ping was sent and its pong has not arrived.
    pub awaiting_pong: AtomicBool,
    /// A long-poll request is pending.
    pub polling: AtomicBool,
    /// Binary attachments still to arrive (and be discarded).
    attachments: AtomicU32,
    finished: AtomicBool,
    writer_done: AtomicBool,
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
        EngineConn {
            sid: uuid::Uuid::new_v4().simple().to_string().into(),
            server,
            out: Mutex::default(),
            wake: Notify::new(),
            ws_waker: AtomicWaker::new(),
            sockets: Mutex::default(),
            headers,
            transport: AtomicU8::new(transport),
            awaiting_pong: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            attachments: AtomicU32::new(0),
            finished: AtomicBool::new(false),
            writer_done: AtomicBool::new(false),
        }
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
        let mut out = lock(&self.out);
        if out.closed.is_some() {
            return Err(Refused::Closed);
        }
        let was_empty = out.queue.is_empty();
        if !force && !was_empty && out.bytes + packet.len() > self.server.cfg.outbound_queue_bytes {
            return Err(Refused::Full);
        }
        out.bytes += packet.len();
        out.queue.push_back(packet);
        drop(out);
        if was_empty {
            self.wake.notify_one();
            self.ws_waker.wake();
        }
        Ok(())
    }

    /// Everything queued (the storage goes with it), and whether the session closed.
    pub fn take(&self) -> (VecDeque<Utf8Bytes>, Option<CloseReason>) {
        let mut out = lock(&self.out);
        out.bytes = 0;
        (std::mem::take(&mut out.queue), out.closed)
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.out).closed.is_some()
    }

    /// Ends the session: the writer sends what is queued and closes the
    /// transport; the sockets leave their namespaces. Idempotent.
    pub fn close(self: &Arc<Self>, reason: CloseReason) {
        {
            let mut out = lock(&self.out);
            if out.closed.is_none() {
                out.closed = Some(reason);
            }
        }
        self.wake.notify_waiters();
        self.wake.notify_one();
        self.ws_waker.wake();
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(sid = %self.sid, ?reason, "engine.io session closed");
        let final_poll = self.transport() != WEBSOCKET && !lock(&self.out).queue.is_empty();
        if final_poll {
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

    pub fn has_sockets(&self) -> bool {
        !lock(&self.sockets).is_empty()
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
            Some(b'4') => {
                self.on_socket_packet(&text[1..]);
                Ok(())
            }
            Some(b'3') => {
                self.awaiting_pong.store(false, Ordering::Release);
                Ok(())
            }
            // A client's ping (not sent by v4 clients, but harmless): pong it.
            Some(b'2') => {
                let pong = format!("3{}", &text[1..]);
                self.push(pong.into(), true)
                    .map_err(|_| CloseReason::TransportClose)
            }
            Some(b'1') => Err(CloseReason::TransportClose),
            Some(b'6') => Ok(()),
            _ => {
                tracing::debug!(sid = %self.sid, "unreadable engine.io packet");
                Err(CloseReason::TransportError)
            }
        }
    }

    /// A binary message: an attachment of a binary packet, discarded.
    pub fn on_binary(&self) -> Result<(), CloseReason> {
        self.attachments
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .map(|_| ())
            .map_err(|_| CloseReason::TransportError)
    }

    fn on_socket_packet(self: &Arc<Self>, text: &str) {
        let p = match packet::parse(text) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(sid = %self.sid, error = e.0, "unreadable socket.io packet");
                // Reported on the root namespace's socket when there is one.
                if let Some(s) = self.find_ns("/").filter(|s| s.connected()) {
                    tokio::spawn(s.handler().malformed(s.clone(), None, e.0));
                }
                return;
            }
        };
        if p.attachments > 0 {
            self.attachments.fetch_add(p.attachments, Ordering::AcqRel);
        }
        match p.kind {
            Kind::Connect => self.connect(p.ns, p.data),
            Kind::Disconnect => {
                if let Some(s) = self.find_ns(p.ns) {
                    self.remove_socket(s.id());
                    if s.leave() {
                        tokio::spawn(s.handler().disconnect(s.clone(), Reason::ClientDisconnect));
                    }
                }
            }
            Kind::Event | Kind::BinaryEvent => {
                let Some(s) = self.find_ns(p.ns).filter(|s| s.connected()) else {
                    tracing::debug!(sid = %self.sid, ns = p.ns, "event for a namespace not joined");
                    return;
                };
                if p.kind == Kind::BinaryEvent {
                    let error = "binary attachments are not supported";
                    tokio::spawn(s.handler().malformed(s.clone(), p.ack, error));
                    return;
                }
                match read_event(p.data) {
                    Ok((name, args)) => {
                        let event = Event {
                            name,
                            args,
                            ack: p.ack,
                        };
                        tokio::spawn(s.handler().event(s.clone(), event));
                    }
                    Err(error) => {
                        tokio::spawn(s.handler().malformed(s.clone(), p.ack, error));
                    }
                }
            }
            // The server asks for no acknowledgements; clients send no errors.
            Kind::Ack | Kind::BinaryAck | Kind::ConnectError => {}
        }
    }

    fn connect(self: &Arc<Self>, ns: &str, data: &str) {
        let Some(handler) = self.server.handler(ns) else {
            let _ = self.push(packet::connect_error(ns, "Invalid namespace").into(), true);
            return;
        };
        if self.find_ns(ns).is_some() {
            tracing::debug!(sid = %self.sid, ns, "namespace joined twice; ignored");
            return;
        }
        let auth = if data.is_empty() {
            None
        } else {
            match serde_json::from_str::<Value>(data) {
                Ok(v) => Some(v),
                Err(_) => {
                    let m = "The connect payload is not JSON";
                    let _ = self.push(packet::connect_error(ns, m).into(), true);
                    return;
                }
            }
        };
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
                    let _ = conn.push(ack.into(), true);
                    if !socket.accept() {
                        // The connection ended while the handler ran.
                        handler.disconnect(socket, Reason::TransportClose).await;
                    }
                }
                Err(message) => {
                    conn.remove_socket(socket.id());
                    let _ = conn.push(packet::connect_error(socket.ns(), &message).into(), true);
                }
            }
        });
    }
}

/// `["name", args...]` of an event packet.
fn read_event(data: &str) -> Result<(String, Vec<Value>), &'static str> {
    let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(data) else {
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
