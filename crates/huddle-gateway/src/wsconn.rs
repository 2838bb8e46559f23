//! A raw websocket connection (comet and users sockets) on [`huddle_ws`]: the
//! hub's half (a bounded queue of frames encoded once per publication) and
//! the connection's task, which reads messages one at a time, hands each to
//! its front door's [`Session`], and writes replies and queued frames.
//!
//! Guarantees:
//! - the queue is bounded in bytes: a frame past `capacity` bytes (not
//!   counting the batch being written; a single larger frame passes an empty
//!   queue) is refused with [`QueueFull`] and the hub closes the connection
//!   as a slow consumer;
//! - an idle connection holds no buffer: the writer takes the queue's storage
//!   whole and frees it once written;
//! - frames are written from their shared bytes (vectored writes), never
//!   copied per connection;
//! - a client that does not read its replies stops being read (at most
//!   [`MAX_BACKLOG`] bytes of replies wait), so it cannot grow a buffer.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use huddle_ws::OnUpgrade;
use serde_json::value::RawValue;

use huddle_core::{ConnId, Connection, DisconnectReason, Frame, QueueFull};
use huddle_ws::{End, Flow, Msg, Stream, WebSocket};

/// Bytes of replies that may wait unwritten before the connection stops
/// reading requests.
pub(crate) const MAX_BACKLOG: usize = 64 * 1024;

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Arc<RawValue>>,
    /// The bytes of `queue`.
    bytes: usize,
    /// Set when the server closes the connection: the close code.
    closed: Option<u16>,
}

/// The hub's half: `send` never blocks and only clones the frame's `Arc`.
pub(crate) struct QueuedConn {
    id: ConnId,
    capacity: usize,
    out: Mutex<Outbox>,
    waker: AtomicWaker,
}

fn lock(m: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl QueuedConn {
    /// A connection whose queue holds at most `capacity` bytes of frames.
    pub fn new(id: ConnId, capacity: usize) -> Arc<QueuedConn> {
        Arc::new(QueuedConn {
            id,
            capacity: capacity.max(1),
            out: Mutex::default(),
            waker: AtomicWaker::new(),
        })
    }

    /// Everything queued (the storage with it) and the close code, if the
    /// server closed the connection; the task is woken when more comes.
    fn take(&self, cx: &mut Context<'_>) -> (VecDeque<Arc<RawValue>>, Option<u16>) {
        self.waker.register(cx.waker());
        let mut out = lock(&self.out);
        out.bytes = 0;
        (std::mem::take(&mut out.queue), out.closed)
    }
}

impl Connection for QueuedConn {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, frame: &Frame) -> Result<(), QueueFull> {
        {
            let mut out = lock(&self.out);
            if out.closed.is_some() {
                // Closing: its task writes nothing more.
                return Ok(());
            }
            let len = frame.payload.get().len();
            if !out.queue.is_empty() && out.bytes + len > self.capacity {
                return Err(QueueFull);
            }
            out.bytes += len;
            out.queue.push_back(frame.payload.clone());
        }
        self.waker.wake();
        Ok(())
    }

    fn close(&self, reason: DisconnectReason) {
        tracing::info!(conn = %self.id, reason = reason.as_str(), "closing websocket");
        let code = if reason == DisconnectReason::Shutdown {
            1001
        } else {
            1008
        };
        lock(&self.out).closed.get_or_insert(code);
        self.waker.wake();
    }
}

fn close_reason(code: u16) -> &'static str {
    match code {
        1001 => "server shutting down",
        _ => "slow consumer",
    }
}

/// What a request earns: replies (JSON text, in order), or the end of the
/// connection with a close code and reason.
pub(crate) type Replies = Result<Vec<String>, (u16, &'static str)>;

/// A front door's side of one connection.
pub(crate) trait Session: Send + 'static {
    /// One text message from the client. The future is boxed so that the
    /// connection's task is small while idle, whatever a request awaits.
    fn text<'a>(&'a mut self, text: &'a str) -> BoxFuture<'a, Replies>;
    /// A binary message from the client.
    fn binary(&mut self) -> Replies;
    /// The connection has ended (whichever side ended it).
    fn finish(self) -> BoxFuture<'static, ()>;
}

