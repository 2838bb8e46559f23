//! The workspace life cycle over REST: create, invite, join, full state,
//! leave, kick, roles, delete.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_engines;
use crate::common::*;

both_engines!(
    signup_workspace_invite_join_private_channel,
    leave_kick_and_delete,
    data_survives_a_restart
);

/// The curl walk-through of the README, as a test.
async fn signup_workspace_invite_join_private_channel(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let ws = app.workspace(&ann, "Team").await;

    let r = app
        .post(
            &format!("/api/workspaces/{ws}/invites"),
            &ann.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let code = r.body["code"].as_str().expect("code").to_owned();
    assert_eq!(r.body["workspaceId"], ws);
    let r = app
        .post(&format!("/api/join/{code}"), &bob.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["userRelation"]["role"], "user");
    assert_eq!(
        app.post(&format!("/api/join/{code}"), &bob.token, json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.post("/api/join/not-a-code", &bob.token, json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let r = app.get("/api/workspaces", &bob.token).await;
    assert_eq!(r.body["workspaces"][0]["id"], ws);

    let private = app.channel(&ann, &ws, "leads", true, &[]).await;
    let public = app.channel(&bob, &ws, "general", false, &[]).await;

    let state = app.get(&format!("/api/workspaces/{ws}"), &bob.token).await;
    assert_eq!(state.status, StatusCode::OK);
    assert_eq!(state.body["workspace"]["id"], ws);
    assert_eq!(state.body["workspace"]["userRelation"]["role"], "user");
    let channels: Vec<&str> = state.body["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        channels,
        vec![public.as_str()],
        "Bob sees the public channel only"
    );
    let users = state.body["users"].as_array().expect("users");
    assert_eq!(users.len(), 2);
    assert!(users
        .iter()
        .all(|u| u["onlineStatus"] == "offline" && u["role"].is_string()));

    let state = app.get(&format!("/api/workspaces/{ws}"), &ann.token).await;
    assert_eq!(
        state.body["channels"].as_array().expect("channels").len(),
        2
    );
    assert_eq!(
        app.get(&format!("/api/channels/{private}"), &bob.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .get(&format!("/api/channels/{private}"), &ann.token)
        .await;
    assert_eq!(
        (
            r.body["isPrivate"].as_bool(),
            r.body["userRelation"]["role"].as_str()
        ),
        (Some(true), Some("admin"))
    );
    app.stop().await;
}

async fn leave_kick_and_delete(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let bob = app.signup("Bob").await;
    let cat = app.signup("Cat").await;
    let ws = app.workspace(&ann, "Team").await;
    app.join(&ann, &ws, &bob).await;
    app.join(&ann, &ws, &cat).await;
    let private = app.channel(&ann, &ws, "p", true, &[&bob]).await;

    // Kicked: gone from the workspace and from its channels.
    assert_eq!(
        app.delete(
            &format!("/api/workspaces/{ws}/members/{}", bob.id),
            &ann.token
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/workspaces/{ws}"), &bob.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let members = app
        .get(&format!("/api/channels/{private}/members"), &ann.token)
        .await;
    assert_eq!(
        members.body["members"].as_array().expect("members").len(),
        1
    );

    // Leaving.
    assert_eq!(
        app.post(
            &format!("/api/workspaces/{ws}/leave"),
            &cat.token,
            json!({})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/workspaces/{ws}"), &cat.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.get("/api/workspaces", &cat.token).await.body["workspaces"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // The last member leaving deletes the workspace.
    assert_eq!(
        app.post(
            &format!("/api/workspaces/{ws}/leave"),
            &ann.token,
            json!({})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/channels/{private}"), &ann.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Deleting a workspace removes its channels.
    let ws2 = app.workspace(&ann, "Other").await;
    let ch = app.channel(&ann, &ws2, "c", false, &[]).await;
    assert_eq!(
        app.delete(&format!("/api/workspaces/{ws2}"), &ann.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/channels/{ch}"), &ann.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/workspaces/{ws2}"),
            Some(&ann.token),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Restart in-process on the same data (the process-level SIGTERM/SIGKILL tests
/// are in `tests/process.rs`).
async fn data_survives_a_restart(engine: Engine) {
    let app = spawn_app(engine).await;
    let ann = app.signup("Ann").await;
    let ws = app.workspace(&ann, "Team").await;
    let app = app.restart().await;
    let r = app.get(&format!("/api/workspaces/{ws}"), &ann.token).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the session and the workspace survive: {:?}",
        r.body
    );
    app.stop().await;
}
