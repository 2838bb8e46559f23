//! Bad input over real HTTP: malformed JSON, wrong types, missing fields,
//! missing Content-Type, over-long names, oversized bodies, unknown fields,
//! SQL metacharacters, NUL characters, unknown routes and methods, malformed ids
//! and bad Authorization headers. Every error must be the envelope
//! `{"error": {"code", "message"}}` with the documented status.
//! (Expired tokens are covered in `accounts.rs`.)

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::common::*;

both_engines!(
    malformed_json_wrong_types_and_missing_fields_are_400,
    a_json_route_without_json_content_type_is_415,
    overlong_and_empty_names_are_validation_failed,
    oversized_bodies_are_413_and_the_server_keeps_serving,
    unknown_fields_are_ignored,
    sql_metacharacters_are_stored_verbatim,
    nul_characters_are_never_a_500,
    unknown_routes_wrong_methods_and_malformed_ids,
    bad_authorization_is_401,
);

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;
const JSON: Option<&str> = Some("application/json");

/// Sends raw bytes with an optional token and Content-Type.
async fn raw(
    app: &TestApp,
    m: Method,
    path: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = app.http.request(m.clone(), app.url(path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = ct {
        req = req.header(CONTENT_TYPE, ct);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{m} {path}: request failed: {e:?}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    Reply {
        status,
        body: parse_body(&text),
        headers,
    }
}

fn parse_body(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    }
}

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

/// Checks status, code and the envelope's shape: `{"error": {"code", "message"}}`.
fn assert_error(r: &Reply, status: u16, code: &str, ctx: &str) {
    assert_eq!(r.status.as_u16(), status, "{ctx}: {}", r.body);
    assert_eq!(r.code(), code, "{ctx}: {}", r.body);
    let message = r.body["error"]["message"].as_str();
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{ctx}: no message: {}",
        r.body
    );
    assert_eq!(
        r.body.as_object().map(|o| o.len()),
        Some(1),
        "{ctx}: not a bare envelope: {}",
        r.body
    );
    let ct = r
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: content-type {ct:?}"
    );
}

/// Ann (admin) with a workspace "Team", a public channel "general" in it, and Bob
/// as a member of both.
async fn setup(app: &TestApp) -> (TestUser, TestUser, String, String) {
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    let ch = app.channel(&ann, &ws, "general", false, &[&bob]).await;
    (ann, bob, ws, ch)
}

/// Sorted `name`s of a list.
fn names_of(list: &Value) -> Vec<String> {
    let items = list.as_array().expect("list");
    let mut v: Vec<String> = items
        .iter()
        .map(|x| x["name"].as_str().expect("name").to_owned())
        .collect();
    v.sort();
    v
}

async fn my_workspaces(app: &TestApp, user: &TestUser) -> Vec<String> {
    names_of(&app.get("/api/workspaces", &user.token).await.body["workspaces"])
}

