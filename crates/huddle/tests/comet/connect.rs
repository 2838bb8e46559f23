//! The connect URL (positional), refusals as HTTP errors, `serverInfo`, and
//! authorisation by stored hash or by JWT.

use reqwest::{Method, StatusCode};
use serde_json::json;

use huddle::config::Secret;

use crate::both_engines;
use crate::client::*;
use crate::common::*;

both_engines!(
    hash_guessing_is_bounded_per_address_and_per_user,
    refusals_are_http_errors_on_the_upgrade,
    server_info_comes_first_and_anonymous_js_url_is_accepted,
    empty_session_and_user_are_anonymous_as_the_seed_says,
    hash_authorises_only_its_user_and_tenant,
    jwt_authorises_until_revoked,
    origin_allow_list_refuses_with_423,
);

async fn refusals_are_http_errors_on_the_upgrade(engine: Engine) {
    let app = comet_app(engine).await;
    let uuid = new_uuid();
    // Missing session (nothing after /ws/), or no user id → 401.
    assert_eq!(refused_status(&ws_url(&app, ""), None).await, 401);
    assert_eq!(refused_status(&ws_url(&app, "sesion=abc"), None).await, 401);
    // No devid → 406.
    assert_eq!(
        refused_status(&ws_url(&app, "sesion=abc&myid=1"), None).await,
        406
    );
    // No version → 418.
    assert_eq!(
        refused_status(&ws_url(&app, "sesion=abc&myid=1&devid=1"), None).await,
        418
    );
    // Everything present: accepted (uuid and api are optional trailing fields).
    let c = Comet::open(
        &ws_url(&app, &format!("sesion=abc&myid=1&devid=1&v={JS_VERSION}")),
        "1",
        &uuid,
    )
    .await;
    assert_eq!(c.info["authorized"], false, "{}", c.info);
    c.close().await;
    // The refused upgrades did not crash anything: the full URL still works.
    let c = Comet::connect(&app, "1", "1", "abc").await;
    c.close().await;
    app.stop().await;
}

async fn server_info_comes_first_and_anonymous_js_url_is_accepted(engine: Engine) {
    let app = comet_app(engine).await;
    // Exactly what an anonymous page running CometServerApi.js opens.
    let uuid = new_uuid();
    let url = ws_url(
        &app,
        &format!("sesion=undefined&myid=undefined&devid=15&v=4.02&uuid={uuid}&api=js"),
    );
    let c = Comet::open(&url, "15", &uuid).await;
    let info = &c.info;
    assert_eq!(info["pipe"], "sys", "{info}");
    assert_eq!(info["event"], "serverInfo", "{info}");
    assert_eq!(info["data"], "", "{info}");
    assert_eq!(info["server"], "huddle", "{info}");
    assert_eq!(info["authorized"], false, "{info}");
    assert_recent_time(info);
    c.close().await;

    // An authorised one says so.
    let api = Api::new(&app);
    api.set_hash("15", 3, "key3").await;
    let c = Comet::connect(&app, "15", "3", "key3").await;
    assert_eq!(c.info["authorized"], true, "{}", c.info);
    assert_eq!(c.info["server"], "huddle");
    assert_recent_time(&c.info);
    c.close().await;
    app.stop().await;
}

/// Seed 003: "all parameters are required but may have an empty value".
async fn empty_session_and_user_are_anonymous_as_the_seed_says(engine: Engine) {
    let app = comet_app(engine).await;
    for tail in [
        format!("sesion=&myid=&devid=1&v=4.02&uuid={}&api=js", new_uuid()),
        format!("sesion=&myid=5&devid=1&v=4.02&uuid={}&api=js", new_uuid()),
        format!("sesion=key&myid=&devid=1&v=4.02&uuid={}&api=js", new_uuid()),
    ] {
        let c = Comet::open(&ws_url(&app, &tail), "1", "").await;
        assert_eq!(c.info["authorized"], false, "{tail}: {}", c.info);
        c.close().await;
    }
    app.stop().await;
}

