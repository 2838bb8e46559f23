//! devIds are tenants: nothing crosses between them.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    pipes_are_per_devid,
    users_hashes_queues_data_and_history_are_per_devid,
);

async fn pipes_are_per_devid(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    api.set_hash("2", 5, "five").await;
    let mut one = Comet::authorized(&app, "1", 5, "five").await;
    let mut two = Comet::authorized(&app, "2", 5, "five").await;
    let mut sender1 = Comet::anonymous(&app, "1").await;
    for c in [&mut one, &mut two] {
        c.subscribe(&["web_chat", "track_room"]).await;
        c.sync().await;
    }

    // A socket publish in dev 1 reaches dev 1 only.
    sender1
        .send("web_pipe2\nweb_chat\nmessage\n*\nfor one")
        .await;
    let answer = sender1.expect_event("_answer_to_web_chat", "answer").await;
    assert_eq!(answer["data"]["number_messages"], 1, "{answer}");
    one.expect("dev 1's message", |v| v["data"] == "for one")
        .await;
    // An API publish in dev 1 counts dev 1's subscribers only.
    assert_eq!(api.publish("1", "web_chat", "e", "api one").await, 1);
    one.expect("dev 1's API message", |v| v["data"] == "api one")
        .await;
    // Fence in dev 2: the first web_chat message there is the fence.
    assert_eq!(api.publish("2", "web_chat", "e", "fence two").await, 1);
    let m = two
        .expect("dev 2's first web_chat message", |v| {
            v["pipe"] == "web_chat"
        })
        .await;
    assert_eq!(
        m["data"], "fence two",
        "dev 1's messages leaked into dev 2: {m}"
    );

    // Track events stay in their tenant.
    let mut joiner = Comet::anonymous(&app, "1").await;
    joiner.subscribe(&["track_room"]).await;
    let e = one
        .expect("joiner's arrival", |v| {
            is_track(v, "track_room", "subscription", &joiner.uuid)
        })
        .await;
    assert_eq!(e["data"]["user_id"], 0, "{e}");
    assert_eq!(api.publish("2", "track_room", "fence", "fence").await, 1);
    let own = two.uuid.clone();
    let m = two
        .expect("dev 2's first track_room message", |v| {
            on_pipe_except_own(v, "track_room", &own)
        })
        .await;
    assert_eq!(
        m["event"], "fence",
        "a dev 1 track event leaked into dev 2: {m}"
    );

    // Counts and lists are per tenant.
    let mut asker2 = Comet::anonymous(&app, "2").await;
    asker2.send("pipe_count\ntrack_room\nc2\n").await;
    let r = asker2.expect("count", |v| v["marker"] == "c2").await;
    assert_eq!(r["data"]["user_in_pipe"], 1, "dev 2 only: {r}");
    asker2.send("track_pipe_users\ntrack_room\nt2").await;
    let r = asker2.expect("users", |v| v["marker"] == "t2").await;
    let uuids: Vec<&str> = r["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["uuid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(uuids, vec![two.uuid.as_str()], "dev 2 only: {r}");
    let info = api.pipe_info("1", "track_room").await;
    assert_eq!(info["users"], 2, "dev 1: one and joiner: {info}");

    // A socket publish in dev 2 does not reach dev 1.
    asker2
        .send("web_pipe2\nweb_chat\nmessage\n*\nfor two")
        .await;
    two.expect("dev 2's message", |v| v["data"] == "for two")
        .await;
    assert_eq!(api.publish("1", "web_chat", "e", "fence one").await, 1);
    let m = one
        .expect("dev 1's next web_chat message", |v| v["pipe"] == "web_chat")
        .await;
    assert_eq!(
        m["data"], "fence one",
        "dev 2's message leaked into dev 1: {m}"
    );

    for c in [one, two, sender1, joiner, asker2] {
        c.close().await;
    }
    app.stop().await;
}

async fn users_hashes_queues_data_and_history_are_per_devid(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);

    // A hash set in dev 1 does not authorise in dev 2.
    api.set_hash("1", 5, "fiveone").await;
    api.set_hash("2", 5, "fivetwo").await;
    let c = Comet::connect(&app, "2", "5", "fiveone").await;
    assert!(!c.authorized_flag(), "dev 1's hash in dev 2: {}", c.info);
    c.close().await;
    let r = api.call(Method::GET, "1", "/users/5/auth", None).await;
    assert_eq!(r.body["hash"], "fiveone", "{:?}", r.body);
    let r = api.call(Method::GET, "2", "/users/5/auth", None).await;
    assert_eq!(r.body["hash"], "fivetwo", "{:?}", r.body);
    let r = api.call(Method::GET, "3", "/users/5/auth", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);

    // User 5 online in dev 2 only: a message to dev 1's user 5 is queued.
    let mut two = Comet::authorized(&app, "2", 5, "fivetwo").await;
    let r = api.send_to_user("1", 5, "ev", "for dev one").await;
    assert_eq!(r["delivered"], 0, "{r}");
    assert_eq!(r["queued"], true, "{r}");
    two.assert_none("dev 1's private message", |v| v["pipe"] == "msg")
        .await;
    assert_eq!(api.user_time("2", 5).await, 0, "online in dev 2");
    assert_ne!(api.user_time("1", 5).await, 0, "not online in dev 1");
    let r = api.call(Method::GET, "2", "/users/5/messages", None).await;
    assert_eq!(
        r.body["messages"].as_array().map(Vec::len),
        Some(0),
        "dev 2's queue is empty: {:?}",
        r.body
    );
    // ...and flushed to dev 1's user 5 only.
    let mut one = Comet::authorized(&app, "1", 5, "fiveone").await;
    let m = one
        .expect("the queued message", |v| v["pipe"] == "msg")
        .await;
    assert_eq!(m["data"], "for dev one", "{m}");
    two.assert_none("dev 1's private message", |v| v["pipe"] == "msg")
        .await;

    // user_status edges stay in their tenant.
    let mut watch2 = Comet::anonymous(&app, "2").await;
    watch2.subscribe(&["user_status_5"]).await;
    watch2.sync().await;
    let mut watch1 = Comet::anonymous(&app, "1").await;
    watch1.subscribe(&["user_status_5"]).await;
    watch1.sync().await;
    one.close().await;
    watch1.expect_event("user_status_5", "offline").await;
    assert_eq!(api.publish("2", "user_status_5", "fence", "f").await, 1);
    let m = watch2
        .expect("dev 2's user_status_5", |v| v["pipe"] == "user_status_5")
        .await;
    assert_eq!(m["event"], "fence", "dev 1's edges leaked into dev 2: {m}");

    // Data is per tenant.
    api.set_data("1", 5, "one's data").await;
    let r = api.call(Method::GET, "1", "/users/5/data", None).await;
    assert_eq!(r.body["data"], "one's data", "{:?}", r.body);
    let r = api.call(Method::GET, "2", "/users/5/data", None).await;
    assert_ne!(r.body["data"], "one's data", "{:?}", r.body);
    two.send("user_data\nud\n5").await;
    let r = two.expect("user_data", |v| v["marker"] == "ud").await;
    assert_ne!(r["data"]["user_data"], "one's data", "{r}");

    // History is per tenant.
    api.set_history("1", "web_log", 10).await;
    assert_eq!(api.publish("1", "web_log", "e", "logged in one").await, 0);
    let r = api
        .call(Method::GET, "2", "/pipes/web_log/messages", None)
        .await;
    let n = r.body["messages"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, 0, "dev 2 has no history: {:?}", r.body);
    let r = api
        .call(Method::GET, "2", "/pipes/web_log/settings", None)
        .await;
    assert_ne!(r.body["length"], 10, "dev 2 has no setting: {:?}", r.body);
    two.send("pipe_log\nweb_log\nh2\n").await;
    two.assert_none("dev 1's history", |v: &Value| v["marker"] == "h2")
        .await;

    // Revocation is per tenant too: revoking in dev 2 does not touch dev 1.
    let t1 = jwt("1", serde_json::json!({"user_id": 5, "exp": far_exp()}));
    let r = api
        .call(
            Method::POST,
            "2",
            "/revoked-tokens",
            Some(serde_json::json!({ "token": t1 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let c = Comet::connect(&app, "1", "5", &t1).await;
    assert!(c.authorized_flag(), "revoked in dev 2 only: {}", c.info);
    c.close().await;

    for c in [two, watch1, watch2] {
        c.close().await;
    }
    app.stop().await;
}
