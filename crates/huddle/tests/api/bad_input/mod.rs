//! Bad input over real HTTP: malformed JSON, wrong types, missing fields,
//! missing Content-Type, over-long names, oversized bodies, unknown fields,
//! SQL metacharacters, NUL characters, unknown routes and methods, malformed ids
//! and bad Authorization headers. Every error must be the envelope
//! `{"error": {"code", "message"}}` with the documented status.
//! (Expired tokens are covered in `accounts.rs`.)

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::Value;

use crate::common::*;

mod auth_headers;
mod bodies;
mod routes;
mod text_fields;

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
