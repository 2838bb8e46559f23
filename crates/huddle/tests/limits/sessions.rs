//! Engine.IO session caps (issue 14: one client opened 1.34 M polling
//! sessions in 30 s): per client address and in total, over polling and
//! websocket; a session's place is freed when it ends, however it ends.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::harness::{connect, get, request, start, ATTACKER, BYSTANDER};

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";
const PER_ADDRESS: &str = "huddle_refused_total{reason=\"sessions_per_address\"}";
const TOTAL: &str = "huddle_refused_total{reason=\"sessions_total\"}";

/// A polling handshake from `from`: the status and, when opened, the sid.
async fn open(from: [u8; 4], to: std::net::SocketAddr) -> (u16, Option<String>, String) {
    let (status, body) = get(from, to, HANDSHAKE).await.expect("handshake answered");
    let sid = body
        .strip_prefix('0')
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|v| v["sid"].as_str().map(str::to_owned));
    (status, sid, body)
}

/// Waits (up to 10 s) until a handshake from `from` opens a session.
async fn opens_again(from: [u8; 4], to: std::net::SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let (200, Some(sid), _) = open(from, to).await {
            return sid;
        }
        assert!(
            Instant::now() < deadline,
            "the session's place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_the_per_address_cap_are_refused_and_closed_ones_free_their_place() {
    let server = start(|c| c.limits.sessions_per_address = 3).await;
    let mut sids = Vec::new();
    for _ in 0..3 {
        let (status, sid, body) = open(ATTACKER, server.http).await;
        assert_eq!(status, 200, "{body}");
        sids.push(sid.expect("sid"));
    }
    // The fourth, over polling and over websocket: 429, an Engine.IO error.
    let (status, sid, body) = open(ATTACKER, server.http).await;
    assert_eq!(status, 429, "{body}");
    assert!(sid.is_none());
    let error: Value = serde_json::from_str(&body).expect("an Engine.IO error body");
    assert!(
        error["code"].is_u64() && error["message"].is_string(),
        "{error}"
    );
    let tcp = connect(ATTACKER, server.http).await.expect("connect");
    let refused = tokio_tungstenite::client_async(
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.http),
        tcp,
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a websocket session past the cap: {:?}", other.map(|_| ())),
    }
    assert_eq!(server.metric(PER_ADDRESS).await, 2);
    // Another address still opens sessions.
    let (status, _, body) = open(BYSTANDER, server.http).await;
    assert_eq!(status, 200, "{body}");
    // A session the client closes (`1`) frees its place.
    let close = format!(
        "POST {HANDSHAKE}&sid={} HTTP/1.1\r\nHost: huddle\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n1",
        sids[0]
    );
    let (status, _) = request(ATTACKER, server.http, &close).await.expect("close");
    assert_eq!(status, 200);
    opens_again(ATTACKER, server.http).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_count_and_free_their_place_when_closed() {
    let server = start(|c| c.limits.sessions_per_address = 1).await;
    let tcp = connect(ATTACKER, server.http).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.http),
        tcp,
    )
    .await
    .expect("first websocket session");
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("open packet in time");
    assert!(matches!(first, Some(Ok(_))));
    let (status, _, _) = open(ATTACKER, server.http).await;
    assert_eq!(status, 429);
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
    opens_again(ATTACKER, server.http).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_session_that_times_out_frees_its_place() {
    let server = start(|c| {
        c.limits.sessions_per_address = 1;
        c.realtime.ping_interval = Duration::from_millis(200);
        c.realtime.ping_timeout = Duration::from_millis(200);
    })
    .await;
    let (status, _, _) = open(ATTACKER, server.http).await;
    assert_eq!(status, 200);
    // The client never polls: the heartbeat ends the session.
    opens_again(ATTACKER, server.http).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_session_cap_refuses_every_address_with_503() {
    let server = start(|c| c.limits.max_sessions = 2).await;
    for from in [[127, 0, 0, 20], [127, 0, 0, 21]] {
        let (status, _, _) = open(from, server.http).await;
        assert_eq!(status, 200);
    }
    let (status, _, body) = open([127, 0, 0, 22], server.http).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(server.metric(TOTAL).await, 1);
    server.stop().await;
}
