//! A client's membership of one namespace: the [`Socket`] handlers act on,
//! and the [`Handler`] a namespace is served by.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;

use huddle_core::{ConnId, Connection, DisconnectReason, Frame, QueueFull};

use crate::engine::{CloseReason, EngineConn, Refused};
use crate::packet;

/// Why a socket left its namespace (what the handler's `disconnect` hears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientDisconnect,
    /// The server disconnected the socket ([`Socket::disconnect`]).
    ServerDisconnect,
    /// The client closed the connection.
    TransportClose,
    /// The connection failed (I/O error, oversize message, protocol error).
    TransportError,
    /// No pong within the ping timeout.
    PingTimeout,
    /// Its outbound queue was full.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
}

/// A client event: `socket.emit(name, ...args[, ack])`.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    /// The arguments as sent: binary values stay placeholders
    /// `{"_placeholder":true,"num":i}` naming `attachments[i]`.
    pub args: Vec<Value>,
    /// Present when the client asked for an acknowledgement ([`Socket::ack`]).
    pub ack: Option<u64>,
    /// The binary attachments of a binary event (empty for a plain one).
    /// Each placeholder of `args` names exactly one, and each is named once.
    pub attachments: Vec<Bytes>,
}

impl Event {
    /// The first argument, the usual payload (`Null` when there is none).
    pub fn data(&self) -> &Value {
        self.args.first().unwrap_or(&Value::Null)
    }
}

/// Serves one namespace (or a family of them). Every method's future is
/// spawned: events of one socket may complete in any order, as with
/// socket.io's async handlers.
pub trait Handler: Send + Sync + 'static {
    /// A client asks to join. `Ok` acknowledges the connection (`40`), `Err`
    /// refuses it with the message (`44 {message}`, the client's `connect_error`).
    /// Runs before the acknowledgement, so whatever it sets up is in place
    /// before the client's first event.
    fn connect(
        &self,
        socket: Arc<Socket>,
        auth: Option<Value>,
    ) -> BoxFuture<'static, Result<(), String>>;

    /// An event from a connected socket.
    fn event(&self, socket: Arc<Socket>, event: Event) -> BoxFuture<'static, ()>;

    /// An event packet that could not be read: the handler answers with an
    /// error the client can see (never a silent drop).
    fn malformed(
        &self,
        socket: Arc<Socket>,
        ack: Option<u64>,
        error: &'static str,
    ) -> BoxFuture<'static, ()>;

    /// The socket left, exactly once per accepted socket, after which it
    /// receives nothing more.
    fn disconnect(&self, socket: Arc<Socket>, reason: Reason) -> BoxFuture<'static, ()>;
}

const CONNECTING: u8 = 0;
const CONNECTED: u8 = 1;
const CLOSED: u8 = 2;

/// A client in one namespace. Cheap: an id, the namespace, and references to
/// its connection and handler; nothing is buffered here (the connection owns
/// the one outbound queue).
pub struct Socket {
    id: ConnId,
    ns: Arc<str>,
    conn: Arc<EngineConn>,
    handler: Arc<dyn Handler>,
    state: AtomicU8,
}

impl Socket {
    pub(crate) fn new(conn: Arc<EngineConn>, ns: Arc<str>, handler: Arc<dyn Handler>) -> Socket {
        Socket {
            id: uuid::Uuid::new_v4().simple().to_string().into(),
            ns,
            conn,
            handler,
            state: AtomicU8::new(CONNECTING),
        }
    }

    /// The socket id (the client's `socket.id`).
    pub fn id(&self) -> &ConnId {
        &self.id
    }