fn new_email() -> String {
    format!("new-{}@example.com", uuid::Uuid::new_v4().simple())
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

async fn overlong_and_empty_names_are_validation_failed(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, _bob, ws, ch) = setup(&app).await;
    let long = "a".repeat(101);
    let email = new_email();
    let (chans, patch_ws, patch_ch) = (
        format!("/api/workspaces/{ws}/channels"),
        format!("/api/workspaces/{ws}"),
        format!("/api/channels/{ch}"),
    );
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (POST, "/api/workspaces", json!({"name": long}), "name"),
        (
            POST,
            "/api/workspaces",
            json!({"name": "é".repeat(101)}),
            "name",
        ),
        (POST, "/api/workspaces", json!({"name": ""}), "name"),
        (POST, "/api/workspaces", json!({"name": "   "}), "name"),
        (POST, "/api/workspaces", json!({"name": "a\u{7}b"}), "name"),
        (POST, "/api/workspaces", json!({"name": "a\u{0}b"}), "name"),
        (POST, &chans, json!({"name": long}), "name"),
        (
            POST,
            &chans,
            json!({"name": "ok", "description": "d".repeat(151)}),
            "description",
        ),
        (PATCH, &patch_ws, json!({"name": long}), "name"),
        (PATCH, &patch_ch, json!({"name": long}), "name"),
        (PATCH, "/api/me", json!({"name": long}), "name"),
    ];
    for (m, path, body, field) in cases {
        let ctx = format!(
            "{m} {path} {}",
            body.to_string().chars().take(60).collect::<String>()
        );
        let r = app.call(m, path, Some(&ann.token), Some(body)).await;
        assert_error(&r, 400, "validation_failed", &ctx);
        assert_eq!(r.body["error"]["field"], field, "{ctx}");
    }
    let signup = json!({"email": email, "password": "correct horse", "name": long});
    let r = app.call(POST, "/api/auth/signup", None, Some(signup)).await;
    assert_error(&r, 400, "validation_failed", "signup with a long name");
    assert_eq!(r.body["error"]["field"], "name");
    // Nothing changed; the signup did not happen.
    assert_eq!(my_workspaces(&app, &ann).await, vec!["Team"]);
    assert_eq!(app.get(&patch_ch, &ann.token).await.body["name"], "general");
    assert_eq!(app.get("/api/me", &ann.token).await.body["name"], "Ann");
    let signin = json!({"email": email, "password": "correct horse"});
    let r = app.call(POST, "/api/auth/signin", None, Some(signin)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // Exactly 100 characters (of any width) is fine.
    for name in ["a".repeat(100), "é".repeat(100)] {
        let r = app
            .post("/api/workspaces", &ann.token, json!({"name": name}))
            .await;
        assert_eq!(
            (r.status, r.body["name"].as_str()),
            (StatusCode::CREATED, Some(name.as_str()))
        );
    }
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

async fn sql_metacharacters_are_stored_verbatim(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let nasty = [
        "Robert'); DROP TABLE users;--",
        "%_\"",
        "' OR '1'='1",
        "\\'; DELETE FROM workspaces; --",
        "x\"; DROP TABLE channels; --",
        "$1 ? :name @p1 %s",
        "Zoë 🚀 <script>alert(1)</script> \\ /",
    ];
    for name in nasty {
        let r = app
            .post("/api/workspaces", &ann.token, json!({"name": name}))
            .await;
        assert_eq!(
            (r.status, r.body["name"].as_str()),
            (StatusCode::CREATED, Some(name)),
            "{}",
            r.body
        );
        let ws = r.body["id"].as_str().expect("id").to_owned();
        let state = app.get(&format!("/api/workspaces/{ws}"), &ann.token).await;
        assert_eq!(state.body["workspace"]["name"], name);
        let body = json!({"name": name, "description": name});
        let c = app
            .post(&format!("/api/workspaces/{ws}/channels"), &ann.token, body)
            .await;
        assert_eq!(
            (c.status, c.body["name"].as_str()),
            (StatusCode::CREATED, Some(name)),
            "{}",
            c.body
        );
        let got = app
            .get(
                &format!("/api/channels/{}", c.body["id"].as_str().expect("id")),
                &ann.token,
            )
            .await;
        assert_eq!(
            (got.body["name"].as_str(), got.body["description"].as_str()),
            (Some(name), Some(name))
        );
        assert_eq!(
            app.patch("/api/me", &ann.token, json!({"name": name}))
                .await
                .body["name"],
            name
        );
        assert_eq!(app.get("/api/me", &ann.token).await.body["name"], name);
    }
    let mut want: Vec<String> = nasty.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(my_workspaces(&app, &ann).await, want);
    // Metacharacters in path segments are just unknown ids or codes.
    let paths = [
        "/api/workspaces/'%20OR%20'1'='1",
        "/api/channels/1%3B%20DROP%20TABLE%20channels",
        "/api/users/%25",
    ];
    for path in paths {
        assert_error(&app.get(path, &ann.token).await, 404, "not_found", path);
    }
    let r = app
        .post("/api/join/'%20OR%20'1'%3D'1", &ann.token, json!({}))
        .await;
    assert_error(&r, 404, "not_found", "join with an injected code");
    // Every table still works.
    let email = new_email();
    let body = json!({"email": email, "password": "correct horse", "name": nasty[0]});
    let r = app.call(POST, "/api/auth/signup", None, Some(body)).await;
    assert_eq!(
        (r.status, r.body["user"]["name"].as_str()),
        (StatusCode::CREATED, Some(nasty[0]))
    );
    let bob = user_from(&r.body, email);
    let signin = json!({"email": ann.email, "password": "correct horse"});
    assert_eq!(
        app.call(POST, "/api/auth/signin", None, Some(signin))
            .await
            .status,
        StatusCode::OK
    );
    let ws = app.workspace(&ann, "after").await;
    app.join(&ann, &ws, &bob).await;
    app.channel(&bob, &ws, "after", true, &[&ann]).await;
    assert_eq!(
        app.get(&format!("/api/users/{}", bob.id), &ann.token)
            .await
            .body["name"],
        nasty[0]
    );
    assert_eq!(
        app.call(GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

/// U+0000 is valid JSON text but cannot be stored in a PostgreSQL `text`
/// column. Whatever an engine does with it, the answer is the same on both and
/// never a 500: text fields either keep it verbatim or are a 400 naming the
/// field; lookups by a code or email containing it find nothing.
async fn nul_characters_are_never_a_500(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, _bob, ws, ch) = setup(&app).await;
    let nul = "a\u{0}b";
    let (chans, patch_ws, patch_ch) =
        (format!("/api/workspaces/{ws}/channels"), format!("/api/workspaces/{ws}"), format!("/api/channels/{ch}"));
    // Every case is tried; the failures are listed together.
    let mut failures = Vec::new();
    let error_is = |r: &Reply, status: u16, code: &str| {
        r.status.as_u16() == status && r.code() == code && r.body.as_object().map(|o| o.len()) == Some(1)
    };
    // (method, path, body, the field that holds the text in body and answer)
    let stored: Vec<(Method, &str, Value, &str)> = vec![
        (POST, &chans, json!({"name": "n", "description": nul}), "description"),
        (PATCH, &patch_ch, json!({"description": nul}), "description"),
        (PATCH, &patch_ws, json!({"avatar": nul}), "avatar"),
        (PATCH, "/api/me", json!({"avatar": nul}), "avatar"),
        (PATCH, "/api/me", json!({"lang": nul}), "lang"),
        (POST, "/api/me/app-settings", json!({"theme": nul}), "appSettings"),
    ];
    for (m, path, body, field) in stored {
        let ctx = format!("{m} {path} {body}");
        let r = app.call(m, path, Some(&ann.token), Some(body)).await;
        let ok = if r.status.is_success() {
            r.body[field] == nul || r.body[field]["theme"] == nul
        } else {
            error_is(&r, 400, "validation_failed") && r.body["error"]["field"] == field
        };
        if !ok {
            failures.push(format!("{ctx} -> {} {}", r.status, r.body));
        }
    }
    for code in ["%00", "a%00b"] {
        let r = app.post(&format!("/api/join/{code}"), &ann.token, json!({})).await;
        if !error_is(&r, 404, "not_found") {
            failures.push(format!("POST /api/join/{code} -> {} {}", r.status, r.body));
        }
    }
    let signin = json!({"email": "a\u{0}@example.com", "password": "correct horse"});
    let r = app.call(POST, "/api/auth/signin", None, Some(signin.clone())).await;
    if !(error_is(&r, 401, "unauthorized") || error_is(&r, 400, "validation_failed")) {
        failures.push(format!("POST /api/auth/signin {signin} -> {} {}", r.status, r.body));
    }
    assert!(failures.is_empty(), "NUL characters mishandled:\n{}", failures.join("\n"));
    // The server is fine afterwards.
    assert_eq!(app.get(&patch_ch, &ann.token).await.status, StatusCode::OK);
    assert_eq!(app.call(GET, "/readyz", None, None).await.status, StatusCode::OK);
    app.stop().await;
}

async fn unknown_routes_wrong_methods_and_malformed_ids(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, bob, ws, ch) = setup(&app).await;
    let t = Some(ann.token.as_str());
    // Unknown routes, with or without a token.
    let nope = format!("/api/workspaces/{ws}/nope");
    for (path, token) in [
        ("/api/nope", t),
        ("/nope", None),
        ("/api", t),
        (&*nope, t),
        ("/api/channels", t),
    ] {
        assert_error(
            &app.call(GET, path, token, None).await,
            404,
            "not_found",
            path,
        );
    }
    // Known routes, wrong methods: 405 with the envelope and an Allow header.
    let wrong = [
        (Method::PUT, "/api/workspaces".to_owned()),
        (DELETE, "/api/auth/signup".to_owned()),
        (GET, "/api/auth/signin".to_owned()),
        (PATCH, format!("/api/workspaces/{ws}/invites")),
        (Method::PUT, format!("/api/channels/{ch}")),
        (POST, format!("/api/channels/{ch}")),
        (POST, "/healthz".to_owned()),
    ];
    for (m, path) in wrong {
        let ctx = format!("{m} {path}");
        let r = app.call(m, &path, t, Some(json!({}))).await;
        assert_error(&r, 405, "method_not_allowed", &ctx);
        assert!(
            r.headers.contains_key(reqwest::header::ALLOW),
            "{ctx}: no Allow header"
        );
    }
    // Malformed ids are unknown ids: 404, never 400 or 500.
    let wsx = format!("{ws}x");
    let ids = [
        "not-a-uuid",
        "123",
        "00000000-0000-0000-0000-000000000000",
        &wsx,
        "..%2F..%2Fetc",
    ];
    for id in ids {
        let cases = [
            (GET, format!("/api/workspaces/{id}"), None),
            (
                PATCH,
                format!("/api/workspaces/{id}"),
                Some(json!({"name": "x"})),
            ),
            (DELETE, format!("/api/workspaces/{id}"), None),
            (GET, format!("/api/workspaces/{id}/members"), None),
            (GET, format!("/api/workspaces/{id}/channels"), None),
            (
                POST,
                format!("/api/workspaces/{id}/channels"),
                Some(json!({"name": "x"})),
            ),
            (
                POST,
                format!("/api/workspaces/{id}/invites"),
                Some(json!({})),
            ),
            (POST, format!("/api/workspaces/{id}/leave"), Some(json!({}))),
            (DELETE, format!("/api/workspaces/{ws}/members/{id}"), None),
            (
                PATCH,
                format!("/api/workspaces/{ws}/members/{id}"),
                Some(json!({"role": "user"})),
            ),
            (GET, format!("/api/channels/{id}"), None),
            (
                PATCH,
                format!("/api/channels/{id}"),
                Some(json!({"name": "x"})),
            ),
            (DELETE, format!("/api/channels/{id}"), None),
            (GET, format!("/api/channels/{id}/members"), None),
            (
                POST,
                format!("/api/channels/{id}/members"),
                Some(json!({"users": [bob.id]})),
            ),
            (DELETE, format!("/api/channels/{ch}/members/{id}"), None),
            (
                PATCH,
                format!("/api/channels/{ch}/members/{id}"),
                Some(json!({"role": "user"})),
            ),
            (GET, format!("/api/users/{id}"), None),
            (POST, format!("/api/join/{id}"), Some(json!({}))),
        ];
        for (m, path, body) in cases {
            let ctx = format!("{m} {path}");
            assert_error(&app.call(m, &path, t, body).await, 404, "not_found", &ctx);
        }
    }
    // Still intact.
    let state = app.get(&format!("/api/workspaces/{ws}"), &ann.token).await;
    assert_eq!(
        (state.status, state.body["users"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let members = app
        .get(&format!("/api/channels/{ch}/members"), &bob.token)
        .await;
    assert_eq!(members.body["members"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

fn forge(secret: &str, alg: jsonwebtoken::Algorithm, claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key).expect("encode")
}

async fn bad_authorization_is_401(engine: Engine) {
    let app = spawn_app(engine).await;
    let (ann, bob, ws, _ch) = setup(&app).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims =
        |sub: &str, sid: &str| json!({"sub": sub, "sid": sid, "iat": now, "exp": now + 3600});
    let hs256 = jsonwebtoken::Algorithm::HS256;
    // Sanity: a token forged with the server's secret for a real session works.
    let good = forge(JWT_SECRET, hs256, claims(&ann.id, &ann.session));
    assert_eq!(app.get("/api/me", &good).await.status, StatusCode::OK);

    let a: Vec<&str> = ann.token.split('.').collect();
    let b: Vec<&str> = bob.token.split('.').collect();
    let mut sig: Vec<char> = a[2].chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let flipped: String = sig.into_iter().collect();
    let tokens = [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        format!("{}x", ann.token),
        // A changed signature, another token's signature, another token's claims.
        format!("{}.{}.{flipped}", a[0], a[1]),
        format!("{}.{}.{}", a[0], a[1], b[2]),
        format!("{}.{}.{}", a[0], b[1], a[2]),
        // alg "none".
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", a[1]),
        forge(
            "another-secret-another-secret-0123456789",
            hs256,
            claims(&ann.id, &ann.session),
        ),
        forge(
            JWT_SECRET,
            jsonwebtoken::Algorithm::HS512,
            claims(&ann.id, &ann.session),
        ),
        // Right secret, but no such session / someone else's session / no expiry.
        forge(
            JWT_SECRET,
            hs256,
            claims(&ann.id, &uuid::Uuid::new_v4().to_string()),
        ),
        forge(JWT_SECRET, hs256, claims(&bob.id, &ann.session)),
        forge(
            JWT_SECRET,
            hs256,
            json!({"sub": ann.id, "sid": ann.session, "iat": now}),
        ),
    ];
    let mut headers: Vec<Option<HeaderValue>> = vec![
        None,
        Some(HeaderValue::from_static("")),
        Some(HeaderValue::from_static("Bearer")),
        Some(HeaderValue::from_static("Bearer ")),
        Some(HeaderValue::from_static("Bearer     ")),
        Some(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
        Some(HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("opaque header")),
        Some(HeaderValue::from_str(&ann.token).expect("header")),
        Some(HeaderValue::from_str(&format!("Token {}", ann.token)).expect("header")),
    ];
    headers.extend(
        tokens
            .iter()
            .map(|t| Some(HeaderValue::from_str(&format!("Bearer {t}")).expect("header"))),
    );
    let routes = [
        (GET, "/api/me".to_owned(), None),
        (GET, format!("/api/workspaces/{ws}"), None),
        (
            POST,
            "/api/workspaces".to_owned(),
            Some(json!({"name": "x"})),
        ),
        // Authentication comes before the body is looked at.
        (POST, "/api/workspaces".to_owned(), Some(json!({"name": 5}))),
        (DELETE, format!("/api/workspaces/{ws}"), None),
    ];
    for (i, header) in headers.iter().enumerate() {
        for (m, path, body) in &routes {
            let mut req = app.http.request(m.clone(), app.url(path));
            if let Some(v) = header {
                req = req.header(AUTHORIZATION, v.clone());
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("request sent");
            let (status, headers) = (resp.status(), resp.headers().clone());
            let body = parse_body(&resp.text().await.expect("body"));
            let r = Reply {
                status,
                body,
                headers,
            };
            assert_error(
                &r,
                401,
                "unauthorized",
                &format!("header #{i} {header:?} on {m} {path}"),
            );
        }
    }
    // Nothing happened, and the real token still works.
    assert_eq!(
        app.get(&format!("/api/workspaces/{ws}"), &ann.token)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(my_workspaces(&app, &ann).await, vec!["Team"]);
    app.stop().await;
}
