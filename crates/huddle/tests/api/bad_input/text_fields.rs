//! Text field values: over-long and empty names, SQL metacharacters and NUL
//! characters.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{assert_error, my_workspaces, new_email, setup, GET, PATCH, POST};
use crate::both_engines;
use crate::common::*;

both_engines!(
    overlong_and_empty_names_are_validation_failed,
    sql_metacharacters_are_stored_verbatim,
    nul_characters_are_never_a_500,
);

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
    let (chans, patch_ws, patch_ch) = (
        format!("/api/workspaces/{ws}/channels"),
        format!("/api/workspaces/{ws}"),
        format!("/api/channels/{ch}"),
    );
    // Every case is tried; the failures are listed together.
    let mut failures = Vec::new();
    let error_is = |r: &Reply, status: u16, code: &str| {
        r.status.as_u16() == status
            && r.code() == code
            && r.body.as_object().map(|o| o.len()) == Some(1)
    };
    // (method, path, body, the field that holds the text in body and answer)
    let stored: Vec<(Method, &str, Value, &str)> = vec![
        (
            POST,
            &chans,
            json!({"name": "n", "description": nul}),
            "description",
        ),
        (PATCH, &patch_ch, json!({"description": nul}), "description"),
        (PATCH, &patch_ws, json!({"avatar": nul}), "avatar"),
        (PATCH, "/api/me", json!({"avatar": nul}), "avatar"),
        (PATCH, "/api/me", json!({"lang": nul}), "lang"),
        (
            POST,
            "/api/me/app-settings",
            json!({"theme": nul}),
            "appSettings",
        ),
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
        let r = app
            .post(&format!("/api/join/{code}"), &ann.token, json!({}))
            .await;
        if !error_is(&r, 404, "not_found") {
            failures.push(format!("POST /api/join/{code} -> {} {}", r.status, r.body));
        }
    }
    let signin = json!({"email": "a\u{0}@example.com", "password": "correct horse"});
    let r = app
        .call(POST, "/api/auth/signin", None, Some(signin.clone()))
        .await;
    if !(error_is(&r, 401, "unauthorized") || error_is(&r, 400, "validation_failed")) {
        failures.push(format!(
            "POST /api/auth/signin {signin} -> {} {}",
            r.status, r.body
        ));
    }
    // The server is fine afterwards (the schema is dropped before any failure).
    assert_eq!(app.get(&patch_ch, &ann.token).await.status, StatusCode::OK);
    assert_eq!(
        app.call(GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    app.stop().await;
    assert!(
        failures.is_empty(),
        "NUL characters mishandled:\n{}",
        failures.join("\n")
    );
}
