//! Request bodies: malformed JSON, wrong types, missing fields, missing or
//! wrong Content-Type, oversized bodies and unknown fields.

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{
    assert_error, my_workspaces, names_of, new_email, parse_body, raw, setup, GET, JSON, PATCH,
    POST,
};
use crate::both_engines;
use crate::common::*;

both_engines!(
    malformed_json_wrong_types_and_missing_fields_are_400,
    a_json_route_without_json_content_type_is_415,
    oversized_bodies_are_413_and_the_server_keeps_serving,
    unknown_fields_are_ignored,
);

/// POSTs `body` over a plain TCP connection, reading the answer while still
/// sending. A server may answer 413 before the body is through and then stop
/// reading; reqwest (hyper's client) then reports the failed write (EPIPE)
/// instead of the answer, so the answer is read here by hand.
async fn upload(app: &TestApp, path: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n",
        body.len()
    );
    // The write half is handed back, not dropped: a FIN would end the
    // exchange before the server answers.
    let writer = tokio::spawn(async move {
        // Write errors are expected once the server has answered and closed.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(64 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        wr
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = rd.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("POST {path}: no answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let name = reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).expect("name");
            headers.insert(name, HeaderValue::from_str(v.trim()).expect("value"));
        }
    }
    assert!(
        !headers.contains_key("transfer-encoding"),
        "POST {path}: chunked answer"
    );
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(rest.len());
    let status = StatusCode::from_u16(code).expect("status code");
    Reply {
        status,
        body: parse_body(&rest[..len.min(rest.len())]),
        headers,
    }
}

