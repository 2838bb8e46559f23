//! The websocket transport: one task per connection that reads packets,
//! writes the session's queue (everything waiting in one flush), and keeps
//! the heartbeat with a single timer. Nothing is buffered while idle: the
//! websocket's read buffer starts empty and the queue is taken whole.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio::time::{sleep, Instant, Sleep};

use crate::engine::{CloseReason, EngineConn, POLLING, UPGRADING, WEBSOCKET};
use crate::server::{refuse, Inner};

/// Accepts a websocket: a new session, or the upgrade of a polling one.
pub(crate) fn accept(
    inner: Arc<Inner>,
    upgrade: WebSocketUpgrade,
    sid: Option<String>,
    headers: Box<[(HeaderName, HeaderValue)]>,
) -> Response {
    let existing = match sid {
        None => None,
        Some(sid) => match inner.find(&sid) {
            Some(conn) if conn.transport() == POLLING => Some(conn),
            Some(_) => return refuse(3, "Bad request"),
            None => return refuse(1, "Session ID unknown"),
        },
    };
    let upgrade = upgrade
        // tungstenite reserves only a frame header until data arrives.
        .read_buffer_size(0)
        .write_buffer_size(WRITE_COALESCE)
        .max_message_size(inner.cfg.max_payload)
        .max_frame_size(inner.cfg.max_payload);
    upgrade
        .on_upgrade(move |socket| {
            Box::pin(async move {
                match existing {
                    None => fresh(inner, socket, headers).await,
                    Some(conn) => upgraded(conn, socket).await,
                }
            })
        })
        .into_response()
}

async fn fresh(inner: Arc<Inner>, ws: WebSocket, headers: Box<[(HeaderName, HeaderValue)]>) {
    let conn = inner.open(WEBSOCKET, headers);
    let open = inner.open_packet(&conn.sid, false);
    // The first packet: nothing else can be queued before the session is known.
    let _ = conn.push(open.into(), true);
    drive(conn, ws).await;
}

/// The upgrade of a polling session: `2probe` → `3probe`, a noop to release
/// the pending long-poll, then `5` switches the session to this websocket.
async fn upgraded(conn: Arc<EngineConn>, mut ws: WebSocket) {
    conn.set_transport(UPGRADING);
    if probe(&conn, &mut ws).await {
        conn.set_transport(WEBSOCKET);
        // A long-poll still pending returns (noop) and is not renewed.
        conn.wake.notify_waiters();
        conn.wake.notify_one();
        drive(conn, ws).await;
    } else if !conn.is_closed() {
        // The upgrade failed; the session goes on polling.
        conn.set_transport(POLLING);
    }
}

/// The probe exchange, within the upgrade timeout. Its timer is gone before
/// the connection's task settles into its long life.
async fn probe(conn: &EngineConn, ws: &mut WebSocket) -> bool {
    let deadline = sleep(conn.server().cfg.upgrade_timeout);
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            m = ws.recv() => m,
            () = &mut deadline => None,
        };
        match msg {
            Some(Ok(Message::Text(t))) if t.as_str() == "2probe" => {
                if ws
                    .send(Message::Text(Utf8Bytes::from_static("3probe")))
                    .await
                    .is_err()
                {
                    return false;
                }
                let _ = conn.push(Utf8Bytes::from_static("6"), true);
            }
            Some(Ok(Message::Text(t))) if t.as_str() == "5" => return true,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return false,
        }
    }
}

/// Frames written in one go: tungstenite writes to the socket once its buffer
/// passes this (and on flush), so a wake-up's frames share a few syscalls
/// instead of one each. The buffer keeps its capacity, so this also bounds
/// what a connection retains after a burst.
pub const WRITE_COALESCE: usize = 4096;

/// Inbound messages read in one go before the task yields.
const BUDGET: usize = 64;

/// The connection's task once it is on the websocket.
async fn drive(conn: Arc<EngineConn>, ws: WebSocket) {
    let cfg = &conn.server().cfg;
    let driver = Driver {
        timer: Box::pin(sleep(cfg.ping_interval)),
        conn: conn.clone(),
        ws,
        out: VecDeque::new(),
        unflushed: false,
        closing: None,
        ping_sent: None,
        idle_pings: 0,
    };
    let reason = driver.await;
    conn.close(reason);
    conn.set_writer_done();
}