    /// The namespace, e.g. `/` or `/socket/commu-1`.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// A request header of the connection's handshake, if the server was
    /// configured to keep it ([`Config::keep_headers`](crate::Config)).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.conn.header(name)
    }

    /// Whether the socket is connected (acknowledged and not yet gone).
    pub fn connected(&self) -> bool {
        self.state.load(Ordering::Acquire) == CONNECTED
    }

    /// Sends `event` with one argument. A full outbound queue disconnects the
    /// client as a slow consumer and is reported as [`QueueFull`].
    pub fn emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), QueueFull> {
        let payload = serde_json::to_string(data).map_err(|e| {
            tracing::error!(event, error = %e, "cannot encode an event");
            QueueFull
        })?;
        self.push(packet::event(&self.ns, event, &payload))
    }

    /// Acknowledges the client's event `id` with one argument.
    pub fn ack<T: serde::Serialize + ?Sized>(&self, id: u64, data: &T) -> Result<(), QueueFull> {
        self.ack_args(id, std::slice::from_ref(&data))
    }

    /// Acknowledges the client's event `id` with these arguments.
    pub fn ack_args<T: serde::Serialize>(&self, id: u64, args: &[T]) -> Result<(), QueueFull> {
        self.ack_binary(id, args, &[])
    }

    /// Acknowledges the client's event `id` with these arguments and binary
    /// attachments, named by placeholders in `args` (a binary ack, `46<n>-`;
    /// a plain one when `attachments` is empty). The caller keeps the
    /// placeholders consistent: an event's own are (see [`Event::attachments`]).
    pub fn ack_binary<T: serde::Serialize>(
        &self,
        id: u64,
        args: &[T],
        attachments: &[Bytes],
    ) -> Result<(), QueueFull> {
        let args = serde_json::to_string(args).map_err(|e| {
            tracing::error!(error = %e, "cannot encode an acknowledgement");
            QueueFull
        })?;
        let text = packet::ack_with(&self.ns, id, &args, attachments.len());
        self.refused(self.conn.push_binary(text.into(), attachments))
    }

    fn push(&self, text: String) -> Result<(), QueueFull> {
        self.refused(self.conn.push(text.into(), false))
    }

    fn refused(&self, pushed: Result<(), Refused>) -> Result<(), QueueFull> {
        pushed.map_err(|refused| {
            if refused == Refused::Full {
                self.conn.slow_consumer();
            }
            QueueFull
        })
    }

    /// Takes one token of the connection's event rate limit (shared by every
    /// namespace of the Engine.IO session, and by its CONNECTs): `false`
    /// when the client is past it (counted as `socket_events`); the handler
    /// answers the event with its error.
    pub fn admit(&self) -> bool {
        self.conn.admit()
    }

    /// Ends the whole connection, not only this namespace: the socket is told
    /// `41`, then the transport closes (websocket close 1000). For a client
    /// that must not simply re-join (e.g. one past its auth timeout).
    pub fn close_connection(&self) {
        if self.connected() {
            let _closing = self.conn.push(packet::disconnect(&self.ns).into(), true);
        }
        self.conn.close(CloseReason::ServerClose);
    }

    /// Disconnects the client from this namespace (`41`; the client's
    /// `disconnect` reason is `io server disconnect`). Idempotent.
    pub fn disconnect(&self) {
        let Some(me) = self.conn.find_socket(&self.id) else {
            return;
        };
        if me.leave() {
            let _closing = self.conn.push(packet::disconnect(&self.ns).into(), true);
            self.conn.remove_socket(&self.id);
            tokio::spawn(self.handler.disconnect(me, Reason::ServerDisconnect));
        }
    }

    /// Marks the socket acknowledged; false if it was closed meanwhile.
    pub(crate) fn accept(&self) -> bool {
        self.state
            .compare_exchange(CONNECTING, CONNECTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the socket gone. True only for the call that took it from
    /// connected to closed: that caller runs the handler's `disconnect`.
    pub(crate) fn leave(&self) -> bool {
        self.state.swap(CLOSED, Ordering::AcqRel) == CONNECTED
    }

    pub(crate) fn handler(&self) -> &Arc<dyn Handler> {
        &self.handler
    }
}

impl Connection for Socket {
    fn id(&self) -> &ConnId {
        &self.id
    }

    /// Queues the frame's Socket.IO packet, encoded once per frame and
    /// namespace, followed by its shared attachments if it has any (a binary
    /// event `45<n>-`). Only a full queue is refused (the hub closes a slow
    /// consumer); a closing session takes nothing more and its cleanup
    /// leaves the hub, so it is not counted as slow.
    fn send(&self, frame: &Frame) -> Result<(), QueueFull> {
        let attachments = frame.attachments();
        let text: axum::extract::ws::Utf8Bytes = frame.wire(&self.ns, |f| {
            packet::event_with(&self.ns, &f.event, f.payload.get(), attachments.len()).into()
        });
        match self.conn.push_binary(text, attachments) {
            Err(Refused::Full) => Err(QueueFull),
            Ok(()) | Err(Refused::Closed) => Ok(()),
        }
    }

    fn close(&self, reason: DisconnectReason) {
        tracing::info!(socket = %self.id, reason = reason.as_str(), "closing socket");
        match reason {
            // Nothing more fits in its queue: drop the connection.
            DisconnectReason::SlowConsumer => self.conn.close(CloseReason::SlowConsumer),
            _ => self.disconnect(),
        }
    }
}
