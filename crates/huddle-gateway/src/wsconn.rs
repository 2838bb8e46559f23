//! A raw websocket connection as the hub sees it (comet and users sockets): a
//! bounded queue of encoded frames drained by the connection's own task, and a
//! close signal carrying the close code.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, Notify};

use huddle_core::{ConnId, Connection, DisconnectReason, Frame, QueueFull};

/// The hub's half: `send` never blocks and only clones the frame's `Arc` (the
/// payload was encoded once per publication); a full queue is [`QueueFull`]
/// (the hub then closes the connection as a slow consumer).
pub(crate) struct QueuedConn {
    id: ConnId,
    tx: mpsc::Sender<Arc<RawValue>>,
    closed: Arc<Notify>,
    close_code: Arc<AtomicU16>,
}

/// Fires when the server closes the connection.
pub(crate) struct CloseSignal {
    closed: Arc<Notify>,
    close_code: Arc<AtomicU16>,
}

/// The frames a connection's task writes, in order.
pub(crate) type Outbound = mpsc::Receiver<Arc<RawValue>>;

impl QueuedConn {
    /// A connection whose queue holds at most `capacity` frames, with the task's
    /// halves: the frames to write and the close signal.
    pub fn new(id: ConnId, capacity: usize) -> (Arc<QueuedConn>, Outbound, CloseSignal) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closed = Arc::new(Notify::new());
        let close_code = Arc::new(AtomicU16::new(1008));
        let conn = Arc::new(QueuedConn {
            id,
            tx,
            closed: closed.clone(),
            close_code: close_code.clone(),
        });
        (conn, rx, CloseSignal { closed, close_code })
    }
}

impl CloseSignal {
    /// Completes when the server closes the connection: (close code, reason text).
    pub async fn closed(&self) -> (u16, &'static str) {
        self.closed.notified().await;
        match self.close_code.load(Ordering::Relaxed) {
            1001 => (1001, "server shutting down"),
            code => (code, "slow consumer"),
        }
    }
}

impl Connection for QueuedConn {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, frame: &Frame) -> Result<(), QueueFull> {
        self.tx
            .try_send(frame.payload.clone())
            .map_err(|_| QueueFull)
    }

    fn close(&self, reason: DisconnectReason) {
        tracing::info!(conn = %self.id, reason = reason.as_str(), "closing websocket");
        let code = if reason == DisconnectReason::Shutdown {
            1001
        } else {
            1008
        };
        self.close_code.store(code, Ordering::Relaxed);
        self.closed.notify_one();
    }
}

/// tungstenite's write threshold for the comet and users sockets: it writes to
/// the socket once its buffer passes this (and on flush), so a wake-up's frames
/// share a few syscalls instead of one each. The buffer keeps its capacity, so
/// this also bounds what a connection retains after a burst. (The Socket.IO
/// transport has its own websocket layer and keeps no buffer.)
pub(crate) const WRITE_COALESCE: usize = 4096;

/// Most frames one write carries.
const BATCH: usize = 64;

/// Writes `first` and whatever else is already queued (up to [`BATCH`]) with a
/// single flush: under load, the cost per delivery falls instead of rising.
pub(crate) async fn write_batch<S>(
    sink: &mut S,
    first: Arc<RawValue>,
    outbound: &mut Outbound,
) -> Result<(), axum::Error>
where
    S: futures::Sink<axum::extract::ws::Message, Error = axum::Error> + Unpin,
{
    use futures::SinkExt;
    sink.feed(axum::extract::ws::Message::Text(first.get().into()))
        .await?;
    for _ in 1..BATCH {
        match outbound.try_recv() {
            Ok(next) => {
                sink.feed(axum::extract::ws::Message::Text(next.get().into()))
                    .await?
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}