async fn hash_authorises_only_its_user_and_tenant(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);
    let hash = "Ab0=+/_zZ9"; // the whole allowed alphabet
    api.set_hash("1", 42, hash).await;

    let c = Comet::connect(&app, "1", "42", hash).await;
    assert!(c.authorized_flag(), "right hash: {}", c.info);
    c.close().await;

    for (dev, myid, key, why) in [
        ("1", "42", "Ab0=+/_zZ8", "wrong hash"),
        ("1", "43", hash, "another user's hash"),
        ("2", "42", hash, "the same user in another devId"),
        ("1", "42", "undefined", "JS 'undefined' key"),
    ] {
        let c = Comet::connect(&app, dev, myid, key).await;
        assert!(!c.authorized_flag(), "{why} must be anonymous: {}", c.info);
        c.close().await;
    }

    // Replaced hash: the old one stops working, the new one works.
    api.set_hash("1", 42, "newkey").await;
    let c = Comet::connect(&app, "1", "42", hash).await;
    assert!(!c.authorized_flag(), "old hash after replace: {}", c.info);
    c.close().await;
    let c = Comet::connect(&app, "1", "42", "newkey").await;
    assert!(c.authorized_flag(), "new hash: {}", c.info);
    c.close().await;

    // Deleted hash: anonymous.
    let r = api.call(Method::DELETE, "1", "/users/42/auth", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let c = Comet::connect(&app, "1", "42", "newkey").await;
    assert!(!c.authorized_flag(), "deleted hash: {}", c.info);
    c.close().await;
    app.stop().await;
}

async fn jwt_authorises_until_revoked(engine: Engine) {
    let app = comet_app(engine).await;
    let api = Api::new(&app);

    let numeric = jwt("7", json!({"user_id": 42, "exp": far_exp()}));
    let c = Comet::connect(&app, "7", "42", &numeric).await;
    assert!(c.authorized_flag(), "JWT with numeric user_id: {}", c.info);
    c.close().await;

    let string = jwt("7", json!({"user_id": "42", "exp": far_exp()}));
    let c = Comet::connect(&app, "7", "42", &string).await;
    assert!(c.authorized_flag(), "JWT with string user_id: {}", c.info);
    c.close().await;

    let no_exp = jwt("7", json!({"user_id": 42}));
    let c = Comet::connect(&app, "7", "42", &no_exp).await;
    assert!(
        c.authorized_flag(),
        "the original's JWTs carry no exp; such a token is valid: {}",
        c.info
    );
    c.close().await;

    let refused = [
        (numeric.clone(), "43", "7", "user_id differs from myid"),
        (numeric.clone(), "42", "8", "signed for another devId"),
        (
            jwt_with_secret(&password(), json!({"user_id": 42, "exp": far_exp()})),
            "42",
            "7",
            "signed without the devId suffix",
        ),
        (
            jwt_with_secret(JWT_SECRET, json!({"user_id": 42, "exp": far_exp()})),
            "42",
            "7",
            "signed with the HTTP API secret",
        ),
        (
            jwt("7", json!({"user_id": 42, "exp": now() - 3600})),
            "42",
            "7",
            "expired",
        ),
        (
            jwt("7", json!({"sub": "42", "exp": far_exp()})),
            "42",
            "7",
            "no user_id claim",
        ),
    ];
    for (token, myid, dev, why) in refused {
        let c = Comet::connect(&app, dev, myid, &token).await;
        assert!(
            !c.authorized_flag(),
            "JWT {why} must be anonymous: {}",
            c.info
        );
        c.close().await;
    }

    // Revoked → anonymous; un-revoked → authorised again.
    let r = api
        .call(
            Method::POST,
            "7",
            "/revoked-tokens",
            Some(json!({ "token": numeric })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "revoke: {:?}", r.body);
    let c = Comet::connect(&app, "7", "42", &numeric).await;
    assert!(!c.authorized_flag(), "revoked JWT: {}", c.info);
    c.close().await;
    // Revocation is per token: another valid token still works.
    let c = Comet::connect(&app, "7", "42", &string).await;
    assert!(c.authorized_flag(), "another token of the user: {}", c.info);
    c.close().await;
    let r = api
        .call(
            Method::DELETE,
            "7",
            "/revoked-tokens",
            Some(json!({ "token": numeric })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "un-revoke: {:?}", r.body);
    let c = Comet::connect(&app, "7", "42", &numeric).await;
    assert!(c.authorized_flag(), "un-revoked JWT: {}", c.info);
    c.close().await;
    app.stop().await;
}

async fn origin_allow_list_refuses_with_423(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.comet.password = Some(Secret(password()));
        c.comet.origins = vec![r"^https?://app\.example\.com(:\d+)?$".to_owned()];
    })
    .await;
    let url = ws_url(&app, &connect_tail("k", "1", "1", &new_uuid()));
    assert_eq!(
        refused_status(&url, Some("https://evil.example.net")).await,
        423
    );
    assert_eq!(
        refused_status(&url, Some("https://app.example.com.evil.net")).await,
        423,
        "the pattern is anchored as written"
    );
    let ws = try_open(&url, Some("https://app.example.com"))
        .await
        .expect("an allowed Origin is accepted");
    drop(ws);
    let ws = try_open(&url, Some("http://app.example.com:8080"))
        .await
        .expect("an allowed Origin with a port is accepted");
    drop(ws);
    app.stop().await;

    // A dev id with a list of its own: that list, not the global one, applies.
    let app = spawn_app_with(engine, |c| {
        c.comet.password = Some(Secret(password()));
        c.comet
            .dev_origins
            .insert("2".into(), vec![r"^https://two\.example$".to_owned()]);
    })
    .await;
    let dev2 = ws_url(&app, &connect_tail("k", "1", "2", &new_uuid()));
    assert_eq!(
        refused_status(&dev2, Some("https://one.example")).await,
        423
    );
    drop(
        try_open(&dev2, Some("https://two.example"))
            .await
            .expect("dev 2's own origin"),
    );
    let dev1 = ws_url(&app, &connect_tail("k", "1", "1", &new_uuid()));
    drop(
        try_open(&dev1, Some("https://one.example"))
            .await
            .expect("dev 1 has no list: any origin"),
    );
    app.stop().await;

    // Empty list: any Origin (and none) is accepted.
    let app = comet_app(engine).await;
    let url = ws_url(&app, &connect_tail("k", "1", "1", &new_uuid()));
    let ws = try_open(&url, Some("https://anything.example"))
        .await
        .expect("no allow-list: any Origin");
    drop(ws);
    let ws = try_open(&url, None)
        .await
        .expect("no allow-list: no Origin");
    drop(ws);
    app.stop().await;
}

