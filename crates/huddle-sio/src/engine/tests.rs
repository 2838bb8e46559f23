//! The session's bounds: handlers in flight, binary packets in and out.

use super::*;
use crate::server::{Config, SioServer};
use crate::Handler;
use huddle_core::Refusals;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// Counts events started, events dropped (cancelled) and malformed answers;
/// its `hang` events never complete.
#[derive(Default)]
struct Hanging {
    started: AtomicUsize,
    dropped: AtomicUsize,
    malformed: AtomicUsize,
    disconnected: AtomicUsize,
}

struct OnDrop(Arc<Hanging>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

struct H(Arc<Hanging>);
impl Handler for H {
    fn connect(&self, _: Arc<Socket>, _: Option<Value>) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn event(&self, _: Arc<Socket>, _: Event) -> BoxFuture<'static, ()> {
        let state = self.0.clone();
        Box::pin(async move {
            let _guard = OnDrop(state.clone());
            state.started.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        })
    }
    fn malformed(&self, _: Arc<Socket>, _: Option<u64>, _: &'static str) -> BoxFuture<'static, ()> {
        self.0.malformed.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
    fn disconnect(&self, _: Arc<Socket>, _: Reason) -> BoxFuture<'static, ()> {
        let state = self.0.clone();
        Box::pin(async move {
            // Yields once: a disconnect handler is never cancelled.
            tokio::task::yield_now().await;
            state.disconnected.fetch_add(1, Ordering::SeqCst);
        })
    }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Keeps every event it is given.
#[derive(Default)]
struct Keep(Mutex<Vec<Event>>);
impl Handler for Arc<Keep> {
    fn connect(&self, _: Arc<Socket>, _: Option<Value>) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    fn event(&self, _: Arc<Socket>, event: Event) -> BoxFuture<'static, ()> {
        lock(&self.0).push(event);
        Box::pin(async {})
    }
    fn malformed(&self, _: Arc<Socket>, _: Option<u64>, _: &'static str) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn disconnect(&self, _: Arc<Socket>, _: Reason) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

async fn joined_session(max_payload: usize) -> (Arc<Keep>, Arc<EngineConn>, Arc<Refusals>) {
    let keep = Arc::new(Keep::default());
    let handler: Arc<dyn Handler> = Arc::new(keep.clone());
    let cfg = Config {
        max_payload,
        ..Config::default()
    };
    let refusals = cfg.refusals.clone();
    let server = SioServer::new(cfg, move |_| Some(handler.clone()));
    let conn = connected(&server).await;
    // Leave only what the tests push.
    let _ = conn.take();
    (keep, conn, refusals)
}

const PH0: &str = r#"{"_placeholder":true,"num":0}"#;
const PH1: &str = r#"{"_placeholder":true,"num":1}"#;

#[tokio::test]
async fn a_binary_event_reaches_its_handler_with_its_attachments() {
    let (keep, conn, _) = joined_session(1000).await;
    conn.on_text(&format!(r#"452-7["up",{PH1},[{PH0}]]"#))
        .expect("header");
    assert!(lock(&conn.incoming).is_some(), "awaiting the attachments");
    conn.on_binary(Bytes::from_static(b"\x00\x01"))
        .expect("first");
    assert!(lock(&keep.0).is_empty(), "not before the last attachment");
    conn.on_binary(Bytes::new()).expect("second (empty)");
    assert!(lock(&conn.incoming).is_none(), "nothing held once complete");
    until("the event", || !lock(&keep.0).is_empty()).await;
    let ev = lock(&keep.0).pop().expect("event");
    assert_eq!((ev.name.as_str(), ev.ack), ("up", Some(7)));
    assert_eq!(
        ev.attachments,
        vec![Bytes::from_static(b"\x00\x01"), Bytes::new()]
    );
    assert_eq!(ev.args[0].to_string(), PH1, "placeholders stay as sent");
    // No attachment announced: dispatched at once.
    conn.on_text(r#"450-["zero"]"#).expect("zero attachments");
    until("the second event", || !lock(&keep.0).is_empty()).await;
    // A client's binary ack is read and dropped.
    conn.on_text(&format!("461-3[{PH0}]")).expect("binary ack");
    conn.on_binary(Bytes::from_static(b"x"))
        .expect("its attachment");
    assert!(lock(&conn.incoming).is_none());
}

#[tokio::test]
async fn binary_packets_that_break_the_protocol_close_the_session() {
    let header = |n: u32, phs: &str| format!(r#"45{n}-["up"{phs}]"#);
    let cases: Vec<(&str, Vec<Result<String, Bytes>>)> = vec![
        (
            "an attachment no packet announced",
            vec![Err(Bytes::from_static(b"x"))],
        ),
        ("too many attachments", vec![Ok(header(11, ""))]),
        (
            "fewer placeholders",
            vec![Ok(header(2, &format!(",{PH0}")))],
        ),
        (
            "more placeholders",
            vec![Ok(header(1, &format!(",{PH0},{PH1}")))],
        ),
        ("not JSON", vec![Ok("451-[\"up\"".to_owned())]),
        (
            "a packet before the attachments",
            vec![
                Ok(header(1, &format!(",{PH0}"))),
                Ok("42[\"x\"]".to_owned()),
            ],
        ),
    ];
    for (what, steps) in cases {
        let (keep, conn, refusals) = joined_session(1000).await;
        let mut result = Ok(());
        for step in steps {
            result = match step {
                Ok(text) => conn.on_text(&text),
                Err(data) => conn.on_binary(data),
            };
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(CloseReason::ProtocolError), "{what}");
        assert_eq!(refusals.get(Refusal::ProtocolError), 1, "{what} is counted");
        assert!(lock(&keep.0).is_empty(), "{what}: no event");
    }
}

#[tokio::test]
async fn a_binary_packet_past_max_payload_with_its_attachments_is_too_big() {
    let (keep, conn, _) = joined_session(1000).await;
    conn.on_text(&format!(r#"452-["up",{PH0},{PH1}]"#))
        .expect("header");
    conn.on_binary(Bytes::from(vec![1u8; 600])).expect("first");
    let second = conn.on_binary(Bytes::from(vec![2u8; 600]));
    assert_eq!(second, Err(CloseReason::TooBig));
    assert!(lock(&conn.incoming).is_none(), "the attachments are freed");
    assert!(lock(&keep.0).is_empty());
}

#[tokio::test]
async fn a_frame_with_attachments_goes_out_as_a_binary_event_then_its_attachments() {
    use huddle_core::{Connection, Frame};
    let (_keep, conn, _) = joined_session(1000).await;
    let socket = conn.find_ns("/").expect("socket");
    let attachments: Arc<[Bytes]> = vec![Bytes::from_static(b"\x01\x02")].into();
    let frame = Frame::encode(
        "blob",
        &serde_json::json!({ "b": serde_json::from_str::<Value>(PH0).ok() }),
    )
    .expect("frame")
    .with_attachments(attachments.clone());
    socket.send(&frame).expect("queued");
    socket
        .send(&Frame::encode("plain", &1).expect("frame"))
        .expect("queued");
    let (queue, _) = conn.take();
    let got: Vec<(bool, Vec<u8>)> = queue
        .iter()
        .map(|p| {
            (
                huddle_ws::Payload::binary(p),
                huddle_ws::Payload::bytes(p).to_vec(),
            )
        })
        .collect();
    let header = format!(r#"451-["blob",{{"b":{PH0}}}]"#);
    assert_eq!(
        got,
        vec![
            (false, header.into_bytes()),
            (true, vec![1, 2]),
            (false, br#"42["plain",1]"#.to_vec()),
        ]
    );
    // The attachment's bytes are shared, not copied.
    let Some(Out::Binary(b)) = queue.get(1) else {
        panic!("an attachment");
    };
    assert_eq!(b.as_ptr(), attachments[0].as_ptr());
    assert_eq!(
        crate::polling::join_for_tests(&queue),
        format!(
            "{}\u{1e}bAQI=\u{1e}42[\"plain\",1]",
            &format!(r#"451-["blob",{{"b":{PH0}}}]"#)
        ),
    );
}

#[tokio::test]
async fn handlers_in_flight_are_bounded_and_cancelled_with_the_session() {
    let state = Arc::new(Hanging::default());
    let handler: Arc<dyn Handler> = Arc::new(H(state.clone()));
    let cfg = Config {
        events_burst: 1000,
        ..Config::default()
    };
    let refusals = cfg.refusals.clone();
    let server = SioServer::new(cfg, move |_| Some(handler.clone()));
    let conn = connected(&server).await;
    let extra = 5;
    for _ in 0..MAX_HANDLERS_IN_FLIGHT as usize + extra {
        conn.on_text("42[\"hang\"]").expect("event");
    }
    let bound = MAX_HANDLERS_IN_FLIGHT as usize;
    until("the handlers to start", || {
        state.started.load(Ordering::SeqCst) == bound
            && state.malformed.load(Ordering::SeqCst) == extra
    })
    .await;
    assert_eq!(refusals.get(Refusal::HandlersInFlight), extra as u64);
    assert_eq!(state.dropped.load(Ordering::SeqCst), 0);
    conn.close(CloseReason::TransportClose);
    until("the handlers to be cancelled", || {
        state.dropped.load(Ordering::SeqCst) == bound
            && state.disconnected.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(conn.in_flight.load(Ordering::SeqCst), 0);
}

/// A polling session of `server` (no peer address) that has joined `/`.
async fn connected(server: &SioServer) -> Arc<EngineConn> {
    let inner = server.inner_for_tests();
    let slot = inner.admit(None).expect("a place under the caps");
    let conn = inner.open(POLLING, Box::new([]), slot);
    conn.on_text("40").expect("connect");
    until("the connection", || conn.joined()).await;
    conn
}
