//! The outbound queue's bound (`limits.outbound_queue_bytes`): a subscriber
//! that stops reading is disconnected as a slow consumer and counted, never
//! skipped silently, and the subscribers that read lose nothing.

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(a_subscriber_that_stops_reading_is_disconnected_as_slow_and_counted);

async fn a_subscriber_that_stops_reading_is_disconnected_as_slow_and_counted(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.comet.password = Some(huddle::config::Secret(password()));
        c.limits.outbound_queue_bytes = 64 * 1024;
    })
    .await;
    let api = Api::new(&app);
    let mut stalled = Comet::anonymous(&app, "1").await;
    let mut reader = Comet::anonymous(&app, "1").await;
    for c in [&mut stalled, &mut reader] {
        c.subscribe(&["web_flood"]).await;
        c.sync().await;
    }
    // 16 KiB a message: the stalled client's socket buffers fill first (a
    // few MiB on loopback), then its 64 KiB queue.
    let body = "x".repeat(16 * 1024);
    let mut sent = 0u64;
    loop {
        let delivered = api.publish("1", "web_flood", "m", &body).await;
        sent += 1;
        let m = reader
            .expect("the flood message", |v| v["pipe"] == "web_flood")
            .await;
        assert_eq!(m["data"].as_str().map(str::len), Some(body.len()));
        if delivered == 1 {
            break;
        }
        assert_eq!(
            delivered, 2,
            "both subscribers until the stalled one is dropped"
        );
        assert!(
            sent < 4000,
            "64 MiB published and the client that reads nothing is still subscribed"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("huddle_slow_consumer_disconnects_total 1\n"),
        "one slow consumer counted:\n{metrics}"
    );
    // What the stalled client reads now ends with the connection's end.
    match stalled.expect_closed("slow consumer").await {
        Ended::Close(code) => assert_eq!(code, Some(1008), "closed as a slow consumer"),
        Ended::Dropped(_) => {} // the close frame may not fit a full socket
    }
    // The reader is still subscribed and receives the next one.
    assert_eq!(api.publish("1", "web_flood", "m", "after").await, 1);
    reader
        .expect("the message after", |v| v["data"] == "after")
        .await;
    reader.close().await;
    app.stop().await;
}