/// The websocket connection as one hand-written future: its size is its
/// fields (the websocket, a boxed timer, a few words), where an `async`
/// loop with `select!` kept every branch's state and cost ~2.4 KB.
///
/// Heartbeat: a ping every interval, a pong within the timeout. A client that
/// stops reading cannot hold the task either: its ping cannot be written, so
/// no pong comes back and the timeout ends the connection.
struct Driver {
    conn: Arc<EngineConn>,
    ws: WebSocket,
    timer: Pin<Box<Sleep>>,
    /// Packets taken from the session's queue, being written.
    out: VecDeque<Utf8Bytes>,
    unflushed: bool,
    /// The server closed the session: write what is left, then close.
    closing: Option<CloseReason>,
    /// When the last ping went out, while its pong is awaited.
    ping_sent: Option<Instant>,
    /// Heartbeats in a row without a namespace joined.
    idle_pings: u8,
}

impl Driver {
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        for _ in 0..BUDGET {
            let msg = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) | Poll::Ready(Some(Ok(Message::Close(_)))) => {
                    return Poll::Ready(CloseReason::TransportClose)
                }
                Poll::Ready(Some(Err(e))) => {
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("too big") {
                        let frame = CloseFrame {
                            code: 1009,
                            reason: Utf8Bytes::from_static("message too big"),
                        };
                        // Best effort: the connection ends either way.
                        if Pin::new(&mut self.ws).poll_ready(cx).is_ready() {
                            let _ = Pin::new(&mut self.ws).start_send(Message::Close(Some(frame)));
                            let _ = Pin::new(&mut self.ws).poll_flush(cx);
                        }
                    }
                    return Poll::Ready(CloseReason::TransportError);
                }
                Poll::Ready(Some(Ok(msg))) => msg,
            };
            let read = match msg {
                Message::Text(t) => self.conn.on_text(t.as_str()),
                Message::Binary(_) => self.conn.on_binary(),
                _ => Ok(()),
            };
            if let Err(reason) = read {
                return Poll::Ready(reason);
            }
        }
        // A busy client yields to the others; this task runs again at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn heartbeat(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        let cfg = &self.conn.server().cfg;
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.ping_sent.take() {
                None => {
                    self.idle_pings = if self.conn.has_sockets() {
                        0
                    } else {
                        self.idle_pings + 1
                    };
                    if self.idle_pings > 2 {
                        return Poll::Ready(CloseReason::NoNamespace);
                    }
                    self.conn.awaiting_pong.store(true, Ordering::Release);
                    self.out.push_back(Utf8Bytes::from_static("2"));
                    self.ping_sent = Some(now);
                    self.timer.as_mut().reset(now + cfg.ping_timeout);
                }
                Some(sent) => {
                    if self.conn.awaiting_pong.load(Ordering::Acquire) {
                        return Poll::Ready(CloseReason::PingTimeout);
                    }
                    self.timer.as_mut().reset(sent + cfg.ping_interval);
                }
            }
        }
        Poll::Pending
    }

    /// Writes what is queued, everything waiting in one flush.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<CloseReason> {
        self.conn.ws_waker.register(cx.waker());
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > 4 {
                // Producers keep filling the queue: flush, then come back.
                cx.waker().wake_by_ref();
                break;
            }
            if self.out.is_empty() && self.closing.is_none() {
                let (queue, closed) = self.conn.take();
                self.out = queue;
                self.closing = closed;
            }
            if self.out.is_empty() {
                break;
            }
            while !self.out.is_empty() {
                match Pin::new(&mut self.ws).poll_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(CloseReason::TransportError),
                    Poll::Ready(Ok(())) => {}
                }
                let Some(packet) = self.out.pop_front() else {
                    break;
                };
                if Pin::new(&mut self.ws)
                    .start_send(Message::Text(packet))
                    .is_err()
                {
                    return Poll::Ready(CloseReason::TransportError);
                }
                self.unflushed = true;
            }
            if self.closing.is_some() {
                break;
            }
        }
        // Free the batch's storage: an idle connection holds none.
        self.out = VecDeque::new();
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(CloseReason::TransportError),
                Poll::Ready(Ok(())) => self.unflushed = false,
            }
        }
        if let Some(reason) = self.closing {
            if Pin::new(&mut self.ws).poll_ready(cx).is_ready() {
                let _ = Pin::new(&mut self.ws).start_send(Message::Close(None));
                let _ = Pin::new(&mut self.ws).poll_flush(cx);
            }
            return Poll::Ready(reason);
        }
        Poll::Pending
    }
}

impl Future for Driver {
    type Output = CloseReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseReason> {
        let me = self.get_mut();
        if let Poll::Ready(reason) = me.read(cx) {
            return Poll::Ready(reason);
        }
        if let Poll::Ready(reason) = me.heartbeat(cx) {
            return Poll::Ready(reason);
        }
        me.write(cx)
    }
}
