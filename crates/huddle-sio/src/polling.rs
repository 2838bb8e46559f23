//! The long-polling transport: GET returns what is queued (waiting until
//! something is), POST carries the client's packets. A session on polling
//! has one small heartbeat task; it ends when the session upgrades or closes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use base64::Engine as _;

use crate::engine::{CloseReason, EngineConn, Out, POLLING, PROBED, WEBSOCKET};
use crate::server::{refuse, text, Inner, SessionSlot};
use huddle_core::Refusal;

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
        if let Some(reason) = closed {
            conn.set_writer_done();
            conn.server().forget(&conn.sid);
            if queue.is_empty() {
                // The client's own close releases its poll with a noop, as
                // engine.io does; any other close is announced.
                return text(if reason == CloseReason::TransportClose {
                    "6"
                } else {
                    "1"
                });
            }
            // The close packet is not joined to the last packets:
            // socket.io-client handles a payload's close before its
            // (deferred) Socket.IO packets, so `41` + `1` together would read
            // as a transport close.
            return text(join(&queue));
        }
        if !queue.is_empty() {
            conn.ping_delivered();
            return text(join(&queue));
        }
        if matches!(conn.transport(), PROBED | WEBSOCKET) {
            // The websocket probe was answered: release the client's poll.
            return text("6");
        }
        conn.wake.notified().await;
    }
}

#[cfg(test)]
pub(crate) fn join_for_tests(queue: &std::collections::VecDeque<Out>) -> String {
    join(queue)
}

/// The packets of one polling answer; an attachment is `b<base64>`.
fn join(queue: &std::collections::VecDeque<Out>) -> String {
    let size = |p: &Out| match p {
        Out::Text(t) => t.len() + 1,
        Out::Binary(b) => b.len().div_ceil(3) * 4 + 2,
    };
    let mut body = String::with_capacity(queue.iter().map(size).sum());
    for p in queue {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        match p {
            Out::Text(t) => body.push_str(t.as_str()),
            Out::Binary(b) => {
                body.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut body);
            }
        }
    }
    body
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
        let read = if let Some(b64) = packet.strip_prefix('b') {
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(data) => conn.on_binary(data.into()),
                Err(_) => Err(conn.protocol_error()),
            }
        } else {
            conn.on_text(packet)
        };
        match read {
            Ok(()) => {}
            // Not Engine.IO packets: 400, as the reference answers.
            Err(CloseReason::ProtocolError) => {
                conn.close(CloseReason::ProtocolError);
                return refuse(3, "Bad request");
            }
            Err(reason) => {
                conn.close(reason);
                break;
            }
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

/// Pings a polling session every interval and ends it when a pong does not
/// come back within the timeout, or when it has joined no namespace within
/// the connect timeout.
async fn heartbeat(conn: Weak<EngineConn>) {
    let Some((cfg, opened)) = conn.upgrade().map(|c| (c.server().cfg.clone(), c.opened)) else {
        return;
    };
    let mut connect_by = Some(opened + cfg.connect_timeout);
    let mut next = Instant::now() + cfg.ping_interval;
    // When the pong of the ping sent is due.
    let mut pong_by: Option<Instant> = None;
    loop {
        let beat = pong_by.unwrap_or(next);
        tokio::time::sleep_until(connect_by.map_or(beat, |by| by.min(beat))).await;
        let Some(c) = conn.upgrade() else { return };
        if c.is_closed() || c.transport() == WEBSOCKET {
            return;
        }
        let now = Instant::now();
        if let Some(by) = connect_by {
            if c.joined() {
                connect_by = None;
            } else if now >= by {
                cfg.refusals.count(Refusal::ConnectTimeout);
                c.close(CloseReason::ConnectTimeout);
                return;
            }
        }
        match pong_by {
            Some(due) if now >= due => {
                if c.pong_missing() {
                    c.close(CloseReason::PingTimeout);
                    return;
                }
                pong_by = None;
                // Clients expect a ping every interval (they give up after interval + timeout).
                next = next.max(now);
            }
            None if now >= next => {
                c.ping_queued();
                if c.push(axum::extract::ws::Utf8Bytes::from_static("2"), true)
                    .is_err()
                {
                    return;
                }
                pong_by = Some(now + cfg.ping_timeout);
                next = now + cfg.ping_interval;
            }
            _ => {}
        }
    }
}
