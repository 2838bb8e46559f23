//! Unknown routes, wrong methods and malformed ids.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{assert_error, setup, DELETE, GET, PATCH, POST};
use crate::both_engines;
use crate::common::*;

both_engines!(unknown_routes_wrong_methods_and_malformed_ids);

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
    // Malformed ids are unknown ids: 404, never 400 or 500 (ids with a NUL
    // character: `nul_characters_are_never_a_500`).
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
