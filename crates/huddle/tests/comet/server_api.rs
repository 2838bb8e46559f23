//! The comet server API over HTTP: `/api/comet/{devId}/...` with
//! `Authorization: Bearer <comet.password>`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    the_api_needs_the_comet_password,
    pipe_endpoints,
    user_endpoints,
    the_api_validates_its_input,
);

async fn the_api_needs_the_comet_password(engine: Engine) {
    let app = comet_app(engine).await;
    let paths: [(Method, &str, Option<Value>); 6] = [
        (
            Method::POST,
            "/api/comet/1/pipes/web_x/messages",
            Some(json!({"event": "e", "message": "m"})),
        ),
        (Method::GET, "/api/comet/1/pipes/web_x", None),
        (
            Method::PUT,
            "/api/comet/1/users/5/auth",
            Some(json!({"hash": "abc"})),
        ),
        (Method::GET, "/api/comet/1/users/5/time", None),
        (
            Method::POST,
            "/api/comet/1/users/5/messages",
            Some(json!({"event": "e", "message": "m"})),
        ),
        (
            Method::POST,
            "/api/comet/1/revoked-tokens",
            Some(json!({"token": "t"})),
        ),
    ];
    let wrong = format!("{}x", password());
    let user = app.signup("Ann").await;
    for (method, path, body) in paths {
        for token in [None, Some(wrong.as_str()), Some(user.token.as_str())] {
            let r = app.call(method.clone(), path, token, body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {:?}",
                r.body
            );
            assert!(
                !r.code().is_empty() && r.body["error"]["message"].is_string(),
                "the error envelope: {:?}",
                r.body
            );
        }
    }
    // The refused write changed nothing.
    let c = Comet::connect(&app, "1", "5", "abc").await;
    assert!(!c.authorized_flag(), "{}", c.info);
    c.close().await;
    app.stop().await;
}

