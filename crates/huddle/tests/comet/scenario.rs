//! Two browsers' worth: an anonymous visitor and a signed-in user chat on a
//! web_ pipe, see each other in a track_ pipe, receive private messages from
//! the backend, and read the history.

use serde_json::json;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(an_anonymous_and_an_authorised_browser_chat);

async fn an_anonymous_and_an_authorised_browser_chat(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    // The backend: a session key for user 7 and history for the chat.
    api.set_hash("1", 7, "sess7").await;
    api.set_history("1", "web_chat", 20).await;
    api.set_data("1", 7, "Bob").await;

    // The backend's own watcher of Bob's presence.
    let mut presence = Comet::anonymous(&app, "1").await;
    presence.subscribe(&["user_status_7"]).await;
    presence.sync().await;

    // Anna's page runs CometServerApi.js without a user: myid=undefined.
    let mut anna = Comet::js_anonymous(&app, "1").await;
    anna.send("subscription\nweb_chat\ntrack_online").await;
    anna.sync().await;
    let mut bob = Comet::authorized(&app, "1", 7, "sess7").await;
    bob.send("subscription\nweb_chat\ntrack_online").await;

    // Anna sees Bob arrive.
    let e = anna
        .expect("bob's arrival", |v| {
            is_track(v, "track_online", "subscription", &bob.uuid)
        })
        .await;
    assert_eq!(e["data"], json!({"user_id": 7, "uuid": bob.uuid}));
    // Bob sees who is there: two in the pipe, himself the only signed-in one.
    bob.send("pipe_count\ntrack_online\nb1\n").await;
    let r = bob.expect("count", |v| v["marker"] == "b1").await;
    assert_eq!(r["data"]["user_in_pipe"], 2, "{r}");
    anna.send("track_pipe_users\ntrack_online\na1").await;
    let r = anna.expect("users", |v| v["marker"] == "a1").await;
    assert_eq!(r["data"], json!([{"user_id": 7, "uuid": bob.uuid}]), "{r}");
    // Anna looks Bob up.
    anna.send("user_data\na2\n7").await;
    let r = anna.expect("user data", |v| v["marker"] == "a2").await;
    assert_eq!(r["data"], json!({"user_id": 7, "user_data": "Bob"}), "{r}");

    // They chat; neither sees their own words echoed.
    anna.send("web_pipe2\nweb_chat\nmessage\n*\n{\"text\":\"hi, who is this?\"}")
        .await;
    let m = bob.expect("anna's line", |v| v["pipe"] == "web_chat").await;
    assert_eq!(m["user_id"], 0, "anna is anonymous: {m}");
    assert_eq!(m["data"], "{\"text\":\"hi, who is this?\"}");
    anna.expect_event("_answer_to_web_chat", "answer").await;

    bob.send("web_pipe2\nweb_chat\nmessage\n*\n{\"text\":\"Bob here\"}")
        .await;
    let m = anna.expect("bob's line", |v| v["pipe"] == "web_chat").await;
    assert_eq!(m["user_id"], 7, "bob is signed in: {m}");
    assert_eq!(m["data"], "{\"text\":\"Bob here\"}");
    bob.expect_event("_answer_to_web_chat", "answer").await;

    anna.assert_none("an echo", |v| v["pipe"] == "web_chat")
        .await;
    bob.assert_none("an echo", |v| v["pipe"] == "web_chat")
        .await;

    // The backend announces to the room and whispers to Bob.
    assert_eq!(
        api.publish("1", "web_chat", "system", "welcome both").await,
        2
    );
    for c in [&mut anna, &mut bob] {
        let m = c
            .expect("the announcement", |v| v["pipe"] == "web_chat")
            .await;
        assert_eq!(
            (m["event"].clone(), m["user_id"].clone()),
            (json!("system"), json!(0))
        );
    }
    let r = api.send_to_user("1", 7, "whisper", "just for Bob").await;
    assert_eq!(r, json!({"delivered": 1, "queued": false}));
    let m = bob.expect("the whisper", |v| v["pipe"] == "msg").await;
    assert_eq!(m["event"], "whisper");
    assert_eq!(m["data"], "just for Bob");
    anna.assert_none("bob's private message", |v| v["pipe"] == "msg")
        .await;

    // A late reader gets the whole conversation, in order.
    let mut late = Comet::anonymous(&app, "1").await;
    late.send("pipe_log\nweb_chat\nlate1\n").await;
    let mut lines = Vec::new();
    for _ in 0..3 {
        let h = late.expect("history", |v| v["marker"] == "late1").await;
        assert_eq!(h["history"], true, "{h}");
        lines.push((h["user_id"].clone(), h["event"].clone()));
    }
    assert_eq!(
        lines,
        vec![
            (json!(0), json!("message")),
            (json!(7), json!("message")),
            (json!(0), json!("system")),
        ]
    );
    late.assert_none("more history", |v| v["marker"] == "late1")
        .await;

    // Bob leaves; Anna sees it. Bob's next private message waits for him.
    let bob_uuid = bob.uuid.clone();
    bob.close().await;
    let e = anna.expect_event("track_online", "unsubscription").await;
    assert_eq!(e["data"], json!({"user_id": 7, "uuid": bob_uuid}));
    presence.expect_event("user_status_7", "online").await;
    presence.expect_event("user_status_7", "offline").await;
    let r = api
        .send_to_user("1", 7, "whisper", "while you were away")
        .await;
    assert_eq!(r, json!({"delivered": 0, "queued": true}));
    let mut bob = Comet::authorized(&app, "1", 7, "sess7").await;
    let m = bob
        .expect("the queued whisper", |v| v["pipe"] == "msg")
        .await;
    assert_eq!(m["data"], "while you were away");
    assert_eq!(m["fromQueue"], true);

    anna.close().await;
    bob.close().await;
    late.close().await;
    presence.close().await;
    app.stop().await;
}
