//! Every state change publishes its typed domain event on the bus, on the
//! right topic, with ids only (and the snapshots needed for delivery).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::common::*;

both_engines!(every_state_change_publishes_an_event);

async fn every_state_change_publishes_an_event(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut sub = app.bus.subscribe();
    let ann = app.signup("Ann").await;
    let e = next_event(&mut sub, "signed_in").await;
    assert_eq!(
        (e["user_id"].as_str(), e["session_id"].as_str()),
        (Some(ann.id.as_str()), Some(ann.session.as_str()))
    );
    let bob = app.signup("Bob").await;

    let ws = app.workspace(&ann, "Team").await;
    let e = next_event(&mut sub, "workspace_added").await;
    assert_eq!(
        (e["user_id"].as_str(), e["workspace_id"].as_str()),
        (Some(ann.id.as_str()), Some(ws.as_str()))
    );

    app.join(&ann, &ws, &bob).await;
    assert_eq!(
        next_event(&mut sub, "member_joined").await["user_id"],
        bob.id
    );
    assert_eq!(
        next_event(&mut sub, "workspace_added").await["user_id"],
        bob.id
    );

    assert_eq!(
        app.patch(
            &format!("/api/workspaces/{ws}"),
            &ann.token,
            json!({"name": "Team 2"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        next_event(&mut sub, "workspace_updated").await["workspace_id"],
        ws
    );

    let private = app.channel(&ann, &ws, "secret", true, &[]).await;
    let e = next_event(&mut sub, "channel_created").await;
    assert_eq!(e["channel_id"], private);
    assert_eq!(e["visibility"], "private");
    assert_eq!(e["member_ids"], json!([ann.id]));
    let public = app.channel(&ann, &ws, "general", false, &[]).await;
    assert_eq!(
        next_event(&mut sub, "channel_created").await["visibility"],
        "public"
    );

    assert_eq!(
        app.patch(
            &format!("/api/channels/{public}"),
            &ann.token,
            json!({"description": "all"})
        )
        .await
        .status,
        StatusCode::OK
    );
    let e = next_event(&mut sub, "channel_updated").await;
    assert_eq!(
        (e["channel_id"].as_str(), e["workspace_id"].as_str()),
        (Some(public.as_str()), Some(ws.as_str()))
    );

    let r = app
        .post(
            &format!("/api/channels/{private}/members"),
            &ann.token,
            json!({"users": [bob.id]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        next_event(&mut sub, "channel_members_added").await["user_ids"],
        json!([bob.id])
    );
    assert_eq!(
        app.delete(
            &format!("/api/channels/{private}/members/{}", bob.id),
            &ann.token
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        next_event(&mut sub, "channel_member_removed").await["user_id"],
        bob.id
    );
    assert_eq!(
        app.delete(&format!("/api/channels/{private}"), &ann.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let e = next_event(&mut sub, "channel_deleted").await;
    assert_eq!(
        (e["channel_id"].as_str(), e["visibility"].as_str()),
        (Some(private.as_str()), Some("private"))
    );
    assert_eq!(e["member_ids"], json!([ann.id]));

    app.set_role(&ann, &ws, &bob, "moderator").await;
    assert_eq!(
        next_event(&mut sub, "member_role_changed").await["role"],
        "moderator"
    );

    assert_eq!(
        app.patch("/api/me", &bob.token, json!({"name": "Robert"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        next_event(&mut sub, "user_updated").await["workspace_ids"],
        json!([ws])
    );
    assert_eq!(
        next_event(&mut sub, "me_updated").await["what"],
        serde_json::Value::Null
    );
    assert_eq!(
        app.post("/api/me/app-settings", &bob.token, json!({"x": 1}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        next_event(&mut sub, "me_updated").await["what"],
        "app-settings"
    );

    assert_eq!(
        app.delete(
            &format!("/api/workspaces/{ws}/members/{}", bob.id),
            &ann.token
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let e = next_event(&mut sub, "member_left").await;
    assert_eq!(
        (e["user_id"].as_str(), e["kicked"].as_bool()),
        (Some(bob.id.as_str()), Some(true))
    );

    assert_eq!(
        app.delete(&format!("/api/workspaces/{ws}"), &ann.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        next_event(&mut sub, "workspace_deleted").await["member_ids"],
        json!([ann.id])
    );

    assert_eq!(
        app.call(Method::POST, "/api/auth/signout", Some(&bob.token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let e = next_event(&mut sub, "session_ended").await;
    assert_eq!(
        (e["session_id"].as_str(), e["reason"].as_str()),
        (Some(bob.session.as_str()), Some("signed_out"))
    );
    app.stop().await;
}
