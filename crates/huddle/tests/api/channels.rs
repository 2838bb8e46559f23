//! Channels over REST: members, roles, updates.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::common::*;

both_engines!(channel_members_and_roles, channel_creation_with_members);

async fn channel_members_and_roles(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let cat = app.signup("Cat").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    app.join(&ann, &ws, &cat).await;
    let ch = app.channel(&bob, &ws, "bobs", true, &[]).await;
    let outsider = app.signup("Eve").await;

    // Only workspace members can be added.
    let r = app
        .post(
            &format!("/api/channels/{ch}/members"),
            &bob.token,
            json!({"users": [outsider.id]}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("users"))
    );
    // The manager adds Cat; adding twice is harmless.
    for _ in 0..2 {
        let r = app
            .post(
                &format!("/api/channels/{ch}/members"),
                &bob.token,
                json!({"users": [cat.id]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["members"].as_array().expect("members").len(), 2);
    }
    // Cat (a plain channel user) cannot add or remove others, or rename.
    assert_eq!(
        app.post(
            &format!("/api/channels/{ch}/members"),
            &cat.token,
            json!({"users": [ann.id]})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.patch(
            &format!("/api/channels/{ch}"),
            &cat.token,
            json!({"name": "x"})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // Promoted to channel moderator, Cat can rename but still not manage members.
    let r = app
        .patch(
            &format!("/api/channels/{ch}/members/{}", cat.id),
            &bob.token,
            json!({"role": "moderator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .patch(
            &format!("/api/channels/{ch}"),
            &cat.token,
            json!({"name": "renamed", "description": "d"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (StatusCode::OK, Some("renamed"))
    );
    let r = app
        .patch(
            &format!("/api/channels/{ch}"),
            &cat.token,
            json!({"description": null}),
        )
        .await;
    assert_eq!(r.body["description"], serde_json::Value::Null);
    assert_eq!(
        app.post(
            &format!("/api/channels/{ch}/members"),
            &cat.token,
            json!({"users": [ann.id]})
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // Anyone may leave a channel by removing themself.
    assert_eq!(
        app.delete(
            &format!("/api/channels/{ch}/members/{}", cat.id),
            &cat.token
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &cat.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The workspace admin, not a member of the private channel, cannot see it.
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &ann.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn channel_creation_with_members(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    let ch = app
        .channel(&ann, &ws, "duo", true, &[&bob, &bob, &ann])
        .await;
    let r = app
        .get(&format!("/api/channels/{ch}/members"), &bob.token)
        .await;
    let members = r.body["members"].as_array().expect("members");
    assert_eq!(
        members.len(),
        2,
        "duplicates and the creator are not added twice"
    );
    let role_of = |id: &str| {
        members
            .iter()
            .find(|m| m["userId"] == id)
            .map(|m| m["role"].clone())
    };
    assert_eq!(
        role_of(&ann.id),
        Some(json!("admin")),
        "the creator manages the channel"
    );
    assert_eq!(role_of(&bob.id), Some(json!("user")));
    // Bulk removal by body.
    let r = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/channels/{ch}/members"),
            Some(&ann.token),
            Some(json!({"users": [bob.id]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &bob.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}