async fn malformed_json_wrong_types_and_missing_fields_are_400(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, bob, ws, ch) = setup(&app).await;
    let wss = "/api/workspaces".to_owned();
    let chans = format!("/api/workspaces/{ws}/channels");
    let member = format!("/api/workspaces/{ws}/members/{}", bob.id);
    let ch_members = format!("/api/channels/{ch}/members");
    let ch_member = format!("/api/channels/{ch}/members/{}", bob.id);
    let (patch_ws, patch_ch) = (
        format!("/api/workspaces/{ws}"),
        format!("/api/channels/{ch}"),
    );
    let deep = format!("{{\"name\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    // As Ann.
    let cases: Vec<(Method, &str, &str)> = vec![
        // Not JSON.
        (POST, &wss, r#"{"name":"#),
        (POST, &wss, "not json"),
        (POST, &wss, ""),
        (POST, &wss, r#"{"name":"x"} trailing"#),
        (POST, &wss, r#"{"name":"x",}"#),
        (POST, &wss, "{'name':'x'}"),
        (POST, &wss, &deep),
        // Wrong types.
        (POST, &wss, r#"{"name": 5}"#),
        (POST, &wss, r#"{"name": null}"#),
        (POST, &wss, r#"{"name": {"first": "x"}}"#),
        (POST, &wss, r#""x""#),
        (POST, &wss, "[]"),
        (POST, &chans, r#"{"name":"x","isPrivate":"yes"}"#),
        (POST, &chans, r#"{"name":"x","isPrivate":1}"#),
        (POST, &chans, r#"{"name":"x","users":"abc"}"#),
        (POST, &chans, r#"{"name":"x","users":[1]}"#),
        (POST, &chans, r#"{"name":"x","description":5}"#),
        (PATCH, &patch_ws, r#"{"name":5}"#),
        (PATCH, &patch_ws, r#"{"canUsersInvite":"yes"}"#),
        (PATCH, &member, r#"{"role":"owner"}"#),
        (PATCH, &member, r#"{"role":1}"#),
        (PATCH, &patch_ch, r#"{"name":false}"#),
        (POST, &ch_members, r#"{"users":[1,2]}"#),
        (POST, &ch_members, r#"{"users":null}"#),
        (PATCH, &ch_member, r#"{"role":"guest"}"#),
        (PATCH, "/api/me", r#"{"name":[]}"#),
        (PATCH, "/api/me", r#"{"lang":5}"#),
        // Missing required fields.
        (POST, &wss, "{}"),
        (POST, &chans, r#"{"isPrivate":true}"#),
        (PATCH, &member, "{}"),
        (POST, &ch_members, "{}"),
        (PATCH, &ch_member, "{}"),
        (
            POST,
            "/api/me/password",
            r#"{"oldPassword":"correct horse"}"#,
        ),
    ];
    for (m, path, body) in cases {
        let ctx = format!("{m} {path} {:?}", body.chars().take(60).collect::<String>());
        let r = raw(&app, m, path, Some(&ann.token), JSON, body.into()).await;
        assert_error(&r, 400, "invalid_body", &ctx);
    }
    // Anonymous routes.
    let anonymous = [
        (
            "/api/auth/signup",
            r#"{"email":1,"password":"correct horse","name":"x"}"#,
        ),
        (
            "/api/auth/signup",
            r#"{"email":"new@example.com","name":"x"}"#,
        ),
        ("/api/auth/signin", r#"{"email":"new@example.com"}"#),
        ("/api/auth/refresh", r#"{"refreshToken":5}"#),
        ("/api/auth/refresh", "{}"),
    ];
    for (path, body) in anonymous {
        let r = raw(&app, POST, path, None, JSON, body.into()).await;
        assert_error(&r, 400, "invalid_body", &format!("{path} {body}"));
    }
    // Not UTF-8.
    let r = raw(
        &app,
        POST,
        &wss,
        Some(&ann.token),
        JSON,
        b"{\"name\":\"\xff\xfe\"}".to_vec(),
    )
    .await;
    assert_error(&r, 400, "invalid_body", "invalid UTF-8");
    // Well-formed but invalid values are validation errors naming the field.
    let r = app
        .post(
            &chans,
            &ann.token,
            json!({"name": "x", "users": ["not-a-uuid"]}),
        )
        .await;
    assert_error(&r, 400, "validation_failed", "users: not a uuid");
    assert_eq!(r.body["error"]["field"], "users");

    // Nothing was created or changed.
    assert_eq!(my_workspaces(&app, &ann).await, vec!["Team"]);
    assert_eq!(
        names_of(&app.get(&chans, &ann.token).await.body["channels"]),
        vec!["general"]
    );
    let members = app
        .get(&format!("/api/workspaces/{ws}/members"), &ann.token)
        .await;
    let bob_row = members.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["id"] == bob.id);
    assert_eq!(bob_row.map(|m| m["role"].clone()), Some(json!("user")));
    assert_eq!(app.get("/api/me", &ann.token).await.body["name"], "Ann");
    app.stop().await;
}

async fn a_json_route_without_json_content_type_is_415(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, _bob, ws, ch) = setup(&app).await;
    let body = br#"{"name":"x"}"#.to_vec();
    let (wss, chans) = (
        "/api/workspaces".to_owned(),
        format!("/api/workspaces/{ws}/channels"),
    );
    let (patch_ws, patch_ch) = (
        format!("/api/workspaces/{ws}"),
        format!("/api/channels/{ch}"),
    );
    let cases: Vec<(Method, &str, Option<&str>, Vec<u8>)> = vec![
        (POST, &wss, None, body.clone()),
        (POST, &wss, None, vec![]),
        (POST, &wss, Some("text/plain"), body.clone()),
        (
            POST,
            &wss,
            Some("application/x-www-form-urlencoded"),
            b"name=x".to_vec(),
        ),
        (
            POST,
            &wss,
            Some("multipart/form-data; boundary=x"),
            body.clone(),
        ),
        (POST, &chans, None, body.clone()),
        (PATCH, &patch_ws, None, body.clone()),
        (PATCH, &patch_ch, Some("text/json-ish"), body.clone()),
        (PATCH, "/api/me", None, body.clone()),
    ];
    for (m, path, ct, b) in cases {
        let ctx = format!("{m} {path} content-type {ct:?}");
        let r = raw(&app, m, path, Some(&ann.token), ct, b).await;
        assert_error(&r, 415, "unsupported_media_type", &ctx);
    }
    let signup = json!({"email": new_email(), "password": "correct horse", "name": "C"});
    let r = raw(
        &app,
        POST,
        "/api/auth/signup",
        None,
        None,
        signup.to_string().into(),
    )
    .await;
    assert_error(
        &r,
        415,
        "unsupported_media_type",
        "signup without content-type",
    );
    // The JSON media type with parameters is JSON.
    let r = raw(
        &app,
        POST,
        &wss,
        Some(&ann.token),
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        my_workspaces(&app, &ann).await,
        vec!["Team", "x"],
        "only the JSON request counted"
    );
    assert_eq!(app.get(&patch_ch, &ann.token).await.body["name"], "general");
    app.stop().await;
}

async fn oversized_bodies_are_413_and_the_server_keeps_serving(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let limit = app.config.limits.max_body_bytes;
    // `{"name":"aaa…"}`, `len` bytes in all.
    let body = |len: usize| {
        let mut b = br#"{"name":""#.to_vec();
        b.resize(len - 2, b'a');
        b.extend_from_slice(br#""}"#);
        b
    };
    let ten_mib = 10 * 1024 * 1024;
    let t = Some(ann.token.as_str());
    for (len, path, token) in [
        (ten_mib, "/api/workspaces", t),
        (limit + 1, "/api/workspaces", t),
        (ten_mib, "/api/auth/signup", None),
    ] {
        let r = upload(&app, path, token, body(len)).await;
        assert_error(
            &r,
            413,
            "payload_too_large",
            &format!("{len} bytes to {path}"),
        );
        assert_eq!(
            app.call(GET, "/healthz", None, None).await.status,
            StatusCode::OK
        );
    }
    // Just under the limit the body is read, and the name is then too long.
    let r = upload(&app, "/api/workspaces", t, body(limit - 16)).await;
    assert_error(&r, 400, "validation_failed", "just under the body limit");
    // The server keeps serving, on new connections and on the client's pool.
    assert_eq!(
        app.call(GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    let r = app
        .post("/api/workspaces", &ann.token, json!({"name": "after"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(my_workspaces(&app, &ann).await, vec!["after"]);
    app.stop().await;
}

/// The documented policy: unknown fields are ignored (and never mass-assigned).
async fn unknown_fields_are_ignored(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, bob, ws, _ch) = setup(&app).await;
    let r = app
        .post(
            "/api/workspaces",
            &ann.token,
            json!({"name": "x", "bogus": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (StatusCode::CREATED, Some("x")),
        "{}",
        r.body
    );
    assert!(r.body.get("bogus").is_none());
    let other = r.body["id"].as_str().expect("id").to_owned();
    // Even a deeply nested unknown field is skipped.
    let deep = format!(
        "{{\"bogus\": {}{}, \"name\": \"deep\"}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let r = raw(
        &app,
        POST,
        "/api/workspaces",
        Some(&ann.token),
        JSON,
        deep.into(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (StatusCode::CREATED, Some("deep")),
        "{}",
        r.body
    );

    let body =
        json!({"name": "c", "bogus": {"nested": [1]}, "workspaceId": other, "creatorId": bob.id});
    let r = app
        .post(&format!("/api/workspaces/{ws}/channels"), &ann.token, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["workspaceId"].as_str(), r.body["creatorId"].as_str()),
        (Some(&*ws), Some(&*ann.id))
    );
    let body = json!({"name": "y", "creatorId": bob.id, "id": other});
    let r = app
        .patch(&format!("/api/workspaces/{ws}"), &ann.token, body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["id"].as_str(), r.body["creatorId"].as_str()),
        (Some(&*ws), Some(&*ann.id))
    );
    let body = json!({"name": "Robert", "email": "takeover@example.com", "activated": false, "id": ann.id});
    assert_eq!(
        app.patch("/api/me", &bob.token, body).await.status,
        StatusCode::OK
    );
    let me = app.get("/api/me", &bob.token).await;
    assert_eq!(
        (me.body["id"].as_str(), me.body["name"].as_str()),
        (Some(&*bob.id), Some("Robert"))
    );
    assert_eq!(me.body["email"], bob.email);
    let body = json!({"role": "moderator", "userId": ann.id});
    let r = app
        .patch(
            &format!("/api/workspaces/{ws}/members/{}", bob.id),
            &ann.token,
            body,
        )
        .await;
    assert_eq!(
        (r.status, r.body["id"].as_str()),
        (StatusCode::OK, Some(&*bob.id))
    );
    assert_eq!(r.body["role"], "moderator");
    let body =
        json!({"email": new_email(), "password": "correct horse", "name": "E", "role": "admin"});
    assert_eq!(
        app.call(POST, "/api/auth/signup", None, Some(body))
            .await
            .status,
        StatusCode::CREATED
    );
    app.stop().await;
}
