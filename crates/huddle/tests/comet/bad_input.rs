//! Bad input: oversized and binary frames, commands missing their
//! arguments, and a flood that must be rate limited without starving others.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    a_frame_over_64k_closes_with_1009,
    a_binary_frame_is_an_error_not_a_close,
    commands_missing_arguments_are_errors,
    a_subscription_flood_is_rate_limited_and_others_stay_served,
    invalid_utf8_in_a_text_frame_closes_that_connection_only,
);

/// A text frame whose payload is not UTF-8 cannot be sent by a well-behaved
/// client library, so this speaks RFC 6455 by hand over TCP.
async fn invalid_utf8_in_a_text_frame_closes_that_connection_only(engine: Engine) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = comet_app(engine).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /ws/sesion=k&myid=0&devid=1&v=4.09&uuid=raw&api=js HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "server closed during the handshake");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // A masked, final text frame whose 3-byte payload is not UTF-8.
    let mask = [1u8, 2, 3, 4];
    let payload = [0xffu8, 0xfe, 0xfd];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.expect("send frame");
    // The server ends this connection (a close frame, then EOF, or EOF).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection with invalid UTF-8 was not closed"
    );
    // Everyone else is still served.
    let mut a = Comet::anonymous(&app, "1").await;
    let mut b = Comet::anonymous(&app, "1").await;
    b.subscribe(&["web_after"]).await;
    b.sync().await;
    a.send("web_pipe2\nweb_after\nev\n*\nstill here").await;
    let got = b.expect_event("web_after", "ev").await;
    assert_eq!(got["data"], "still here");
    app.stop().await;
}

async fn a_frame_over_64k_closes_with_1009(engine: Engine) {
    let app = comet_app(engine).await;
    // Just under the limit is fine.
    let mut ok = Comet::anonymous(&app, "1").await;
    let mut watcher = Comet::anonymous(&app, "1").await;
    watcher.subscribe(&["web_big"]).await;
    watcher.sync().await;
    let head = "web_pipe2\nweb_big\nmessage\n*\n";
    let fits = format!("{head}{}", "a".repeat(60 * 1024));
    ok.send(&fits).await;
    let m = watcher
        .expect("the 60 KiB message", |v| v["pipe"] == "web_big")
        .await;
    assert_eq!(m["data"].as_str().map(str::len), Some(60 * 1024));
    ok.close().await;

    let mut big = Comet::anonymous(&app, "1").await;
    let too_big = format!("{head}{}", "a".repeat(70 * 1024));
    let _ = big.try_send(Message::text(too_big)).await;
    match big.expect_closed("a frame over 64 KiB").await {
        Ended::Close(code) => assert_eq!(code, Some(1009), "close code 1009 (message too big)"),
        other => panic!("expected a close frame with code 1009, got {other:?}"),
    }
    watcher
        .assert_none("the oversized message", |v| v["pipe"] == "web_big")
        .await;
    watcher.close().await;
    app.stop().await;
}

async fn a_binary_frame_is_an_error_not_a_close(engine: Engine) {
    let app = comet_app(engine).await;
    let mut c = Comet::anonymous(&app, "1").await;
    c.send_binary(b"subscription\nweb_chat".to_vec()).await;
    c.expect_sys_error("a binary frame").await;
    c.send_binary(vec![0xff, 0x00, 0x13]).await;
    c.expect_sys_error("a binary frame").await;
    // Still open and working.
    c.subscribe(&["web_chat"]).await;
    c.sync().await;
    assert_eq!(Api::new(&app).publish("1", "web_chat", "e", "x").await, 1);
    c.expect("a message after the binary frames", |v| v["data"] == "x")
        .await;
    c.close().await;
    app.stop().await;
}

async fn commands_missing_arguments_are_errors(engine: Engine) {
    let app = comet_app(engine).await;
    let mut c = Comet::anonymous(&app, "1").await;
    for frame in [
        "web_pipe2",
        "web_pipe2\n",
        "web_pipe2\nweb_chat",
        "web_pipe2\nweb_chat\nmessage",
        "pipe_log",
        "pipe_log\n",
        "pipe_count",
        "pipe_count\n",
        "track_pipe_users",
        "track_pipe_users\n",
        "user_status",
        "user_status\n",
        "user_data",
        "user_data\nmarker",
    ] {
        c.send(frame).await;
        c.expect_sys_error(&format!("{frame:?} lacks arguments"))
            .await;
        // The connection survives each one.
        c.sync().await;
    }
    // Nonsense arguments are errors too, not crashes.
    for frame in [
        "user_status\nnot-a-number",
        "user_data\nm1\nnot-a-number",
        "pipe_log\nbad pipe!\nm2\n",
        "pipe_count\nbad pipe!\nm3\n",
        "track_pipe_users\nweb_not_a_track\nm4",
    ] {
        c.send(frame).await;
        c.sync().await;
    }
    c.close().await;
    app.stop().await;
}

async fn a_subscription_flood_is_rate_limited_and_others_stay_served(engine: Engine) {
    let app = comet_app(engine).await;

    // The flooder: its replies are read concurrently, so that its own
    // outbound queue is not what stops it.
    let url = ws_url(&app, &connect_tail("undefined", "0", "1", &new_uuid()));
    let ws = try_open(&url, None).await.expect("flooder connects");
    let (mut sink, mut stream) = ws.split();
    let (limited_tx, mut limited_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg {
                for line in t.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                    if let Ok(v) = serde_json::from_str::<Value>(line) {
                        let text = v["data"]["error"].as_str().unwrap_or("").to_lowercase();
                        if is_sys_error(&v) && text.contains("rate limit") {
                            let _ = limited_tx.send(v);
                        }
                    }
                }
            }
        }
    });
    let flood = tokio::spawn(async move {
        for i in 0..10_000u32 {
            let frame = format!("subscription\nweb_flood{}", i % 7);
            if sink.feed(Message::text(frame)).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    });

    // Meanwhile two other clients chat, within a bounded time.
    let mut b = Comet::anonymous(&app, "1").await;
    let mut c = Comet::anonymous(&app, "1").await;
    let started = tokio::time::Instant::now();
    c.subscribe(&["web_calm"]).await;
    c.sync().await;
    b.send("web_pipe2\nweb_calm\nmessage\n*\nstill here").await;
    let m = c
        .expect("a message while another socket floods", |v| {
            v["pipe"] == "web_calm"
        })
        .await;
    assert_eq!(m["data"], "still here");
    b.expect_event("_answer_to_web_calm", "answer").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others are served promptly during a flood: {:?}",
        started.elapsed()
    );

    // The flooder was told it is rate limited.
    let v = tokio::time::timeout(WAIT, limited_rx.recv())
        .await
        .expect("a 'rate limited' sys error within the wait")
        .expect("a 'rate limited' sys error before the connection ended");
    assert_eq!(v["pipe"], "sys", "{v}");
    // The flood ends (the server reads it all or drops the flooder).
    tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the flood finishes")
        .expect("flood task");

    // The server is still healthy afterwards.
    let d = Comet::anonymous(&app, "1").await;
    d.close().await;
    b.close().await;
    c.close().await;
    reader.abort();
    app.stop().await;
}
