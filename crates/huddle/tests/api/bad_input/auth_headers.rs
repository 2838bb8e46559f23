//! Bad Authorization headers and forged tokens.

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{assert_error, my_workspaces, parse_body, setup, DELETE, GET, POST};
use crate::both_engines;
use crate::common::*;

both_engines!(bad_authorization_is_401);

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
