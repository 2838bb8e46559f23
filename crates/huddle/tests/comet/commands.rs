//! Every websocket command: its reply shape, and the pipe rules.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    web_pipe2_delivers_to_others_never_echoes_and_reports,
    at_web_pipe_hides_the_sender,
    webauth_needs_an_authorised_sender_and_other_prefixes_are_refused,
    subscription_replaces_the_whole_set,
    subscription_limits_32_pipes_64_chars,
    private_pipes_are_skipped_for_anonymous,
    track_pipes_announce_subscribe_and_unsubscribe,
    pipe_log_replays_history_with_flags,
    pipe_count_counts_web_and_track_subscribers,
    track_pipe_users_lists_authorised_subscribers,
    user_status_and_user_data_replies,
    statistics_is_accepted_and_ignored,
    unknown_command_closes_the_connection,
    pipelined_commands_are_answered_in_order,
);

fn on(pipe: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["pipe"] == pipe
}

async fn web_pipe2_delivers_to_others_never_echoes_and_reports(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    let mut a = Comet::authorized(&app, "1", 7, "seven").await;
    let mut b = Comet::anonymous(&app, "1").await;
    let mut c = Comet::anonymous(&app, "1").await;
    for x in [&mut a, &mut b, &mut c] {
        x.subscribe(&["web_chat"]).await;
        x.sync().await;
    }

    a.send("web_pipe2\nweb_chat\nmessage\n*\nhello from 7")
        .await;
    let answer = a.expect_event("_answer_to_web_chat", "answer").await;
    assert_eq!(
        answer["data"]["number_messages"], 2,
        "two other subscribers received it: {answer}"
    );
    assert!(
        answer["data"].get("message").is_some(),
        "the report carries data.message: {answer}"
    );
    for x in [&mut b, &mut c] {
        let m = x.expect("the chat message", on("web_chat")).await;
        assert_eq!(m["data"], "hello from 7", "{m}");
        assert_eq!(m["event"], "message", "{m}");
        assert_eq!(m["user_id"], 7, "the authorised sender's id: {m}");
        assert_recent_time(&m);
        assert_ne!(m["history"], true, "a live message is not history: {m}");
    }
    a.assert_none("echo to the sender", on("web_chat")).await;

    // An anonymous sender: user_id 0, and again no echo.
    b.send("web_pipe2\nweb_chat\ntyping\n*\n{\"text\":\"hi\"}")
        .await;
    let answer = b.expect_event("_answer_to_web_chat", "answer").await;
    assert_eq!(answer["data"]["number_messages"], 2, "{answer}");
    for x in [&mut a, &mut c] {
        let m = x.expect("b's message", on("web_chat")).await;
        assert_eq!(m["data"], "{\"text\":\"hi\"}", "the message text: {m}");
        assert_eq!(m["event"], "typing", "{m}");
        assert_eq!(m["user_id"], 0, "{m}");
    }
    b.assert_none("echo to the sender", on("web_chat")).await;

    // A sender that is not subscribed may publish; everyone subscribed gets it.
    let mut d = Comet::anonymous(&app, "1").await;
    d.send("web_pipe2\nweb_chat\nmessage\n*\nfrom outside")
        .await;
    let answer = d.expect_event("_answer_to_web_chat", "answer").await;
    assert_eq!(answer["data"]["number_messages"], 3, "{answer}");
    for x in [&mut a, &mut b, &mut c] {
        let m = x.expect("d's message", on("web_chat")).await;
        assert_eq!(m["data"], "from outside", "{m}");
    }

    // The message keeps embedded newlines after the 4th separator.
    a.send("web_pipe2\nweb_chat\nmessage\n*\nline1\nline2")
        .await;
    let m = b.expect("multi-line", on("web_chat")).await;
    assert_eq!(m["data"], "line1\nline2", "{m}");

    for x in [a, b, c, d] {
        x.close().await;
    }
    app.stop().await;
}