fn comet_auth_refusals(m: &str) -> f64 {
    sample(m, "huddle_refused_total{reason=\"comet_auth_rate\"}")
}

/// Failed authorisations are bounded per client address and per (dev id,
/// user id): past the bound a connection is anonymous without its key being
/// checked (even the right key), counted as `comet_auth_rate`; another
/// address still authorises until the user's own ceiling is reached.
async fn hash_guessing_is_bounded_per_address_and_per_user(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.comet.password = Some(Secret(password()));
        c.limits.comet_auth_ip_failures = 3;
        c.limits.comet_auth_user_failures = 5;
    })
    .await;
    let api = Api::new(&app);
    api.set_hash("1", 42, "rightkey").await;
    for guess in ["guess1", "guess2", "guess3"] {
        let c = Comet::connect_from(&app, "127.0.0.2", "1", "42", guess).await;
        assert!(!c.authorized_flag(), "{}", c.info);
        c.close().await;
    }
    let c = Comet::connect_from(&app, "127.0.0.2", "1", "42", "rightkey").await;
    assert!(
        !c.authorized_flag(),
        "past the address's bound the key is not checked: {}",
        c.info
    );
    c.close().await;
    assert_eq!(comet_auth_refusals(&app.metrics().await), 1.0);

    let c = Comet::connect_from(&app, "127.0.0.3", "1", "42", "rightkey").await;
    assert!(
        c.authorized_flag(),
        "another address authorises: {}",
        c.info
    );
    c.close().await;

    // Two more failures from a third address: the user's ceiling (5).
    for guess in ["guess4", "guess5"] {
        let c = Comet::connect_from(&app, "127.0.0.4", "1", "42", guess).await;
        assert!(!c.authorized_flag(), "{}", c.info);
        c.close().await;
    }
    let c = Comet::connect_from(&app, "127.0.0.5", "1", "42", "rightkey").await;
    assert!(
        !c.authorized_flag(),
        "past the user's ceiling the key is not checked: {}",
        c.info
    );
    c.close().await;
    // Another user of the tenant is not affected.
    api.set_hash("1", 43, "otherkey").await;
    let c = Comet::connect_from(&app, "127.0.0.5", "1", "43", "otherkey").await;
    assert!(c.authorized_flag(), "{}", c.info);
    c.close().await;
    assert_eq!(comet_auth_refusals(&app.metrics().await), 2.0);
    app.stop().await;
}
