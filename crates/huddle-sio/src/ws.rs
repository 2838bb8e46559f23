//! The websocket transport: one task per connection that reads packets,
//! writes the session's queue (everything waiting in one flush), and keeps
//! the heartbeat with a single timer. Nothing is buffered while idle: the
//! websocket's read buffer starts empty and the queue is taken whole.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use tokio::time::{sleep, Instant};

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
        .write_buffer_size(0)
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

async fn fresh(inner: Arc<Inner>, mut ws: WebSocket, headers: Box<[(HeaderName, HeaderValue)]>) {
    let conn = inner.open(WEBSOCKET, headers);
    let open = inner.open_packet(&conn.sid, false);
    if ws.send(Message::Text(open.into())).await.is_err() {
        conn.close(CloseReason::TransportClose);
        return;
    }
    drive(conn, ws).await;
}

/// The upgrade of a polling session: `2probe` → `3probe`, a noop to release
/// the pending long-poll, then `5` switches the session to this websocket.
async fn upgraded(conn: Arc<EngineConn>, mut ws: WebSocket) {
    conn.set_transport(UPGRADING);
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
                    break;
                }
                let _ = conn.push(Utf8Bytes::from_static("6"), true);
            }
            Some(Ok(Message::Text(t))) if t.as_str() == "5" => {
                conn.set_transport(WEBSOCKET);
                // A long-poll still pending returns (noop) and is not renewed.
                conn.wake.notify_waiters();
                conn.wake.notify_one();
                return drive(conn, ws).await;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => break,
        }
    }
    // The upgrade failed; the session goes on polling.
    if !conn.is_closed() {
        conn.set_transport(POLLING);
    }
}

enum Step {
    Wake,
    In(Option<Result<Message, axum::Error>>),
    Tick,
}

/// The connection's task once it is on the websocket.
async fn drive(conn: Arc<EngineConn>, mut ws: WebSocket) {
    let (interval, timeout) = (
        conn.server().cfg.ping_interval,
        conn.server().cfg.ping_timeout,
    );
    let timer = sleep(interval);
    tokio::pin!(timer);
    // When the last ping went out, while its pong is awaited.
    let mut ping_sent: Option<Instant> = None;
    let mut idle_pings = 0u8;
    let reason = loop {
        let step = tokio::select! {
            biased;
            () = conn.wake.notified() => Step::Wake,
            m = ws.recv() => Step::In(m),
            () = &mut timer => Step::Tick,
        };
        match step {
            Step::Wake => {
                let (queue, closed) = conn.take();
                // A client that stops reading cannot hold the task: the write
                // must finish within the ping timeout.
                let write = async {
                    for packet in queue {
                        ws.feed(Message::Text(packet)).await?;
                    }
                    ws.flush().await
                };
                if !matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(()))) {
                    break CloseReason::TransportError;
                }
                if let Some(reason) = closed {
                    let _closing = ws.send(Message::Close(None)).await;
                    break reason;
                }
            }
            Step::In(Some(Ok(Message::Text(t)))) => {
                if let Err(reason) = conn.on_text(t.as_str()) {
                    break reason;
                }
            }
            Step::In(Some(Ok(Message::Binary(_)))) => {
                if let Err(reason) = conn.on_binary() {
                    break reason;
                }
            }
            Step::In(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Step::In(Some(Ok(Message::Close(_))) | None) => break CloseReason::TransportClose,
            Step::In(Some(Err(e))) => {
                if e.to_string().contains("too long") || e.to_string().contains("too big") {
                    let frame = CloseFrame {
                        code: 1009,
                        reason: Utf8Bytes::from_static("message too big"),
                    };
                    let _closing = ws.send(Message::Close(Some(frame))).await;
                }
                break CloseReason::TransportError;
            }
            Step::Tick => match ping_sent.take() {
                None => {
                    // A session that joined no namespace for two intervals is dropped.
                    idle_pings = if conn.has_sockets() {
                        0
                    } else {
                        idle_pings + 1
                    };
                    if idle_pings > 2 {
                        break CloseReason::NoNamespace;
                    }
                    conn.awaiting_pong.store(true, Ordering::Release);
                    if ws
                        .send(Message::Text(Utf8Bytes::from_static("2")))
                        .await
                        .is_err()
                    {
                        break CloseReason::TransportError;
                    }
                    let now = Instant::now();
                    ping_sent = Some(now);
                    timer.as_mut().reset(now + timeout);
                }
                Some(sent) => {
                    if conn.awaiting_pong.load(Ordering::Acquire) {
                        break CloseReason::PingTimeout;
                    }
                    timer.as_mut().reset(sent + interval);
                }
            },
        }
    };
    conn.close(reason);
    conn.set_writer_done();
}