async fn at_web_pipe_hides_the_sender(engine: Engine) {
    let app = comet_app(engine).await;
    Api::new(&app).set_hash("1", 7, "seven").await;
    let mut a = Comet::authorized(&app, "1", 7, "seven").await;
    let mut b = Comet::anonymous(&app, "1").await;
    b.subscribe(&["web_chat"]).await;
    b.sync().await;

    a.send("web_pipe2\n@web_chat\nmessage\n*\nwho am i").await;
    let m = b.expect("the @ message", on("web_chat")).await;
    assert_eq!(m["pipe"], "web_chat", "the @ is stripped: {m}");
    assert_eq!(m["user_id"], 0, "the @ form hides the sender: {m}");
    assert_eq!(m["data"], "who am i", "{m}");
    let answer = a
        .expect("the delivery report", |v| {
            v["event"] == "answer"
                && v["pipe"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("_answer_to_") && p.ends_with("web_chat"))
        })
        .await;
    assert_eq!(answer["data"]["number_messages"], 1, "{answer}");
    b.assert_none("a pipe literally named @web_chat", |v| {
        v["pipe"] == "@web_chat"
    })
    .await;
    a.close().await;
    b.close().await;
    app.stop().await;
}

async fn webauth_needs_an_authorised_sender_and_other_prefixes_are_refused(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    let mut auth = Comet::authorized(&app, "1", 7, "seven").await;
    let mut anon = Comet::anonymous(&app, "1").await;
    let mut watcher = Comet::anonymous(&app, "1").await;
    watcher
        .subscribe(&["webauth_room", "chat", "track_x"])
        .await;
    watcher.sync().await;

    // Anonymous to webauth_: sys error, nothing delivered.
    anon.send("web_pipe2\nwebauth_room\nmessage\n*\nsneaky")
        .await;
    anon.expect_sys_error("anonymous publishing to webauth_")
        .await;
    anon.assert_none("a delivery report for a refused publish", |v| {
        v["pipe"] == "_answer_to_webauth_room"
    })
    .await;

    // Other prefixes cannot be published from a socket at all.
    for pipe in ["chat", "private_x", "track_x", "msg"] {
        auth.send(&format!("web_pipe2\n{pipe}\nmessage\n*\nsneaky"))
            .await;
        auth.expect_sys_error(&format!("publishing to {pipe} from a socket"))
            .await;
    }

    // A fence on each pipe: the watcher's next message there is the fence.
    for pipe in ["webauth_room", "chat", "track_x"] {
        assert_eq!(api.publish("1", pipe, "fence", "fence").await, 1);
    }
    for pipe in ["webauth_room", "chat", "track_x"] {
        let own = watcher.uuid.clone();
        let m = watcher
            .expect(&format!("the fence on {pipe}"), move |v| {
                on_pipe_except_own(v, pipe, &own)
            })
            .await;
        assert_eq!(
            m["event"], "fence",
            "a refused publish leaked on {pipe}: {m}"
        );
    }

    // Authorised to webauth_: delivered with the sender's id.
    auth.send("web_pipe2\nwebauth_room\nmessage\n*\nhello")
        .await;
    let m = watcher
        .expect("the authorised message", |v| v["pipe"] == "webauth_room")
        .await;
    assert_eq!(
        (m["data"].clone(), m["user_id"].clone()),
        (json!("hello"), json!(7))
    );
    auth.expect_event("_answer_to_webauth_room", "answer").await;

    for x in [auth, anon, watcher] {
        x.close().await;
    }
    app.stop().await;
}

async fn subscription_replaces_the_whole_set(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    let mut c = Comet::anonymous(&app, "1").await;
    c.subscribe(&["web_a", "web_b"]).await;
    c.sync().await;
    assert_eq!(api.publish("1", "web_a", "e", "a1").await, 1);
    assert_eq!(api.publish("1", "web_b", "e", "b1").await, 1);
    c.expect("a1", |v| v["data"] == "a1").await;
    c.expect("b1", |v| v["data"] == "b1").await;

    // Re-subscribing replaces: web_a is dropped, web_c added.
    c.subscribe(&["web_b", "web_c"]).await;
    c.sync().await;
    assert_eq!(
        api.publish("1", "web_a", "e", "a2").await,
        0,
        "web_a dropped"
    );
    assert_eq!(api.publish("1", "web_b", "e", "b2").await, 1);
    assert_eq!(api.publish("1", "web_c", "e", "c2").await, 1);
    c.expect("b2", |v| v["data"] == "b2").await;
    c.expect("c2", |v| v["data"] == "c2").await;
    c.assert_none("anything from the dropped web_a", |v| v["pipe"] == "web_a")
        .await;

    // No reply to a subscription (the original sends none) and no errors.
    c.assert_none("a reply to subscription", |v| v["pipe"] == "sys")
        .await;

    // An empty subscription unsubscribes everything.
    c.send("subscription\n").await;
    c.sync().await;
    assert_eq!(api.publish("1", "web_b", "e", "b3").await, 0);
    assert_eq!(api.publish("1", "web_c", "e", "c3").await, 0);
    let info = api.pipe_info("1", "web_b").await;
    assert_eq!(info["users"], 0, "{info}");
    c.close().await;
    app.stop().await;
}

