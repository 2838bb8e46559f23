//! What one client can cost the server through the accounts and chat REST
//! API: password hashing is bounded (503 + Retry-After past a short queue),
//! sign-ups are limited per address, a third party cannot lock an account out
//! from one address, REST chat writes are limited per user, and write
//! contention on the database never becomes a 500.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_engines;
use crate::common::*;

both_engines!(
    hashing_is_bounded_and_refuses_past_its_queue,
    signups_are_limited_per_address,
    a_third_party_cannot_lock_the_owner_out,
    rest_chat_writes_are_limited_per_user,
    rest_writes_are_limited_per_user_reads_are_not,
    write_contention_never_answers_500,
    data_files_are_private,
);

fn refused(metrics: &str, reason: &str) -> f64 {
    sample(
        metrics,
        &format!("huddle_refused_total{{reason=\"{reason}\"}}"),
    )
}

fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{} without a numeric Retry-After", r.status))
}

/// 24 parallel sign-ups against one hash slot and a queue of one: never more
/// than one hash at once (the server's own peak gauge), the others either
/// wait their turn or get 503 with Retry-After, each counted.
async fn hashing_is_bounded_and_refuses_past_its_queue(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        // A hash slow enough that the sign-ups overlap.
        c.auth.argon2_memory_kib = 4096;
        c.auth.argon2_iterations = 3;
        c.auth.hash_concurrency = 1;
        c.auth.hash_queue = 1;
        c.auth.hash_queue_wait = Duration::from_millis(200);
    })
    .await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (http, url) = (app.http.clone(), app.url("/api/auth/signup"));
            tokio::spawn(async move {
                send_json(
                    &http,
                    Method::POST,
                    &url,
                    None,
                    json!({"email": format!("h{i}@example.com"), "password": "correct horse", "name": "H"}),
                )
                .await
            })
        })
        .collect();
    let (mut created, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after(&r) >= 1);
                assert_eq!(r.code(), "unavailable", "{:?}", r.body);
                busy += 1;
            }
            other => panic!("sign-up answered {other}: {:?}", r.body),
        }
    }
    assert!(created >= 1, "some sign-ups get through");
    assert!(busy >= 1, "past the queue, sign-ups are refused with 503");
    let m = app.metrics().await;
    assert_eq!(
        sample(&m, "huddle_password_hashes_in_flight_max"),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "huddle_password_hashes_in_flight"), 0.0);
    assert_eq!(refused(&m, "hash_busy"), f64::from(busy));
    app.stop().await;
}

