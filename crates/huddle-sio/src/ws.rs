//! The websocket transport of Engine.IO: one task per connection, a single
//! hand-written future from the HTTP upgrade to the end, which reads packets,
//! writes the session's queue (everything waiting, in vectored writes straight
//! from the shared packets) and keeps the heartbeat with a single timer. The
//! websocket itself is ours ([`huddle_ws`]): an idle connection holds
//! no buffer at all.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ws::Utf8Bytes;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use huddle_ws::OnUpgrade;
use tokio::time::{sleep, Instant, Sleep};

use crate::engine::{CloseReason, EngineConn, Out, POLLING, PROBED, UPGRADING, WEBSOCKET};
use crate::server::{refuse, Inner, SessionSlot};
use huddle_core::Refusal;
use huddle_ws::{End, Flow, Msg, Stream, WebSocket};

/// Accepts a websocket: a new session, or the upgrade of a polling one.
pub(crate) fn accept(
    inner: Arc<Inner>,
    mut req: Request,
    sid: Option<String>,
    headers: Box<[(HeaderName, HeaderValue)]>,
    slot: Option<SessionSlot>,
) -> Response {
    let existing = match sid {
        None => None,
        Some(sid) => match inner.find(&sid) {
            Some(conn) if conn.transport() == POLLING => Some(conn),
            Some(_) => return refuse(3, "Bad request"),
            None => return refuse(1, "Session ID unknown"),
        },
    };
    let (response, upgrade) = match huddle_ws::handshake(&mut req) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    tokio::spawn(Task::Upgrading {
        upgrade,
        inner,
        existing,
        headers,
        slot,
    });
    response
}

/// The connection's whole life as one task: waiting for the upgrade, then
/// the driver. Its size is the driver's (a few hundred bytes).
enum Task {
    Upgrading {
        upgrade: OnUpgrade,
        inner: Arc<Inner>,
        /// The polling session being upgraded, if any.
        existing: Option<Arc<EngineConn>>,
        headers: Box<[(HeaderName, HeaderValue)]>,
        /// A new session's place under the caps (taken at the handshake).
        slot: Option<SessionSlot>,
    },
    Running(Driver),
    Done,
}

impl Future for Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        loop {
            match me {
                Task::Running(driver) => {
                    if Pin::new(driver).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *me = Task::Done;
                    return Poll::Ready(());
                }
                Task::Done => return Poll::Ready(()),
                Task::Upgrading { upgrade, .. } => {
                    let upgraded = match Pin::new(upgrade).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => r,
                    };
                    let Task::Upgrading {
                        inner,
                        existing,
                        headers,
                        slot,
                        ..
                    } = std::mem::replace(me, Task::Done)
                    else {
                        return Poll::Ready(());
                    };
                    let upgraded = match upgraded {
                        Ok(u) => u,
                        Err(e) => {
                            tracing::debug!(error = %e, "websocket upgrade failed");
                            return Poll::Ready(());
                        }
                    };
                    let (io, read) = Stream::from_upgraded(upgraded);
                    let ws = WebSocket::new(io, read, inner.cfg.max_payload);
                    *me = Task::Running(match (existing, slot) {
                        (Some(conn), _) => Driver::probing(conn, ws),
                        (None, Some(slot)) => Driver::fresh(&inner, headers, ws, slot),
                        (None, None) => return Poll::Ready(()),
                    });
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Upgrading a polling session: `2probe` → `3probe`, then `5`.
    Probing,
    /// The session's transport.
    Running,
}

/// How the driver ended.
enum Outcome {
    /// The session ends, for this reason.
    Closed(CloseReason),
    /// The upgrade did not complete; the session goes on polling.
    ProbeFailed,
}

/// The websocket connection: its size is its fields (the websocket, a boxed
/// timer, a few words), where an `async` loop with `select!` kept every
/// branch's state and cost ~2.4 KB.
///
/// Heartbeat: a ping every interval, a pong within the timeout. A client that
/// stops reading cannot hold the task either: its ping cannot be written, so
/// no pong counts (one sent blindly is ignored) and the timeout ends the
/// connection. Nor can it grow memory: replies go through the session's
/// bounded queue, and while more than [`MAX_BACKLOG`] bytes of the
/// websocket's own frames (answers to its PINGs) wait, it is not read.
struct Driver {
    conn: Arc<EngineConn>,
    ws: WebSocket,
    /// The upgrade deadline while probing, then the heartbeat.
    timer: Pin<Box<Sleep>>,
    phase: Phase,
    /// Packets taken from the session's queue, being written.
    out: VecDeque<Out>,
    /// The server closed the session: write what is left, then close.
    closing: Option<CloseReason>,
    /// When the heartbeat acts next: a ping, or (while `pinging`) the
    /// check of its pong.
    beat_at: Instant,
    /// A ping went out at `beat_at - ping_timeout`; its pong is awaited.
    pinging: bool,
    /// No namespace joined yet: the connect timeout (from the session's
    /// opening) applies.
    awaiting_join: bool,
}

/// Bytes of the websocket's own frames (pongs to its PINGs) that may wait
/// unwritten before the connection stops reading.
const MAX_BACKLOG: usize = 64 * 1024;

impl Driver {
    fn fresh(
        inner: &Arc<Inner>,
        headers: Box<[(HeaderName, HeaderValue)]>,
        ws: WebSocket,
        slot: SessionSlot,
    ) -> Driver {
        let conn = inner.open(WEBSOCKET, headers, slot);
        let open = inner.open_packet(&conn.sid, false);
        // The first packet: nothing else can be queued before the session is known.
        let _ = conn.push(open.into(), true);
        Driver::new(conn, ws, Phase::Running, inner.cfg.ping_interval)
    }