async fn subscription_limits_32_pipes_64_chars(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    let mut c = Comet::anonymous(&app, "1").await;

    // Exactly 32 pipes, the longest 64 chars: fine, all subscribed.
    let long64 = format!("web_{}", "x".repeat(60));
    assert_eq!(long64.len(), 64);
    let mut pipes: Vec<String> = (0..31).map(|i| format!("web_p{i}")).collect();
    pipes.push(long64.clone());
    let refs: Vec<&str> = pipes.iter().map(String::as_str).collect();
    c.subscribe(&refs).await;
    c.assert_none("an error for 32 pipes of ≤64 chars", is_sys_error)
        .await;
    assert_eq!(api.publish("1", &long64, "e", "long").await, 1);
    assert_eq!(api.publish("1", "web_p30", "e", "p30").await, 1);
    assert_eq!(api.publish("1", "web_p0", "e", "p0").await, 1);
    c.expect("on the 64-char pipe", |v| v["data"] == "long")
        .await;

    // 33 pipes: error 403.
    let mut pipes33: Vec<String> = (0..33).map(|i| format!("web_q{i}")).collect();
    let refs: Vec<&str> = pipes33.iter().map(String::as_str).collect();
    c.subscribe(&refs).await;
    let e = c.expect_sys_error("33 pipes").await;
    assert_eq!(e["data"]["code"], "403", "{e}");
    assert_eq!(
        api.publish("1", "web_q32", "e", "q32").await,
        0,
        "the 33rd pipe is never subscribed"
    );

    // A 65-char name: error 403.
    pipes33.truncate(1);
    let long65 = format!("web_{}", "y".repeat(61));
    assert_eq!(long65.len(), 65);
    c.subscribe(&["web_ok", &long65]).await;
    let e = c.expect_sys_error("a 65-char pipe name").await;
    assert_eq!(e["data"]["code"], "403", "{e}");
    let r = api
        .call(Method::GET, "1", &format!("/pipes/{long65}"), None)
        .await;
    assert!(
        r.status.is_client_error() || r.body["users"] == 0,
        "a 65-char pipe has no subscribers: {:?}",
        r.body
    );
    c.close().await;
    app.stop().await;
}

async fn private_pipes_are_skipped_for_anonymous(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    let mut anon = Comet::anonymous(&app, "1").await;
    anon.subscribe(&["private_room", "web_open"]).await;
    anon.assert_none("an error: private_ is skipped silently", is_sys_error)
        .await;
    assert_eq!(
        api.publish("1", "private_room", "e", "secret").await,
        0,
        "anonymous is not subscribed to private_room"
    );
    assert_eq!(
        api.publish("1", "web_open", "e", "open").await,
        1,
        "the rest of the list still applies"
    );
    anon.expect("web_open", |v| v["data"] == "open").await;
    anon.assert_none("the private message", |v| v["pipe"] == "private_room")
        .await;

    let mut auth = Comet::authorized(&app, "1", 7, "seven").await;
    auth.subscribe(&["private_room"]).await;
    auth.sync().await;
    assert_eq!(api.publish("1", "private_room", "e", "secret2").await, 1);
    let m = auth
        .expect("private", |v| v["pipe"] == "private_room")
        .await;
    assert_eq!(m["data"], "secret2", "{m}");
    anon.assert_none("the private message", |v| v["pipe"] == "private_room")
        .await;
    anon.close().await;
    auth.close().await;
    app.stop().await;
}

