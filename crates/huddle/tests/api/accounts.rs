//! Accounts: sign-up, sign-in, refresh rotation and reuse detection, sign-out,
//! token checks, rate limits, password change, settings, deletion.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::common::*;

both_engines!(
    signup_signin_refresh_reuse_signout,
    expired_tampered_and_foreign_tokens_are_401,
    wrong_password_does_not_reveal_whether_the_email_exists,
    signin_is_rate_limited_per_account_and_per_address,
    password_change_revokes_other_sessions,
    profile_settings_and_deletion,
    duplicate_email_is_409,
);

async fn signup_signin_refresh_reuse_signout(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let r = app.get("/api/me", &ann.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["email"], ann.email);
    assert!(r.body.get("passwordHash").is_none() && r.body.get("password_hash").is_none());

    // Sign in: a second session.
    let r = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email.to_uppercase(), "password": "correct horse"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let second = user_from(&r.body, ann.email.clone());
    assert_ne!(second.session, ann.session);
    for key in [
        "sessionId",
        "accessToken",
        "refreshToken",
        "accessTokenExpiredAt",
        "refreshTokenExpiredAt",
    ] {
        assert!(r.body["credentials"][key].is_string(), "{key}");
    }

    // Refresh rotates both tokens.
    let r = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": second.refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let rotated = r.body["credentials"]["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let new_access = r.body["credentials"]["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_ne!(rotated, second.refresh);
    assert_eq!(app.get("/api/me", &new_access).await.status, StatusCode::OK);

    // Reusing the old refresh token revokes the whole session...
    let r = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": second.refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("reuse"));
    // ...so the rotated token and the session's access tokens stop working too.
    let r = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": rotated})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/me", &new_access).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The first session is untouched.
    assert_eq!(app.get("/api/me", &ann.token).await.status, StatusCode::OK);

    // Sign-out ends the session: its access and refresh tokens are dead.
    assert_eq!(
        app.call(Method::POST, "/api/auth/signout", Some(&ann.token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/me", &ann.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": ann.refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": "not-a-token"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    app.stop().await;
}

fn forge(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

async fn expired_tampered_and_foreign_tokens_are_401(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let now = chrono_now();
    let expired = forge(
        JWT_SECRET,
        json!({"sub": ann.id, "sid": ann.session, "iat": now - 7200, "exp": now - 3600}),
    );
    let r = app.get("/api/me", &expired).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["message"], "access token is expired");

    let foreign = forge(
        "another-secret-another-secret-another-secret",
        json!({"sub": ann.id, "sid": ann.session, "iat": now, "exp": now + 3600}),
    );
    assert_eq!(
        app.get("/api/me", &foreign).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Same secret, but a session that does not exist or belongs to someone else.
    let bob = app.signup("Bob").await;
    let stolen_sid = forge(
        JWT_SECRET,
        json!({"sub": ann.id, "sid": bob.session, "iat": now, "exp": now + 3600}),
    );
    assert_eq!(
        app.get("/api/me", &stolen_sid).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Flip one character of the payload.
    let mut parts: Vec<String> = ann.token.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    assert_eq!(
        app.get("/api/me", &parts.join(".")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // alg=none is refused.
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert_eq!(
        app.get("/api/me", &none).await.status,
        StatusCode::UNAUTHORIZED
    );

    let r = app.call(Method::GET, "/api/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    app.stop().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn wrong_password_does_not_reveal_whether_the_email_exists(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let wrong = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email, "password": "wrong password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": "nobody@example.com", "password": "wrong password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    app.stop().await;
}

async fn signin_is_rate_limited_per_account_and_per_address(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.limits.signin_account_failures = 3;
        c.limits.signin_ip_attempts = 8;
    })
    .await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let attempt = |email: String, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/auth/signin",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt(ann.email.clone(), "bad password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The account is locked even for the right password; Retry-After says for how long.
    let r = attempt(ann.email.clone(), "correct horse").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // Another account from the same address still works (4 of 8 attempts used so far)...
    assert_eq!(
        attempt(bob.email.clone(), "correct horse").await.status,
        StatusCode::OK
    );
    // ...until the address uses up its attempts.
    for _ in 0..3 {
        assert_eq!(
            attempt(bob.email.clone(), "correct horse").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        attempt(bob.email.clone(), "correct horse").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}

async fn password_change_revokes_other_sessions(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let r = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email, "password": "correct horse"})),
        )
        .await;
    let other = user_from(&r.body, ann.email.clone());
    let mut sub = app.bus.subscribe();

    let r = app
        .post(
            "/api/me/password",
            &ann.token,
            json!({"oldPassword": "wrong one", "newPassword": "new password 1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            "/api/me/password",
            &ann.token,
            json!({"oldPassword": "correct horse", "newPassword": "short"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["field"], "newPassword");
    let r = app
        .post(
            "/api/me/password",
            &ann.token,
            json!({"oldPassword": "correct horse", "newPassword": "new password 1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    // The change is announced first, so that every device hears it before the
    // other sessions are ended.
    assert_eq!(
        next_event(&mut sub, "password_changed").await["user_id"],
        ann.id
    );
    let ended = next_event(&mut sub, "session_ended").await;
    assert_eq!(ended["session_id"], other.session);
    assert_eq!(ended["reason"], "revoked");

    assert_eq!(
        app.get("/api/me", &other.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/me", &ann.token).await.status, StatusCode::OK);
    let old = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email, "password": "correct horse"})),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email, "password": "new password 1"})),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK);
    app.stop().await;
}

async fn profile_settings_and_deletion(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;

    let r = app
        .patch(
            "/api/me",
            &ann.token,
            json!({"name": "  Ann B ", "lang": "ru", "avatar": "https://x/a.png"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "Ann B");
    assert_eq!(r.body["lang"], "ru");
    let r = app
        .patch("/api/me", &ann.token, json!({"avatar": null}))
        .await;
    assert_eq!(r.body["avatar"], serde_json::Value::Null);
    assert_eq!(r.body["lang"], "ru", "absent fields are left alone");

    let r = app
        .post(
            "/api/me/app-settings",
            &ann.token,
            json!({"theme": "dark", "nested": {"a": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/me", &ann.token).await.body["appSettings"]["nested"]["a"],
        1
    );
    assert_eq!(
        app.post("/api/me/app-settings", &ann.token, json!([1, 2]))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Bob sees Ann's public profile without confidential fields; an outsider does not see it at all.
    let r = app.get(&format!("/api/users/{}", ann.id), &bob.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Ann B");
    assert!(r.body.get("email").is_none() && r.body.get("appSettings").is_none());
    let eve = app.signup("Eve").await;
    assert_eq!(
        app.get(&format!("/api/users/{}", ann.id), &eve.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The last admin of a shared workspace cannot delete the account...
    let r = app.delete("/api/me", &ann.token).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // ...a plain member can; their sessions die and they leave the workspace.
    assert_eq!(
        app.delete("/api/me", &bob.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/me", &bob.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let members = app
        .get(&format!("/api/workspaces/{ws}/members"), &ann.token)
        .await;
    assert_eq!(
        members.body["members"].as_array().expect("members").len(),
        1
    );
    // Then Ann is the sole member: deleting her account removes the workspace with it.
    assert_eq!(
        app.delete("/api/me", &ann.token).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .call(
            Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": ann.email, "password": "correct horse"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn duplicate_email_is_409(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let r = app
        .call(Method::POST, "/api/auth/signup", None, Some(json!({"email": ann.email.to_uppercase(), "password": "whatever 123", "name": "Other"})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");
    app.stop().await;
}
