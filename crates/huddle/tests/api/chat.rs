//! Chat over REST (SPEC §4): rights, history paging, unread tracking, and
//! gap-free per-channel ids under concurrent writers on both engines.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_engines;
use crate::common::*;

both_engines!(
    chat_rights_and_soft_delete,
    history_pages_and_unread,
    concurrent_writers_get_gap_free_ids
);

async fn post(app: &TestApp, user: &TestUser, channel: &str, content: &str) -> Value {
    let r = app
        .post(
            &format!("/api/channels/{channel}/chat"),
            &user.token,
            json!({ "content": content }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

async fn unread_of(app: &TestApp, user: &TestUser, ch: &str) -> Option<i64> {
    app.get(&format!("/api/channels/{ch}/unread-chat"), &user.token)
        .await
        .body["chatId"]
        .as_i64()
}

async fn chat_rights_and_soft_delete(engine: Engine) {
    let app = spawn_app_with(engine, |c| c.limits.chat_content_chars = 300).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let cat = app.signup("Cat").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    app.join(&ann, &ws, &cat).await;
    let general = app.channel(&cat, &ws, "general", false, &[]).await;
    let private = app.channel(&ann, &ws, "private", true, &[]).await;

    let chat = post(&app, &bob, &general, "hello").await;
    assert_eq!(chat["id"], 1);
    assert_eq!(chat["type"], "TEXT");
    assert_eq!(chat["senderId"], bob.id);
    assert_eq!(chat["channelId"], general);
    assert_eq!(chat["communityId"], ws);
    assert_eq!(chat["deletedAt"], Value::Null);

    // Only the sender modifies.
    let path = format!("/api/channels/{general}/chats/1");
    assert_eq!(
        app.patch(&path, &ann.token, json!({"content": "x"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .patch(&path, &bob.token, json!({"content": "hello, edited"}))
        .await;
    assert_eq!(
        (r.status, r.body["content"].as_str()),
        (StatusCode::OK, Some("hello, edited"))
    );
    // A plain member cannot delete another's chat; the channel manager (Cat) can.
    post(&app, &ann, &general, "second").await;
    assert_eq!(
        app.delete(&format!("/api/channels/{general}/chats/2"), &bob.token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .delete(&format!("/api/channels/{general}/chats/2"), &cat.token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["content"], "");
    assert!(r.body["deletedAt"].is_string());
    assert_eq!(
        app.patch(
            &format!("/api/channels/{general}/chats/2"),
            &ann.token,
            json!({"content": "y"})
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    // A workspace admin deletes too.
    assert_eq!(app.delete(&path, &ann.token).await.status, StatusCode::OK);

    // Bad input.
    for (body, field) in [
        (json!({"content": ""}), "content"),
        (json!({"content": "x".repeat(301)}), "content"),
        (json!({"content": "x", "type": "SYSTEM"}), "type"),
    ] {
        let r = app
            .post(&format!("/api/channels/{general}/chat"), &bob.token, body)
            .await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field))
        );
    }
    assert_eq!(
        app.post(
            &format!("/api/channels/{general}/chat"),
            &bob.token,
            json!({"content": 5})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    // A chat id of another channel, or not a number, is not found.
    post(&app, &ann, &private, "secret").await;
    assert_eq!(
        app.patch(
            &format!("/api/channels/{general}/chats/3"),
            &bob.token,
            json!({"content": "z"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/channels/{general}/chats/abc"), &bob.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A private channel's chat is 404 to non-members on every route.
    for r in [
        app.get(&format!("/api/channels/{private}/chat"), &bob.token)
            .await,
        app.post(
            &format!("/api/channels/{private}/chat"),
            &bob.token,
            json!({"content": "hi"}),
        )
        .await,
        app.patch(
            &format!("/api/channels/{private}/chats/1"),
            &bob.token,
            json!({"content": "hi"}),
        )
        .await,
        app.delete(&format!("/api/channels/{private}/chats/1"), &bob.token)
            .await,
        app.get(&format!("/api/channels/{private}/unread-chat"), &bob.token)
            .await,
        app.call(
            reqwest::Method::PATCH,
            &format!("/api/channels/{private}/last-read"),
            Some(&bob.token),
            None,
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    }
    app.stop().await;
}

async fn history_pages_and_unread(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    let ch = app.channel(&ann, &ws, "general", false, &[]).await;

    assert_eq!(unread_of(&app, &bob, &ch).await, Some(-1));
    for i in 1..=120 {
        post(&app, &ann, &ch, &format!("m{i}")).await;
    }
    // The sender's own chats count as read.
    assert_eq!(unread_of(&app, &ann, &ch).await, Some(-1));
    assert_eq!(unread_of(&app, &bob, &ch).await, Some(1));
    let listed = |body: &Value| {
        body["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .find(|c| c["id"] == ch)
            .expect("listed")["existUnreadChat"]
            .clone()
    };
    assert_eq!(
        listed(
            &app.get(&format!("/api/workspaces/{ws}/channels"), &bob.token)
                .await
                .body
        ),
        json!(true)
    );
    assert_eq!(
        listed(
            &app.get(&format!("/api/workspaces/{ws}"), &bob.token)
                .await
                .body
        ),
        json!(true)
    );
    assert_eq!(
        listed(
            &app.get(&format!("/api/workspaces/{ws}/channels"), &ann.token)
                .await
                .body
        ),
        json!(false)
    );

    // Page back 50 at a time, newest first, while new chats arrive.
    let mut seen: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let q = before.map_or(String::new(), |b| format!("&before={b}"));
        let page = app
            .get(&format!("/api/channels/{ch}/chat?limit=50{q}"), &bob.token)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let ids: Vec<i64> = page.body["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .map(|c| c["id"].as_i64().expect("id"))
            .collect();
        if seen.is_empty() {
            post(&app, &ann, &ch, "arrives while paging").await;
        }
        seen.extend(&ids);
        before = ids.last().copied();
        if !page.body["hasMore"].as_bool().expect("hasMore") {
            break;
        }
    }
    assert_eq!(seen, (1..=120).rev().collect::<Vec<i64>>());
    let r = app
        .get(&format!("/api/channels/{ch}/chat?limit=101"), &bob.token)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .get(&format!("/api/channels/{ch}/chat?before=x"), &bob.token)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/channels/{ch}/last-read"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(unread_of(&app, &bob, &ch).await, Some(-1));
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &bob.token)
            .await
            .body["existUnreadChat"],
        json!(false)
    );
    post(&app, &ann, &ch, "new").await;
    assert_eq!(unread_of(&app, &bob, &ch).await, Some(122));
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &bob.token)
            .await
            .body["existUnreadChat"],
        json!(true)
    );
    app.stop().await;
}

/// 8 writers × 500 chats into one channel: ids 1..=4000 exactly once, and the
/// history pages back exactly those 4000 in order.
async fn concurrent_writers_get_gap_free_ids(engine: Engine) {
    const WRITERS: usize = 8;
    const EACH: usize = 500;
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let ws = app.workspace(&ann, "Team").await;
    let ch = app.channel(&ann, &ws, "busy", false, &[]).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/channels/{ch}/chat")),
            ann.token.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("w{w} #{i}")}))
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), StatusCode::CREATED);
                let body: Value = r.json().await.expect("json");
                ids.push(body["id"].as_i64().expect("id"));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        let ids = w.await.expect("writer");
        assert!(
            ids.windows(2).all(|p| p[0] < p[1]),
            "each writer sees its ids increase"
        );
        all.extend(ids);
    }
    let total = (WRITERS * EACH) as i64;
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "no id handed out twice");
    assert_eq!(
        unique,
        (1..=total).collect::<BTreeSet<i64>>(),
        "ids are 1..={total} with no gap"
    );

    let mut paged = Vec::new();
    let mut before = total + 1;
    loop {
        let page = app
            .get(
                &format!("/api/channels/{ch}/chat?limit=100&before={before}"),
                &ann.token,
            )
            .await;
        let chats = page.body["chats"].as_array().expect("chats").clone();
        paged.extend(chats.iter().map(|c| c["id"].as_i64().expect("id")));
        match chats.last() {
            Some(last) if page.body["hasMore"] == json!(true) => {
                before = last["id"].as_i64().expect("id")
            }
            _ => break,
        }
    }
    assert_eq!(paged, (1..=total).rev().collect::<Vec<i64>>());
    app.stop().await;
}