async fn pipe_endpoints(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    api.set_hash("1", 7, "seven").await;
    let mut a = Comet::authorized(&app, "1", 7, "seven").await;
    let mut b = Comet::anonymous(&app, "1").await;
    for c in [&mut a, &mut b] {
        c.subscribe(&["web_news"]).await;
        c.sync().await;
    }

    // Publish: every subscriber, user_id 0.
    assert_eq!(api.publish("1", "web_news", "headline", "extra!").await, 2);
    for c in [&mut a, &mut b] {
        let m = c
            .expect("the API message", |v| v["pipe"] == "web_news")
            .await;
        assert_eq!(m["event"], "headline", "{m}");
        assert_eq!(m["data"], "extra!", "{m}");
        assert_eq!(m["user_id"], 0, "{m}");
        assert_recent_time(&m);
    }
    // The API may publish to any valid pipe name, not only web_*.
    assert_eq!(api.publish("1", "news", "e", "m").await, 0);
    assert_eq!(api.publish("1", "private_x", "e", "m").await, 0);

    // Pipe info.
    let info = api.pipe_info("1", "web_news").await;
    assert_eq!(
        info,
        json!({"name": "web_news", "users": 2, "authorizedUsers": [7]})
    );
    let info = api.pipe_info("1", "web_nobody").await;
    assert_eq!(
        info,
        json!({"name": "web_nobody", "users": 0, "authorizedUsers": []})
    );

    // Settings.
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/settings", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"length": 0}), "no history by default");
    api.set_history("1", "web_news", 3).await;
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/settings", None)
        .await;
    assert_eq!(r.body, json!({"length": 3}));
    api.set_history("1", "web_news", 99).await;
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/settings", None)
        .await;
    assert_eq!(r.body, json!({"length": 99}));
    api.set_history("1", "web_news", 3).await;

    // History: the last 3, oldest first, with userId and time.
    for i in 1..=4 {
        api.publish("1", "web_news", "e", &format!("n{i}")).await;
    }
    a.send("web_pipe2\nweb_news\nsock\n*\nn5").await;
    a.expect_event("_answer_to_web_news", "answer").await;
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/messages", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let msgs = r.body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{{messages: [...]}}: {:?}", r.body))
        .clone();
    let texts: Vec<&str> = msgs
        .iter()
        .map(|m| m["message"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(texts, ["n3", "n4", "n5"], "{:?}", r.body);
    assert_eq!(msgs[0]["event"], "e");
    assert_eq!(msgs[0]["userId"], 0);
    assert_eq!(msgs[2]["event"], "sock");
    assert_eq!(msgs[2]["userId"], 7, "a socket publish keeps its sender");
    for m in &msgs {
        let t = m["time"].as_i64().unwrap_or(0);
        assert!((t - now()).abs() < 120, "unix time: {m}");
    }
    // DELETE messages clears; DELETE settings disables.
    let r = api
        .call(Method::DELETE, "1", "/pipes/web_news/messages", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/messages", None)
        .await;
    assert_eq!(r.body, json!({"messages": []}));
    let r = api
        .call(Method::DELETE, "1", "/pipes/web_news/settings", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/settings", None)
        .await;
    assert_eq!(r.body, json!({"length": 0}));
    api.publish("1", "web_news", "e", "unlogged").await;
    let r = api
        .call(Method::GET, "1", "/pipes/web_news/messages", None)
        .await;
    assert_eq!(r.body, json!({"messages": []}), "history disabled");

    a.close().await;
    b.close().await;
    app.stop().await;
}

async fn user_endpoints(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);

    // auth
    let r = api.call(Method::GET, "1", "/users/5/auth", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no hash yet: {:?}", r.body);
    let hash32 = "A".repeat(31) + "=";
    api.set_hash("1", 5, &hash32).await;
    let r = api.call(Method::GET, "1", "/users/5/auth", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({ "hash": hash32 }));
    let r = api.call(Method::DELETE, "1", "/users/5/auth", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api.call(Method::GET, "1", "/users/5/auth", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    api.set_hash("1", 5, "five").await;

    // data
    api.set_data("1", 5, "{\"name\":\"Ann\"}").await;
    let r = api.call(Method::GET, "1", "/users/5/data", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"data": "{\"name\":\"Ann\"}"}));
    let r = api.call(Method::DELETE, "1", "/users/5/data", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = api.call(Method::GET, "1", "/users/5/data", None).await;
    assert!(
        r.status == StatusCode::NOT_FOUND || r.body["data"].is_null(),
        "deleted data: {:?}",
        r.body
    );

    // messages and time
    assert_eq!(api.user_time("1", 5).await, -1);
    let r = api.send_to_user("1", 5, "e", "one").await;
    assert_eq!(r, json!({"delivered": 0, "queued": true}));
    api.send_to_user("1", 5, "e2", "two").await;
    let r = api.call(Method::GET, "1", "/users/5/messages", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let msgs = r.body["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 2, "{:?}", r.body);
    assert_eq!(
        (msgs[0]["event"].clone(), msgs[0]["message"].clone()),
        (json!("e"), json!("one")),
        "{:?}",
        r.body
    );
    assert_eq!(msgs[1]["message"], "two", "{:?}", r.body);

    let mut c = Comet::authorized(&app, "1", 5, "five").await;
    c.expect("one", |v| v["data"] == "one").await;
    c.expect("two", |v| v["data"] == "two").await;
    assert_eq!(api.user_time("1", 5).await, 0);
    let r = api.send_to_user("1", 5, "e", "live").await;
    assert_eq!(r, json!({"delivered": 1, "queued": false}));
    c.expect("live", |v| v["data"] == "live").await;
    c.close().await;

    // revoked tokens: add, remove, idempotent.
    for method in [Method::POST, Method::POST, Method::DELETE, Method::DELETE] {
        let r = api
            .call(
                method.clone(),
                "1",
                "/revoked-tokens",
                Some(json!({"token": "a.b.c"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{method}: {:?}", r.body);
    }
    app.stop().await;
}

async fn the_api_validates_its_input(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    let long65 = "x".repeat(65);
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::PUT,
            "/users/5/auth".into(),
            Some(json!({"hash": "A".repeat(33)})),
            "a 33-char hash",
        ),
        (
            Method::PUT,
            "/users/5/auth".into(),
            Some(json!({"hash": "bad hash!"})),
            "a hash with bad characters",
        ),
        (
            Method::PUT,
            "/users/5/auth".into(),
            Some(json!({})),
            "a missing hash",
        ),
        (
            Method::PUT,
            "/pipes/web_x/settings".into(),
            Some(json!({"length": 100})),
            "history longer than 99",
        ),
        (
            Method::PUT,
            "/pipes/web_x/settings".into(),
            Some(json!({"length": -1})),
            "negative history",
        ),
        (
            Method::POST,
            format!("/pipes/{long65}/messages"),
            Some(json!({"event": "e", "message": "m"})),
            "a 65-char pipe",
        ),
        (
            Method::POST,
            "/pipes/web_x/messages".into(),
            Some(json!({"message": "m"})),
            "a missing event",
        ),
        (
            Method::POST,
            "/pipes/web_x/messages".into(),
            Some(json!({"event": "bad event!", "message": "m"})),
            "a bad event name",
        ),
        (
            Method::POST,
            "/users/5/messages".into(),
            Some(json!({"event": "e"})),
            "a missing message",
        ),
        (
            Method::POST,
            "/revoked-tokens".into(),
            Some(json!({})),
            "a missing token",
        ),
    ];
    for (method, path, body, why) in cases {
        let r = api.call(method.clone(), "1", &path, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{why}: {method} {path}: {:?}",
            r.body
        );
        assert!(
            !r.code().is_empty(),
            "{why}: the error envelope: {:?}",
            r.body
        );
    }
    let r = api
        .call(Method::GET, "1", "/users/not-a-number/time", None)
        .await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
        "a non-numeric user id: {:?}",
        r.body
    );
    // A valid hash at the edge is accepted.
    api.set_hash("1", 5, &"z".repeat(32)).await;
    app.stop().await;
}
