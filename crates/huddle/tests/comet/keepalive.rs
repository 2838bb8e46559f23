//! Keep-alive: a websocket PING on a quiet connection is answered at once
//! (clients with ping/pong keep-alive — Python `websockets`, `aiohttp`'s
//! heartbeat, proxies — drop a connection whose pong does not come).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(a_ping_on_an_idle_connection_is_answered_at_once);

/// Far shorter than any keep-alive timeout a client uses (`websockets`: 20 s).
const PONG_WAIT: Duration = Duration::from_secs(3);

async fn a_ping_on_an_idle_connection_is_answered_at_once(engine: Engine) {
    let app = comet_app(engine).await;
    let url = ws_url(&app, &connect_tail("undefined", "0", "1", &new_uuid()));
    let (mut ws, _) = tokio::time::timeout(WAIT, connect_async(&url))
        .await
        .expect("connect in time")
        .expect("connects");
    // serverInfo first: afterwards the connection is quiet.
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("serverInfo");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
    for round in 0..3u8 {
        let payload = vec![b'k', round];
        ws.send(Message::Ping(payload.clone().into()))
            .await
            .expect("ping sent");
        let pong = tokio::time::timeout(PONG_WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Pong(p))) => return p,
                    Some(Ok(_)) => {}
                    other => panic!("the connection ended before the pong: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no pong within {PONG_WAIT:?} (round {round})"));
        assert_eq!(
            &pong[..],
            &payload[..],
            "the pong echoes the ping's payload"
        );
    }
    let _ = ws.close(None).await;
    app.stop().await;
}

both_engines!(a_client_that_pings_but_never_reads_stops_being_read);

/// Answering pings at once must not let a client that never reads its pongs
/// grow the server: once the socket and a small backlog are full, the server
/// stops reading it, so the client's own writes stall.
async fn a_client_that_pings_but_never_reads_stops_being_read(engine: Engine) {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::MaybeTlsStream;

    let app = comet_app(engine).await;
    let url = ws_url(&app, &connect_tail("undefined", "0", "1", &new_uuid()));
    let (mut ws, _) = tokio::time::timeout(WAIT, connect_async(&url))
        .await
        .expect("connect in time")
        .expect("connects");
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("a plain TCP stream");
    };
    // 1 MiB of masked pings with the largest payload a ping may carry.
    let mut chunk = Vec::with_capacity(1 << 20);
    while chunk.len() + 131 <= 1 << 20 {
        chunk.extend_from_slice(&[0x89, 0x80 | 125, 0, 0, 0, 0]);
        chunk.extend_from_slice(&[b'p'; 125]);
    }
    // Loopback socket buffers hold a few MiB each way; far past that, the
    // server must have stopped reading.
    let limit = 256;
    for sent in 0..limit {
        match tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&chunk)).await {
            Err(_) => {
                assert!(sent > 0, "the server read nothing at all");
                app.stop().await;
                return;
            }
            Ok(Err(e)) => panic!("the connection failed instead of stalling: {e}"),
            Ok(Ok(())) => {}
        }
    }
    panic!("{limit} MiB of pings read from a client that reads no pong");
}
