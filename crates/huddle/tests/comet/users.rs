//! Users: the private `msg` pipe on every device, the offline queue, the
//! per-user connection limit, and the online/offline edges.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    msg_reaches_every_authorised_device_and_nobody_else,
    offline_queue_is_flushed_once_in_order_on_next_authorised_connect,
    at_most_16_connections_per_user,
    user_status_pipes_carry_online_and_offline_edges,
    a_message_right_after_server_info_is_not_lost,
);

fn is_msg(v: &Value) -> bool {
    v["pipe"] == "msg"
}

async fn msg_reaches_every_authorised_device_and_nobody_else(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    api.set_hash("1", 6, "six").await;
    let token = jwt("1", serde_json::json!({"user_id": 5, "exp": far_exp()}));
    let mut devices = vec![
        Comet::authorized(&app, "1", 5, "five").await,
        Comet::authorized(&app, "1", 5, "five").await,
        Comet::authorized(&app, "1", 5, &token).await,
    ];
    let mut impostor = Comet::connect(&app, "1", "5", "wrong").await;
    assert!(!impostor.authorized_flag());
    let mut other = Comet::authorized(&app, "1", 6, "six").await;

    let r = api.send_to_user("1", 5, "notice", "hello five").await;
    assert_eq!(r["delivered"], 3, "{r}");
    assert_eq!(r["queued"], false, "{r}");
    for d in devices.iter_mut() {
        let m = d.expect("the private message", is_msg).await;
        assert_eq!(m["event"], "notice", "{m}");
        assert_eq!(m["data"], "hello five", "{m}");
        assert_eq!(m["user_id"], 0, "{m}");
        assert_ne!(
            m["fromQueue"], true,
            "a live message is not from the queue: {m}"
        );
        assert_recent_time(&m);
    }
    impostor
        .assert_none("another user's private message", is_msg)
        .await;
    other
        .assert_none("another user's private message", is_msg)
        .await;
    // Delivered live, so nothing was queued.
    let r = api.call(Method::GET, "1", "/users/5/messages", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["messages"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        r.body
    );

    // One device closes: the rest still get everything.
    let closed = devices.pop().expect("device");
    closed.close().await;
    let r = api.send_to_user("1", 5, "notice", "second").await;
    assert_eq!(r["delivered"], 2, "{r}");
    for d in devices.iter_mut() {
        let m = d.expect("the second message", is_msg).await;
        assert_eq!(m["data"], "second", "{m}");
    }
    for d in devices {
        d.close().await;
    }
    impostor.close().await;
    other.close().await;
    app.stop().await;
}

async fn offline_queue_is_flushed_once_in_order_on_next_authorised_connect(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;

    for i in 1..=12 {
        let r = api
            .send_to_user("1", 5, &format!("ev{i}"), &format!("queued {i}"))
            .await;
        assert_eq!(r["delivered"], 0, "{r}");
        assert_eq!(r["queued"], true, "{r}");
    }
    let r = api.call(Method::GET, "1", "/users/5/messages", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["messages"].as_array().map(Vec::len),
        Some(12),
        "{:?}",
        r.body
    );

    // An anonymous connection claiming the id gets nothing and flushes nothing.
    let mut impostor = Comet::connect(&app, "1", "5", "wrong").await;
    impostor.assert_none("the queue", is_msg).await;
    impostor.close().await;

    let mut c = Comet::authorized(&app, "1", 5, "five").await;
    for i in 1..=12 {
        let m = c.next().await;
        assert!(is_msg(&m), "queued message {i} comes next, in order: {m}");
        assert_eq!(m["data"], format!("queued {i}"), "in order: {m}");
        assert_eq!(m["event"], format!("ev{i}"), "{m}");
        assert_eq!(m["fromQueue"], true, "{m}");
        assert_eq!(m["user_id"], 0, "{m}");
    }
    c.assert_none("a duplicate", is_msg).await;

    // A second device of the same user, now: nothing more to flush.
    let mut c2 = Comet::authorized(&app, "1", 5, "five").await;
    c2.assert_none("an already flushed message", is_msg).await;
    c2.close().await;
    c.close().await;

    // Reconnect later: still nothing.
    let mut c = Comet::authorized(&app, "1", 5, "five").await;
    c.assert_none("an already flushed message", is_msg).await;
    let r = api.call(Method::GET, "1", "/users/5/messages", None).await;
    assert_eq!(
        r.body["messages"].as_array().map(Vec::len),
        Some(0),
        "the queue is empty after the flush: {:?}",
        r.body
    );
    c.close().await;

    // DELETE drops a queue without delivering it.
    let r = api.send_to_user("1", 5, "ev", "dropped").await;
    assert_eq!(r["queued"], true, "{r}");
    let r = api
        .call(Method::DELETE, "1", "/users/5/messages", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let mut c = Comet::authorized(&app, "1", 5, "five").await;
    c.assert_none("a deleted queued message", is_msg).await;
    c.close().await;

    // The queue survives a restart (it is in the database).
    let r = api.send_to_user("1", 5, "ev", "durable").await;
    assert_eq!(r["queued"], true, "{r}");
    let app = app.restart().await;
    let mut c = Comet::authorized(&app, "1", 5, "five").await;
    let m = c.expect("the durable queued message", is_msg).await;
    assert_eq!(m["data"], "durable", "{m}");
    assert_eq!(m["fromQueue"], true, "{m}");
    c.close().await;
    app.stop().await;
}

async fn at_most_16_connections_per_user(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    let mut devices = Vec::new();
    for _ in 0..16 {
        devices.push(Comet::authorized(&app, "1", 5, "five").await);
    }
    // Anonymous connections do not count against user 5.
    let anon = Comet::anonymous(&app, "1").await;
    // The same user id in another tenant is another user.
    api.set_hash("2", 5, "five").await;
    let mut elsewhere = Comet::authorized(&app, "2", 5, "five").await;
    elsewhere.sync().await;

    let mut c17 = Comet::connect_raw(&app, "1", "5", "five").await;
    c17.expect_sys_error("the 17th connection").await;
    c17.expect_closed("the 17th connection").await;

    let r = api.send_to_user("1", 5, "notice", "to all 16").await;
    assert_eq!(r["delivered"], 16, "{r}");
    for d in devices.iter_mut() {
        let m = d.expect("the message", is_msg).await;
        assert_eq!(m["data"], "to all 16", "{m}");
    }

    // A slot frees when one closes.
    devices.pop().expect("device").close().await;
    let mut seventeen = None;
    for _ in 0..50 {
        let mut c = Comet::connect_raw(&app, "1", "5", "five").await;
        c.send_lossy("pipe_count\nweb_zz_barrier\nlimit\n").await;
        let v = c
            .expect("a barrier reply or an error", |v| {
                is_sys_error(v) || v["marker"] == "limit"
            })
            .await;
        if v["marker"] == "limit" {
            seventeen = Some(c);
            break;
        }
        c.expect_closed("refused while the close is processed")
            .await;
    }
    let c = seventeen.expect("a freed slot is usable again");
    c.close().await;
    for d in devices {
        d.close().await;
    }
    anon.close().await;
    elsewhere.close().await;
    app.stop().await;
}

async fn user_status_pipes_carry_online_and_offline_edges(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    assert_eq!(api.user_time("1", 5).await, -1, "never seen: -1");

    let mut watcher = Comet::anonymous(&app, "1").await;
    watcher.subscribe(&["user_status_5", "track_probe"]).await;
    watcher.sync().await;

    let mut first = Comet::authorized(&app, "1", 5, "five").await;
    let e = watcher.expect_event("user_status_5", "online").await;
    assert_eq!(e["data"], "online", "{e}");
    assert_eq!(api.user_time("1", 5).await, 0, "online now: 0");

    // A second device is not a new edge; the first closing is not offline.
    let mut second = Comet::authorized(&app, "1", 5, "five").await;
    second.sync().await;
    first.subscribe(&["track_probe"]).await;
    let first_uuid = first.uuid.clone();
    watcher
        .expect("first's arrival", |v| {
            is_track(v, "track_probe", "subscription", &first_uuid)
        })
        .await;
    first.close().await;
    watcher
        .expect("first's departure", |v| {
            is_track(v, "track_probe", "unsubscription", &first_uuid)
        })
        .await;
    assert_eq!(api.publish("1", "user_status_5", "fence", "fence").await, 1);
    let e = watcher
        .expect("the next user_status_5 message", |v| {
            v["pipe"] == "user_status_5"
        })
        .await;
    assert_eq!(e["event"], "fence", "no edge while a device remains: {e}");
    assert_eq!(api.user_time("1", 5).await, 0, "still online");

    // The last closing is the offline edge.
    let before = now();
    second.close().await;
    let e = watcher.expect_event("user_status_5", "offline").await;
    assert_eq!(e["data"], "offline", "{e}");
    let t = api.user_time("1", 5).await;
    assert!(
        t >= before - 1 && t <= now() + 1,
        "last online time is when the last device left: {t} vs {before}"
    );

    // Anonymous connections are not users coming online.
    let anon = Comet::connect(&app, "1", "5", "wrong").await;
    anon.close().await;
    assert_eq!(
        api.publish("1", "user_status_5", "fence", "fence2").await,
        1
    );
    let e = watcher
        .expect("the next user_status_5 message", |v| {
            v["pipe"] == "user_status_5"
        })
        .await;
    assert_eq!(e["data"], "fence2", "no edge from an anonymous socket: {e}");
    watcher.close().await;
    app.stop().await;
}

/// Once `serverInfo` says `authorized`, the user is online: a private message
/// sent from then on is delivered on this connection (live, or flushed from
/// the queue), never left behind in the queue for some later connection.
async fn a_message_right_after_server_info_is_not_lost(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    for i in 0..20 {
        let mut c = Comet::authorized(&app, "1", 5, "five").await;
        let text = format!("round {i}");
        api.send_to_user("1", 5, "ev", &text).await;
        let m = c
            .expect(&format!("{text:?} on the connection that is online"), |v| {
                is_msg(v) && v["data"] == text.as_str()
            })
            .await;
        assert_eq!(m["event"], "ev", "{m}");
        c.close().await;
        let r = api.call(Method::GET, "1", "/users/5/messages", None).await;
        assert_eq!(
            r.body["messages"].as_array().map(Vec::len),
            Some(0),
            "round {i}: nothing left queued: {:?}",
            r.body
        );
    }
    app.stop().await;
}