async fn track_pipes_announce_subscribe_and_unsubscribe(engine: Engine) {
    let app = comet_app(engine).await;
    Api::new(&app).set_hash("1", 7, "seven").await;
    let mut watcher = Comet::anonymous(&app, "1").await;
    watcher.subscribe(&["track_room"]).await;
    watcher.sync().await;

    let mut a = Comet::authorized(&app, "1", 7, "seven").await;
    a.subscribe(&["track_room", "web_x"]).await;
    let e = watcher
        .expect("a's arrival", |v| {
            is_track(v, "track_room", "subscription", &a.uuid)
        })
        .await;
    assert_eq!(e["data"], json!({"user_id": 7, "uuid": a.uuid}), "{e}");

    let mut anon = Comet::anonymous(&app, "1").await;
    anon.subscribe(&["track_room"]).await;
    let e = watcher
        .expect("anon's arrival", |v| {
            is_track(v, "track_room", "subscription", &anon.uuid)
        })
        .await;
    assert_eq!(e["data"], json!({"user_id": 0, "uuid": anon.uuid}), "{e}");

    // Dropping it from the set is an unsubscribe.
    a.subscribe(&["web_x"]).await;
    let e = watcher.expect_event("track_room", "unsubscription").await;
    assert_eq!(e["data"], json!({"user_id": 7, "uuid": a.uuid}), "{e}");

    // Disconnecting is an unsubscribe too.
    let anon_uuid = anon.uuid.clone();
    anon.close().await;
    let e = watcher.expect_event("track_room", "unsubscription").await;
    assert_eq!(e["data"], json!({"user_id": 0, "uuid": anon_uuid}), "{e}");

    // Subscribing to non-track pipes announces nothing.
    let mut other = Comet::anonymous(&app, "1").await;
    other.subscribe(&["web_room"]).await;
    other.sync().await;
    watcher
        .assert_none("events from non-track subscriptions", |v| {
            v["pipe"] == "web_room"
        })
        .await;
    let own = watcher.uuid.clone();
    let left: Vec<Value> = watcher
        .drain()
        .into_iter()
        .filter(|v| on_pipe_except_own(v, "track_room", &own))
        .collect();
    assert!(left.is_empty(), "no further track events: {left:?}");
    a.close().await;
    other.close().await;
    watcher.close().await;
    app.stop().await;
}

