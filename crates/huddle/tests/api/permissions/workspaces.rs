//! Workspace routes per role: reads, updates, invites, channel creation,
//! deletion and leaving.

use serde_json::json;

use super::{ch, role_in, world, Who, ALL, DELETE, GET, PATCH, POST};
use crate::both_engines;
use crate::common::*;
use Who::*;

both_engines!(
    workspace_routes_by_role,
    workspace_delete_by_role,
    leave_and_the_last_admin,
);

/// GET state/members/channels, PATCH, invites (with `canUsersInvite` off and on)
/// and channel creation, per role.
async fn workspace_routes_by_role(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    // Columns: Admin, Moderator, User, Guest, Outsider.
    let rows = [
        (GET, w.wp(""), None, [200, 200, 200, 200, 404]),
        (GET, w.wp("/members"), None, [200, 200, 200, 200, 404]),
        (GET, w.wp("/channels"), None, [200, 200, 200, 200, 404]),
        (
            PATCH,
            w.wp(""),
            Some(json!({"avatar": "a.png"})),
            [200, 200, 403, 403, 404],
        ),
        (
            POST,
            w.wp("/invites"),
            Some(json!({})),
            [201, 201, 403, 403, 404],
        ),
        (
            POST,
            w.wp("/channels"),
            Some(json!({"name": "c"})),
            [201, 201, 201, 403, 404],
        ),
    ];
    for (m, path, body, wants) in rows {
        for (who, want) in ALL.into_iter().zip(wants) {
            let r = w.req(who, m.clone(), &path, body.clone(), want).await;
            if m == POST && want == 201 && path.ends_with("/channels") {
                assert_eq!(r.body["creatorId"], w.u(who).id);
                assert_eq!(
                    r.body["userRelation"]["role"], "admin",
                    "the creator manages it"
                );
            }
        }
    }
    let r = w.get(Guest, &w.wp("/members"), 200).await;
    let roles: Vec<_> = w
        .users
        .iter()
        .map(|u| role_in(&r.body["members"], "id", &u.id))
        .collect();
    let want = ["admin", "moderator", "user", "guest"].map(|s| Some(s.to_owned()));
    assert_eq!(roles[..4], want, "{}", r.body);
    assert_eq!(roles[4], None);

    // Refused PATCHes do not apply: the last successful one holds.
    for (who, want) in ALL.into_iter().zip([200, 200, 403, 403, 404]) {
        w.req(
            who,
            PATCH,
            &w.wp(""),
            Some(json!({"name": format!("by {who:?}")})),
            want,
        )
        .await;
    }
    assert_eq!(
        w.get(User, &w.wp(""), 200).await.body["workspace"]["name"],
        "by Moderator"
    );

    // With canUsersInvite, users may invite too (guests never).
    let r = w
        .req(
            Moderator,
            PATCH,
            &w.wp(""),
            Some(json!({"canUsersInvite": true})),
            200,
        )
        .await;
    assert_eq!(r.body["canUsersInvite"], true);
    for (who, want) in ALL.into_iter().zip([201, 201, 201, 403, 404]) {
        let r = w
            .req(who, POST, &w.wp("/invites"), Some(json!({})), want)
            .await;
        if want == 201 {
            assert_eq!(r.body["workspaceId"], w.ws, "{who:?}");
        }
    }
    // A user's invite works.
    let r = w
        .req(User, POST, &w.wp("/invites"), Some(json!({})), 201)
        .await;
    let newcomer = app.signup("Newcomer").await;
    let code = r.body["code"].as_str().expect("code");
    let j = app
        .post(&format!("/api/join/{code}"), &newcomer.token, json!({}))
        .await;
    assert_eq!(
        (j.status.as_u16(), j.body["userRelation"]["role"].as_str()),
        (200, Some("user"))
    );
    app.stop().await;
}

/// DELETE /api/workspaces/{id}: admin only; afterwards it is gone for everyone.
async fn workspace_delete_by_role(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    for (who, want) in [(Outsider, 404), (Guest, 403), (User, 403), (Moderator, 403)] {
        w.req(who, DELETE, &w.wp(""), None, want).await;
        w.get(Admin, &w.wp(""), 200).await;
    }
    w.req(Admin, DELETE, &w.wp(""), None, 204).await;
    for who in [Admin, Moderator, User, Guest] {
        w.get(who, &w.wp(""), 404).await;
        w.get(who, &ch(&w.public, ""), 404).await;
        w.get(who, &ch(&w.private, ""), 404).await;
        assert_eq!(
            w.get(who, "/api/workspaces", 200).await.body["workspaces"],
            json!([])
        );
    }
    app.stop().await;
}

/// POST /api/workspaces/{id}/leave: any member but the last admin (409).
/// A fresh world per actor.
async fn leave_and_the_last_admin(engine: Engine) {
    let app = spawn_app(engine).await;
    for (who, want) in ALL.into_iter().zip([409, 204, 204, 204, 404]) {
        let w = world(&app).await;
        w.req(who, POST, &w.wp("/leave"), Some(json!({})), want)
            .await;
        let member = w.role_of(w.u(who)).await.is_some();
        assert_eq!(
            member,
            who != Outsider && want != 204,
            "{who:?} membership after leave"
        );
        w.get(who, &w.wp(""), if member { 200 } else { 404 }).await;
        if who == Admin {
            // With a second admin, the first may leave.
            app.set_role(w.u(Admin), &w.ws, w.u(Moderator), "admin")
                .await;
            w.req(Admin, POST, &w.wp("/leave"), Some(json!({})), 204)
                .await;
            w.get(Moderator, &w.wp(""), 200).await;
        }
    }
    app.stop().await;
}