/// Past `limits.signup_ip_attempts`, sign-ups from that address get 429 with
/// Retry-After; another address is not affected.
async fn signups_are_limited_per_address(engine: Engine) {
    let app = spawn_app_with(engine, |c| c.limits.signup_ip_attempts = 3).await;
    let (here, there) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let url = app.url("/api/auth/signup");
    let body = |i: usize| json!({"email": format!("s{i}@example.com"), "password": "correct horse", "name": "S"});
    for i in 0..3 {
        let r = send_json(&here, Method::POST, &url, None, body(i)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = send_json(&here, Method::POST, &url, None, body(3)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(retry_after(&r) > 60, "the window is 10 minutes");
    let r = send_json(&there, Method::POST, &url, None, body(4)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(refused(&app.metrics().await, "signup_rate"), 1.0);
    app.stop().await;
}

/// Failures lock an account per (account, address): a guesser at 127.0.0.2
/// is locked out, the owner at 127.0.0.1 still signs in. Guesses from many
/// addresses still hit the per-account ceiling.
async fn a_third_party_cannot_lock_the_owner_out(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.limits.signin_account_failures = 3;
        c.limits.signin_account_total_failures = 6;
    })
    .await;
    let owner = app.signup("Owner").await;
    let url = app.url("/api/auth/signin");
    let signin = |client: reqwest::Client, password: &'static str| {
        let (url, email) = (url.clone(), owner.email.clone());
        async move {
            send_json(
                &client,
                Method::POST,
                &url,
                None,
                json!({"email": email, "password": password}),
            )
            .await
        }
    };
    let (home, guesser) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    for _ in 0..3 {
        let r = signin(guesser.clone(), "wrong guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    }
    let r = signin(guesser.clone(), "correct horse").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is locked out: {:?}",
        r.body
    );
    assert!(retry_after(&r) >= 1);
    let r = signin(home.clone(), "correct horse").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the owner elsewhere still signs in: {:?}",
        r.body
    );

    // Three more addresses, one guess each: 6 failures on the account.
    for ip in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        let r = signin(client_from(ip), "wrong guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    }
    let r = signin(home, "correct horse").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a distributed guesser hits the account's ceiling: {:?}",
        r.body
    );
    assert_eq!(refused(&app.metrics().await, "signin_locked"), 2.0);
    app.stop().await;
}

/// Past the burst of `limits.chat_burst`, a user's REST chat writes get 429
/// with Retry-After; another user posts on.
async fn rest_chat_writes_are_limited_per_user(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.limits.chat_per_sec = 1;
        c.limits.chat_burst = 5;
    })
    .await;
    let (ann, bob) = (app.signup("Ann").await, app.signup("Bob").await);
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    let ch = app.channel(&ann, &ws, "general", false, &[]).await;
    let path = format!("/api/channels/{ch}/chat");
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = app
            .post(&path, &ann.token, json!({"content": format!("#{i}")}))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&r) >= 1);
            assert_eq!(r.code(), "rate_limited");
        }
        statuses.push(r.status);
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let limited = statuses.len() - created;
    assert!(
        (5..=10).contains(&created),
        "the burst and a little refill: {statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::CREATED || *s == StatusCode::TOO_MANY_REQUESTS));
    let r = app.post(&path, &bob.token, json!({"content": "hi"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        refused(&app.metrics().await, "chat_rate"),
        limited as f64,
        "every refusal counted"
    );
    app.stop().await;
}

/// Past the burst of `limits.rest_writes_burst`, any authenticated write of a
/// user (here profile updates, the flood that kept the database busy for
/// everyone) gets 429 with Retry-After, counted; their reads, and another
/// user's writes, go on.
async fn rest_writes_are_limited_per_user_reads_are_not(engine: Engine) {
    let app = spawn_app_with(engine, |c| {
        c.limits.rest_writes_per_sec = 1;
        c.limits.rest_writes_burst = 5;
    })
    .await;
    let (ann, bob) = (app.signup("Ann").await, app.signup("Bob").await);
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = app
            .patch("/api/me", &ann.token, json!({"name": format!("Ann {i}")}))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&r) >= 1);
            assert_eq!(r.code(), "rate_limited");
        }
        statuses.push(r.status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses.len() - ok;
    assert!(
        (5..=10).contains(&ok),
        "the burst and a little refill: {statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS));
    for _ in 0..20 {
        assert_eq!(app.get("/api/me", &ann.token).await.status, StatusCode::OK);
    }
    let r = app
        .patch("/api/me", &bob.token, json!({"name": "Bob"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        refused(&app.metrics().await, "rest_writes"),
        limited as f64,
        "every refusal counted"
    );
    app.stop().await;
}

/// Profile updates from 32 clients at once, over and over, while eight
/// clients post chats: no answer is a 5xx (SQLite used to fail a chat
/// transaction that read before it wrote with SQLITE_BUSY_SNAPSHOT, a 500),
/// and every acknowledged chat is stored.
async fn write_contention_never_answers_500(engine: Engine) {
    const POSTERS: usize = 8;
    const EACH: usize = 40;
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let ws = app.workspace(&ann, "Team").await;
    let ch = app.channel(&ann, &ws, "busy", false, &[]).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut patchers = Vec::new();
    for p in 0..32 {
        let (http, url, token) = (app.http.clone(), app.url("/api/me"), ann.token.clone());
        let done = done.clone();
        patchers.push(tokio::spawn(async move {
            let mut n = 0;
            while n < 4 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                let r = send_json(
                    &http,
                    Method::PATCH,
                    &url,
                    Some(&token),
                    json!({"name": format!("Ann {p}.{n}"), "lang": "en"}),
                )
                .await;
                assert_eq!(r.status, StatusCode::OK, "a profile update: {:?}", r.body);
                n += 1;
            }
            n
        }));
    }
    let mut posters = Vec::new();
    for w in 0..POSTERS {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/channels/{ch}/chat")),
            ann.token.clone(),
        );
        posters.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..EACH {
                let r = send_json(
                    &http,
                    Method::POST,
                    &url,
                    Some(&token),
                    json!({"content": format!("w{w} #{i}")}),
                )
                .await;
                assert!(
                    r.status == StatusCode::CREATED,
                    "a chat under write contention answered {}: {:?}",
                    r.status,
                    r.body
                );
                acked.push(r.body["id"].as_i64().expect("id"));
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for p in posters {
        acked.extend(p.await.expect("poster"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut patched = 0;
    for p in patchers {
        patched += p.await.expect("patcher");
    }
    assert!(patched >= 128, "{patched} profile updates");
    let mut stored = BTreeSet::new();
    let mut before = i64::MAX;
    loop {
        let page = app
            .get(
                &format!("/api/channels/{ch}/chat?limit=100&before={before}"),
                &ann.token,
            )
            .await;
        let chats: Vec<Value> = page.body["chats"].as_array().expect("chats").clone();
        stored.extend(chats.iter().map(|c| c["id"].as_i64().expect("id")));
        match chats.last() {
            Some(last) if page.body["hasMore"] == json!(true) => {
                before = last["id"].as_i64().expect("id")
            }
            _ => break,
        }
    }
    assert_eq!(acked.len(), POSTERS * EACH);
    assert!(
        acked.is_subset(&stored),
        "every acknowledged chat is stored"
    );
    app.stop().await;
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A data directory huddle creates is 0700, the SQLite database and its WAL
/// and shm 0600, the generated secrets 0600, whatever the umask.
#[cfg(unix)]
async fn data_files_are_private(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let app = spawn_app_with(engine, |c| {
        c.data_dir = data.clone();
        if engine == Engine::Sqlite {
            c.database.url = Some(format!("sqlite://{}", data.join("huddle.db").display()));
        }
    })
    .await;
    // A write, so that the WAL and shm exist.
    app.signup("Ann").await;
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("comet_password")), 0o600);
    if engine == Engine::Sqlite {
        for file in ["huddle.db", "huddle.db-wal", "huddle.db-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
    app.stop().await;
}

/// A write that cannot get SQLite's write lock within the busy timeout (a
/// foreign process holds it) is a 503 with Retry-After, counted as
/// `database_busy`, not a 500. SQLite only: PostgreSQL waits for row locks
/// without a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_busy_past_its_timeout_is_503() {
    use sqlx::{Connection, Executor};
    let app = spawn_app(Engine::Sqlite).await;
    let ann = app.signup("Ann").await;
    let url = app.config.database.url.clone().expect("sqlite url");
    let mut holder = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("a second connection");
    holder
        .execute("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let r = app
        .patch("/api/me", &ann.token, json!({"name": "Ann 2"}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert!(retry_after(&r) >= 1);
    holder.execute("ROLLBACK").await.expect("release");
    assert_eq!(refused(&app.metrics().await, "database_busy"), 1.0);
    let r = app
        .patch("/api/me", &ann.token, json!({"name": "Ann 3"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.stop().await;
}