    fn probing(conn: Arc<EngineConn>, ws: WebSocket) -> Driver {
        conn.set_transport(UPGRADING);
        let deadline = conn.server().cfg.upgrade_timeout;
        let mut d = Driver::new(conn, ws, Phase::Probing, deadline);
        d.timer.as_mut().reset(Instant::now() + deadline);
        d
    }

    fn new(
        conn: Arc<EngineConn>,
        ws: WebSocket,
        phase: Phase,
        timer: std::time::Duration,
    ) -> Driver {
        let mut d = Driver {
            timer: Box::pin(sleep(timer)),
            beat_at: Instant::now() + timer,
            awaiting_join: !conn.joined(),
            conn,
            ws,
            phase,
            out: VecDeque::new(),
            closing: None,
            pinging: false,
        };
        d.rearm();
        d
    }

    /// Sets the timer to the next deadline: the heartbeat's or the connect timeout's.
    fn rearm(&mut self) {
        let next = match self.connect_by() {
            Some(by) => by.min(self.beat_at),
            None => self.beat_at,
        };
        self.timer.as_mut().reset(next);
    }

    fn connect_by(&self) -> Option<Instant> {
        self.awaiting_join
            .then(|| self.conn.opened + self.conn.server().cfg.connect_timeout)
    }

