//! The long-polling transport: GET returns what is queued (waiting until
//! something is), POST carries the client's packets. A session on polling
//! has one small heartbeat task; it ends when the session upgrades or closes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::engine::{CloseReason, EngineConn, POLLING, WEBSOCKET};
use crate::server::{refuse, text, Inner, SessionSlot};

/// Engine.IO's separator of packets in one polling payload.
const SEPARATOR: char = '\u{1e}';

/// `GET ?transport=polling` without a session: opens one.
pub(crate) fn handshake(
    inner: Arc<Inner>,
    headers: Box<[(HeaderName, HeaderValue)]>,
    slot: SessionSlot,
) -> Response {
    let conn = inner.open(POLLING, headers, slot);
    tokio::spawn(heartbeat(Arc::downgrade(&conn)));
    text(inner.open_packet(&conn.sid, true))
}

/// Resets the "a poll is pending" flag however the request ends.
struct Pending<'a>(&'a EngineConn);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.polling.store(false, Ordering::Release);
    }
}

/// `GET ?sid=`: the long-poll.
pub(crate) async fn poll(conn: Arc<EngineConn>) -> Response {
    if conn.transport() == WEBSOCKET {
        return refuse(3, "Bad request");
    }
    if conn.polling.swap(true, Ordering::AcqRel) {
        // Two polls at once: the client is broken; end the session.
        conn.close(CloseReason::TransportError);
        return refuse(3, "Bad request");
    }
    let _pending = Pending(&conn);
    loop {
        let (queue, closed) = conn.take();
        if !queue.is_empty() || closed.is_some() {
            let mut body = String::new();
            for p in &queue {
                if !body.is_empty() {
                    body.push(SEPARATOR);
                }
                body.push_str(p.as_str());
            }
            if closed.is_some() {
                // The close packet only alone: socket.io-client handles a
                // payload's close before its (deferred) Socket.IO packets, so
                // `41` + `1` together would read as a transport close.
                if body.is_empty() {
                    body.push('1');
                }
                conn.set_writer_done();
                conn.server().forget(&conn.sid);
            }
            return text(body);
        }
        if conn.transport() == WEBSOCKET {
            return text("6");
        }
        conn.wake.notified().await;
    }
}

/// `POST ?sid=`: packets from the client.
pub(crate) async fn post(conn: Arc<EngineConn>, body: Body) -> Response {
    if conn.transport() == WEBSOCKET {
        return refuse(3, "Bad request");
    }
    let max = conn.server().cfg.max_payload;
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        conn.close(CloseReason::TransportError);
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    };
    let Ok(payload) = std::str::from_utf8(&bytes) else {
        conn.close(CloseReason::TransportError);
        return refuse(3, "Bad request");
    };
    for packet in payload.split(SEPARATOR) {
        let read = if packet.starts_with('b') {
            conn.on_binary()
        } else {
            conn.on_text(packet)
        };
        if let Err(reason) = read {
            conn.close(reason);
            break;
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

/// Pings a polling session every interval and ends it when a pong does not
/// come back within the timeout.
async fn heartbeat(conn: Weak<EngineConn>) {
    let Some((interval, timeout)) = conn
        .upgrade()
        .map(|c| (c.server().cfg.ping_interval, c.server().cfg.ping_timeout))
    else {
        return;
    };
    let mut idle_pings = 0u8;
    let mut next = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next).await;
        let sent = Instant::now();
        {
            let Some(c) = conn.upgrade() else { return };
            if c.is_closed() || c.transport() == WEBSOCKET {
                return;
            }
            idle_pings = if c.has_sockets() { 0 } else { idle_pings + 1 };
            if idle_pings > 2 {
                c.close(CloseReason::NoNamespace);
                return;
            }
            c.awaiting_pong.store(true, Ordering::Release);
            if c.push(axum::extract::ws::Utf8Bytes::from_static("2"), true)
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(timeout).await;
        let Some(c) = conn.upgrade() else { return };
        if c.is_closed() || c.transport() == WEBSOCKET {
            return;
        }
        if c.awaiting_pong.load(Ordering::Acquire) {
            c.close(CloseReason::PingTimeout);
            return;
        }
        // Clients expect a ping every interval (they give up after interval + timeout).
        next = (sent + interval).max(Instant::now());
    }
}