/// How a connection opens: the frames it starts with, then its session
/// (registered with the hub as `conn`), or the close that refuses it.
pub(crate) struct Opening<S> {
    pub first: Vec<String>,
    pub session: Result<(S, Arc<QueuedConn>), (u16, &'static str)>,
}

/// Takes the upgrade of an accepted handshake and runs the connection once
/// it completes: `open` (boxed: it may await the store, and is freed once
/// done) starts the session.
pub(crate) fn spawn<S: Session>(
    upgrade: OnUpgrade,
    max_message: usize,
    open: BoxFuture<'static, Opening<S>>,
) {
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let (io, read) = Stream::from_upgraded(upgraded);
        let mut ws = WebSocket::new(io, read, max_message);
        let opening = open.await;
        for text in &opening.first {
            ws.queue_text(text);
        }
        match opening.session {
            Ok((session, conn)) => run(ws, conn, session).await,
            Err((code, reason)) => close(&mut ws, code, reason).await,
        }
    });
}

enum Event {
    Text(String),
    Binary,
    /// The server closed the connection, with this code.
    Closed(u16),
    /// The client left, or the socket failed.
    Gone,
}

async fn run<S: Session>(mut ws: WebSocket, conn: Arc<QueuedConn>, mut session: S) {
    let mut out = VecDeque::new();
    loop {
        let replies = match poll_fn(|cx| next(cx, &mut ws, &conn, &mut out)).await {
            Event::Text(text) => session.text(&text).await,
            Event::Binary => session.binary(),
            Event::Closed(code) => {
                close(&mut ws, code, close_reason(code)).await;
                break;
            }
            Event::Gone => break,
        };
        match replies {
            Ok(replies) => {
                for r in &replies {
                    ws.queue_text(r);
                }
            }
            Err((code, reason)) => {
                close(&mut ws, code, reason).await;
                break;
            }
        }
    }
    session.finish().await;
    // The echo of a client's close goes out once the session has left the hub.
    poll_fn(|cx| {
        ws.flush_close(cx);
        Poll::Ready(())
    })
    .await;
}

/// Best effort: the close frame goes out if the socket takes it now.
async fn close(ws: &mut WebSocket, code: u16, reason: &str) {
    poll_fn(|cx| {
        ws.send_close(cx, Some(code), reason);
        Poll::Ready(())
    })
    .await
}

/// Writes what is queued and reads until a message arrives (or the end).
fn next(
    cx: &mut Context<'_>,
    ws: &mut WebSocket,
    conn: &QueuedConn,
    out: &mut VecDeque<Arc<RawValue>>,
) -> Poll<Event> {
    // Write first: replies of the last request, and what the hub queued.
    for round in 0.. {
        if out.is_empty() {
            let (queue, closed) = conn.take(cx);
            if let Some(code) = closed {
                return Poll::Ready(Event::Closed(code));
            }
            *out = queue;
        }
        let had = !out.is_empty();
        match ws.poll_write(cx, out) {
            Poll::Pending => break,
            Poll::Ready(Err(_)) => return Poll::Ready(Event::Gone),
            Poll::Ready(Ok(())) => {}
        }
        // Free the batch's storage: an idle connection holds none.
        *out = VecDeque::new();
        if !had {
            break;
        }
        if round == 3 {
            // Producers keep filling the queue: let the others run too.
            cx.waker().wake_by_ref();
            break;
        }
    }
    if ws.backlog() > MAX_BACKLOG {
        // Replies wait for the client to read them; the write side wakes us.
        return Poll::Pending;
    }
    let mut message = None;
    let read = ws.poll_read(cx, |msg| {
        message = Some(match msg {
            Msg::Text(t) => Event::Text(t.to_owned()),
            Msg::Binary(_) => Event::Binary,
        });
        Ok::<_, std::convert::Infallible>(Flow::Pause)
    });
    match read {
        // Pongs the read queued go out now, not with the next data frame: a
        // quiet connection's keep-alive ping must be answered. A client that
        // does not read them stops being read (the backlog check above).
        Poll::Pending if ws.backlog() > 0 => match ws.poll_ctrl(cx) {
            Poll::Ready(Err(_)) => Poll::Ready(Event::Gone),
            _ => Poll::Pending,
        },
        Poll::Pending => Poll::Pending,
        Poll::Ready(End::Paused) => Poll::Ready(message.unwrap_or(Event::Gone)),
        Poll::Ready(End::Closed | End::Failed) => Poll::Ready(Event::Gone),
        Poll::Ready(End::Handler(never)) => match never {},
    }
}