    fn read(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut answer_probe = false;
        let was_probing = self.phase == Phase::Probing;
        let Driver {
            ws,
            conn,
            phase,
            beat_at,
            ..
        } = self;
        let polled = ws.poll_read(cx, |msg| match (*phase, msg) {
            (Phase::Running, Msg::Text(t)) => conn
                .on_text(t)
                .map(|()| Flow::Continue)
                .map_err(Outcome::Closed),
            (Phase::Running, Msg::Binary(data)) => conn
                .on_binary(bytes::Bytes::copy_from_slice(data))
                .map(|()| Flow::Continue)
                .map_err(Outcome::Closed),
            (Phase::Probing, Msg::Text("2probe")) => {
                answer_probe = true;
                Ok(Flow::Continue)
            }
            (Phase::Probing, Msg::Text("5")) => {
                conn.set_transport(WEBSOCKET);
                // A long-poll still pending returns (noop) and is not renewed.
                conn.wake.notify_waiters();
                conn.wake.notify_one();
                *phase = Phase::Running;
                let cfg = &conn.server().cfg;
                *beat_at = Instant::now() + cfg.ping_interval;
                Ok(Flow::Continue)
            }
            (Phase::Probing, _) => Err(Outcome::ProbeFailed),
        });
        if answer_probe {
            // `3probe` on the websocket; the pending long-poll returns a
            // noop (none is queued: it would reach the websocket later).
            self.ws.queue_text("3probe");
            if self.conn.transport() == UPGRADING {
                self.conn.set_transport(PROBED);
            }
            self.conn.wake.notify_waiters();
            self.conn.wake.notify_one();
        }
        if was_probing && self.phase == Phase::Running {
            self.rearm();
        }
        let Poll::Ready(end) = polled else {
            return Poll::Pending;
        };
        Poll::Ready(match end {
            End::Handler(outcome) => outcome,
            // Never asked for here: every message is handled as it comes.
            End::Paused => {
                if self.ws.backlog() <= MAX_BACKLOG {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            _ if self.phase == Phase::Probing => Outcome::ProbeFailed,
            End::Closed => Outcome::Closed(CloseReason::TransportClose),
            End::Failed => Outcome::Closed(CloseReason::TransportError),
        })
    }

    fn heartbeat(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.phase == Phase::Probing {
                return Poll::Ready(Outcome::ProbeFailed);
            }
            let now = Instant::now();
            if let Some(by) = self.connect_by() {
                if self.conn.joined() {
                    self.awaiting_join = false;
                } else if now >= by {
                    let refusals = &self.conn.server().cfg.refusals;
                    refusals.count(Refusal::ConnectTimeout);
                    return Poll::Ready(Outcome::Closed(CloseReason::ConnectTimeout));
                }
            }
            if now >= self.beat_at {
                let cfg = &self.conn.server().cfg;
                let (interval, timeout) = (cfg.ping_interval, cfg.ping_timeout);
                if self.pinging {
                    if self.conn.pong_missing() {
                        return Poll::Ready(Outcome::Closed(CloseReason::PingTimeout));
                    }
                    // The next ping an interval after the last one.
                    self.beat_at = self.beat_at - timeout + interval;
                } else {
                    self.conn.ping_queued();
                    self.out.push_back(Out::Text(Utf8Bytes::from_static("2")));
                    self.beat_at = now + timeout;
                }
                self.pinging = !self.pinging;
            }
            self.rearm();
        }
        Poll::Pending
    }

    /// Writes what is queued: everything waiting, a few rounds at most
    /// before yielding to other tasks.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if self.phase == Phase::Probing {
            // Only our own frames (`3probe`) go out while probing.
            return match self.ws.poll_ctrl(cx) {
                Poll::Ready(Err(_)) => Poll::Ready(Outcome::ProbeFailed),
                _ => Poll::Pending,
            };
        }
        self.conn.ws_waker.register(cx.waker());
        for _ in 0..4 {
            if self.out.is_empty() && self.closing.is_none() {
                let (queue, closed) = self.conn.take();
                self.out = queue;
                self.closing = closed;
            }
            if let Some(reason) = self.closing.filter(|r| !r.delivers_queue()) {
                // Nothing left worth waiting for a client to read.
                return Poll::Ready(Outcome::Closed(reason));
            }
            let had = !self.out.is_empty();
            match self.ws.poll_write(cx, &mut self.out) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    return Poll::Ready(Outcome::Closed(CloseReason::TransportError))
                }
                Poll::Ready(Ok(())) => {}
            }
            // Everything taken is written, a ping among it.
            self.conn.ping_delivered();
            // Free the batch's storage: an idle connection holds none.
            self.out = VecDeque::new();
            if let Some(reason) = self.closing {
                return Poll::Ready(Outcome::Closed(reason));
            }
            if !had {
                return Poll::Pending;
            }
        }
        // Producers keep filling the queue: let the others run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let me = self.get_mut();
        // A client that does not read its PINGs' answers is not read either.
        let read = if me.ws.backlog() > MAX_BACKLOG {
            Poll::Pending
        } else {
            me.read(cx)
        };
        let blocked = me.ws.backlog() > MAX_BACKLOG;
        let outcome = match read {
            Poll::Ready(o) => o,
            Poll::Pending => match me.heartbeat(cx) {
                Poll::Ready(o) => o,
                Poll::Pending => match me.write(cx) {
                    Poll::Ready(o) => o,
                    Poll::Pending => {
                        if blocked && me.ws.backlog() <= MAX_BACKLOG {
                            // The backlog drained: read again.
                            cx.waker().wake_by_ref();
                        }
                        return Poll::Pending;
                    }
                },
            },
        };
        match outcome {
            Outcome::Closed(reason) => {
                me.conn.close(reason);
                me.conn.set_writer_done();
                // Every close has its frame (the echo of the client's, if
                // queued, goes out now that the session is updated).
                let (code, text) = reason.close_frame();
                me.ws.send_close(cx, Some(code), text);
            }
            Outcome::ProbeFailed => {
                if !me.conn.is_closed() {
                    me.conn.set_transport(POLLING);
                }
                me.ws.flush_close(cx);
            }
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    /// The task is what every websocket connection costs while idle (its
    /// cell holds it): it must stay a few hundred bytes (BENCHMARKS.md's
    /// memory notes). Binary support added no state to it: a binary
    /// packet's pending attachments live in the session, only while
    /// incomplete.
    #[test]
    fn the_connection_task_stays_small() {
        let size = std::mem::size_of::<super::Task>();
        assert!(size <= 256, "Task is {size} bytes (224 when written)");
    }
}