async fn pipe_log_replays_history_with_flags(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    api.set_history("1", "web_log", 5).await;

    let mut sender = Comet::authorized(&app, "1", 7, "seven").await;
    for i in 1..=4 {
        assert_eq!(
            api.publish("1", "web_log", "api", &format!("m{i}")).await,
            0
        );
    }
    for i in 5..=7 {
        sender
            .send(&format!("web_pipe2\nweb_log\nsock\n*\nm{i}"))
            .await;
        sender.expect_event("_answer_to_web_log", "answer").await;
    }

    let mut reader = Comet::anonymous(&app, "1").await;
    reader.send("pipe_log\nweb_log\n4276493417\n").await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(
            reader
                .expect("a history message", |v| v["history"] == true)
                .await,
        );
    }
    reader
        .assert_none("more than 5 history messages", |v| v["history"] == true)
        .await;
    let data: Vec<&str> = got
        .iter()
        .map(|v| v["data"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        data,
        ["m3", "m4", "m5", "m6", "m7"],
        "the last 5, oldest first"
    );
    for (m, (event, user)) in got.iter().zip([
        ("api", 0),
        ("api", 0),
        ("sock", 7),
        ("sock", 7),
        ("sock", 7),
    ]) {
        assert_eq!(m["pipe"], "web_log", "{m}");
        assert_eq!(m["event"], event, "{m}");
        assert_eq!(m["user_id"], user, "{m}");
        assert_eq!(m["history"], true, "{m}");
        assert_eq!(m["fromQueue"], true, "{m}");
        assert_eq!(m["marker"], "4276493417", "{m}");
        assert_recent_time(m);
    }

    // The API reads the same history.
    let r = api
        .call(Method::GET, "1", "/pipes/web_log/messages", None)
        .await;
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    let texts: Vec<&str> = msgs
        .iter()
        .map(|m| m["message"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(texts, ["m3", "m4", "m5", "m6", "m7"], "{:?}", r.body);

    // A pipe without history enabled replays nothing.
    assert_eq!(api.publish("1", "web_nolog", "e", "x").await, 0);
    reader.send("pipe_log\nweb_nolog\nm9\n").await;
    reader
        .assert_none("history of a pipe without history", |v| v["marker"] == "m9")
        .await;

    // Cleared history replays nothing.
    let r = api
        .call(Method::DELETE, "1", "/pipes/web_log/messages", None)
        .await;
    assert_eq!(r.status, reqwest::StatusCode::NO_CONTENT, "{:?}", r.body);
    reader.send("pipe_log\nweb_log\nm10\n").await;
    reader
        .assert_none("history after DELETE", |v| v["marker"] == "m10")
        .await;
    sender.close().await;
    reader.close().await;
    app.stop().await;
}

async fn pipe_count_counts_web_and_track_subscribers(engine: Engine) {
    let app = comet_app(engine).await;
    Api::new(&app).set_hash("1", 7, "seven").await;
    let mut clients = vec![
        Comet::authorized(&app, "1", 7, "seven").await,
        Comet::anonymous(&app, "1").await,
        Comet::anonymous(&app, "1").await,
    ];
    for c in clients.iter_mut() {
        c.subscribe(&["web_count", "track_count"]).await;
        c.sync().await;
    }
    let mut asker = Comet::anonymous(&app, "1").await;
    for (pipe, marker, n) in [("web_count", "mc1", 3), ("track_count", "mc2", 3)] {
        asker.send(&format!("pipe_count\n{pipe}\n{marker}\n")).await;
        let r = asker
            .expect("the count", move |v| v["marker"] == marker)
            .await;
        assert_eq!(
            r,
            json!({"pipe": "_answer_pipe_count", "event": "user_in_pipe", "marker": marker,
                   "data": {"user_in_pipe": n}}),
        );
    }
    asker.send("pipe_count\nweb_empty\nmc3\n").await;
    let r = asker.expect("the count", |v| v["marker"] == "mc3").await;
    assert_eq!(r["data"]["user_in_pipe"], 0, "{r}");

    // The asker watches track_count to see the close processed.
    asker.subscribe(&["track_count"]).await;
    asker.sync().await;
    // Leaving lowers the count: one closes, one unsubscribes.
    let gone = clients.pop().expect("client");
    let gone_uuid = gone.uuid.clone();
    gone.close().await;
    asker
        .expect("the closed socket's unsubscription", |v| {
            is(v, "track_count", "unsubscription") && v["data"]["uuid"] == gone_uuid.as_str()
        })
        .await;
    clients[1].subscribe(&[]).await;
    clients[1].sync().await;
    let mut n = u64::MAX;
    for i in 0..50 {
        let marker = format!("mcl{i}");
        asker
            .send(&format!("pipe_count\nweb_count\n{marker}\n"))
            .await;
        let r = asker
            .expect("the count", |v| v["marker"] == marker.as_str())
            .await;
        n = r["data"]["user_in_pipe"].as_u64().unwrap_or(u64::MAX);
        if n == 1 {
            break;
        }
    }
    assert_eq!(n, 1, "one subscriber left");

    // Only web_* and track_* pipes may be counted.
    asker.send("pipe_count\nprivate_x\nmc4\n").await;
    asker
        .assert_none("a count for a private_ pipe", |v| {
            v["pipe"] == "_answer_pipe_count" && v["marker"] == "mc4"
        })
        .await;
    for c in clients {
        c.close().await;
    }
    asker.close().await;
    app.stop().await;
}

async fn track_pipe_users_lists_authorised_subscribers(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    api.set_hash("1", 8, "eight").await;
    let mut a = Comet::authorized(&app, "1", 7, "seven").await;
    let mut b = Comet::authorized(&app, "1", 8, "eight").await;
    let mut anon = Comet::anonymous(&app, "1").await;
    for c in [&mut a, &mut b, &mut anon] {
        c.subscribe(&["track_online"]).await;
        c.sync().await;
    }
    let mut asker = Comet::anonymous(&app, "1").await;
    asker.send("track_pipe_users\ntrack_online\nmt1").await;
    let r = asker.expect("the list", |v| v["marker"] == "mt1").await;
    assert_eq!(r["pipe"], "_answer", "{r}");
    assert_eq!(r["event"], "answer", "{r}");
    let mut users: Vec<(u64, String)> = r["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is an array: {r}"))
        .iter()
        .map(|u| {
            (
                u["user_id"].as_u64().unwrap_or(u64::MAX),
                u["uuid"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    users.sort();
    assert_eq!(
        users,
        vec![(7, a.uuid.clone()), (8, b.uuid.clone())],
        "authorised subscribers only: {r}"
    );

    // The server API agrees.
    let info = api.pipe_info("1", "track_online").await;
    assert_eq!(info["name"], "track_online", "{info}");
    assert_eq!(info["users"], 3, "{info}");
    let mut ids: Vec<u64> = info["authorizedUsers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ids.sort();
    assert_eq!(ids, vec![7, 8], "{info}");

    // An empty track pipe: an empty list.
    asker.send("track_pipe_users\ntrack_nobody\nmt2").await;
    let r = asker.expect("the list", |v| v["marker"] == "mt2").await;
    assert_eq!(r["data"], json!([]), "{r}");
    for c in [a, b, anon, asker] {
        c.close().await;
    }
    app.stop().await;
}

async fn user_status_and_user_data_replies(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    api.set_data("1", 7, "Ann Lee, admin").await;
    let mut asker = Comet::anonymous(&app, "1").await;

    asker.send("user_status\n7").await;
    let r = asker
        .expect_event("_answer_user_status", "user_status_7")
        .await;
    assert!(r["data"]["data"].is_number(), "{r}");
    assert_eq!(r["data"]["data"], r["data"]["last_online_time"], "{r}");

    let seven = Comet::authorized(&app, "1", 7, "seven").await;
    asker.send("user_status\n7").await;
    let r = asker
        .expect_event("_answer_user_status", "user_status_7")
        .await;
    assert!(r["data"]["last_online_time"].is_number(), "{r}");
    assert_eq!(r["data"]["data"], r["data"]["last_online_time"], "{r}");
    seven.close().await;

    asker.send("user_data\nmd1\n7").await;
    let r = asker.expect("user_data", |v| v["marker"] == "md1").await;
    assert_eq!(
        r,
        json!({"pipe": "_answer", "event": "answer", "marker": "md1",
               "data": {"user_id": 7, "user_data": "Ann Lee, admin"}})
    );

    // Removed data is no longer served.
    let r = api.call(Method::DELETE, "1", "/users/7/data", None).await;
    assert_eq!(r.status, reqwest::StatusCode::NO_CONTENT, "{:?}", r.body);
    asker.send("user_data\nmd2\n7").await;
    let r = asker.expect("user_data", |v| v["marker"] == "md2").await;
    assert_ne!(r["data"]["user_data"], "Ann Lee, admin", "{r}");
    assert_eq!(r["data"]["user_id"], 7, "{r}");
    asker.close().await;
    app.stop().await;
}

async fn statistics_is_accepted_and_ignored(engine: Engine) {
    let app = comet_app(engine).await;
    let mut c = Comet::anonymous(&app, "1").await;
    c.send(
        "statistics\n{\"url\":\"https://example.com/chat\",\"dev_id\":\"1\",\"version\":\"4.02\"}",
    )
    .await;
    c.send("statistics\nnot even json").await;
    c.assert_none("any reply to statistics", |_| true).await;
    c.close().await;
    app.stop().await;
}

async fn unknown_command_closes_the_connection(engine: Engine) {
    let app = comet_app(engine).await;
    for frame in ["bogus_command\nweb_chat", "hello", "Subscription\nweb_chat"] {
        let mut c = Comet::anonymous(&app, "1").await;
        c.sync().await;
        c.send(frame).await;
        c.expect_closed(&format!("unknown command {frame:?}")).await;
    }
    // Other connections are unaffected.
    let mut c = Comet::anonymous(&app, "1").await;
    c.sync().await;
    c.close().await;
    app.stop().await;
}

both_engines!(json_text_reads_the_same_on_every_path);

/// A message whose text happens to be JSON reaches clients in one shape,
/// whichever way it travelled: live from a socket, live from the API, from
/// history, to a user live, and to a user from the offline queue.
async fn json_text_reads_the_same_on_every_path(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 5, "five").await;
    api.set_history("1", "web_j", 10).await;
    let text = "{\"text\":\"hi\",\"n\":1}";
    let mut sender = Comet::anonymous(&app, "1").await;
    let mut sub = Comet::anonymous(&app, "1").await;
    sub.subscribe(&["web_j"]).await;
    sub.sync().await;

    sender
        .send(&format!("web_pipe2\nweb_j\nsock\n*\n{text}"))
        .await;
    let socket_live = sub.expect("socket live", |v| v["event"] == "sock").await["data"].clone();
    assert_eq!(socket_live, text, "web_pipe2 delivers the message text");

    api.publish("1", "web_j", "api", text).await;
    let api_live = sub.expect("api live", |v| v["event"] == "api").await["data"].clone();

    sub.send("pipe_log\nweb_j\nh\n").await;
    let h1 = sub.expect("history 1", |v| v["marker"] == "h").await["data"].clone();
    let h2 = sub.expect("history 2", |v| v["marker"] == "h").await["data"].clone();

    let mut watcher = Comet::anonymous(&app, "1").await;
    watcher.subscribe(&["user_status_5"]).await;
    watcher.sync().await;
    let mut five = Comet::authorized(&app, "1", 5, "five").await;
    five.sync().await;
    api.send_to_user("1", 5, "live", text).await;
    let user_live = five.expect("user live", |v| v["pipe"] == "msg").await["data"].clone();
    five.close().await;
    // Offline for sure before queueing.
    watcher.expect_event("user_status_5", "offline").await;
    let r = api.send_to_user("1", 5, "queued", text).await;
    assert_eq!(r["queued"], true, "{r}");
    let mut five = Comet::authorized(&app, "1", 5, "five").await;
    let user_queued = five.expect("user queued", |v| v["pipe"] == "msg").await["data"].clone();

    let all = [
        ("API publish", api_live),
        ("history of the socket publish", h1),
        ("history of the API publish", h2),
        ("private live", user_live),
        ("private from the queue", user_queued),
    ];
    for (path, data) in all {
        assert_eq!(
            data, socket_live,
            "{path} must present the text as web_pipe2 does"
        );
    }
    for c in [sender, sub, five, watcher] {
        c.close().await;
    }
    app.stop().await;
}

/// Commands arriving together (one read holds them all) are each handled
/// once, in order, and none is lost while an earlier one is answered.
async fn pipelined_commands_are_answered_in_order(engine: Engine) {
    let app = comet_app(engine).await;
    let mut a = Comet::anonymous(&app, "1").await;
    let mut b = Comet::anonymous(&app, "1").await;
    b.subscribe(&["web_pipelined"]).await;
    b.sync().await;
    // Within the default burst of 100 commands; the publications interleave
    // with count queries, so a command handled twice or skipped shows.
    let mut batch = Vec::new();
    for i in 0..45 {
        batch.push(format!("pipe_count\nweb_pipelined\np{i}\n"));
        batch.push(format!("web_pipe2\nweb_pipelined\nev\n0\nn{i}"));
    }
    a.send_pipelined(&batch).await;
    for i in 0..45 {
        let count = a
            .expect("a count", |v| v["pipe"] == "_answer_pipe_count")
            .await;
        assert_eq!(count["marker"], format!("p{i}"), "counts in order: {count}");
        assert_eq!(count["data"]["user_in_pipe"], 1, "{count}");
        let answer = a
            .expect("a publication answer", |v| {
                v["pipe"] == "_answer_to_web_pipelined"
            })
            .await;
        assert_eq!(answer["data"]["number_messages"], 1, "{answer}");
        let got = b.expect("a publication", on("web_pipelined")).await;
        assert_eq!(
            got["data"],
            format!("n{i}"),
            "publications in order, each once: {got}"
        );
    }
    a.sync().await;
    b.assert_none("a 46th publication", on("web_pipelined"))
        .await;
    a.close().await;
    b.close().await;
    app.stop().await;
}
