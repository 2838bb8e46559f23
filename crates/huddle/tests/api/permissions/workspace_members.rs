//! Workspace member management per role: kicks and role changes.

use serde_json::json;

use super::{ch, world, Who, ALL, DELETE, PATCH};
use crate::both_engines;
use crate::common::*;
use Who::*;

both_engines!(kick_matrix, role_change_matrix);

/// DELETE /api/workspaces/{id}/members/{userId}: admins kick anyone else,
/// moderators kick users and guests, nobody kicks themself (400: use leave),
/// a non-member target is 404.
async fn kick_matrix(engine: Engine) {
    let app = spawn_app(engine).await;
    let shared = world(&app).await;
    // Rows: the target; columns: the actor (Admin, Moderator, User, Guest, Outsider).
    let rows = [
        (Admin, [400, 403, 403, 403, 404]),
        (Moderator, [204, 400, 403, 403, 404]),
        (User, [204, 204, 400, 403, 404]),
        (Guest, [204, 204, 403, 400, 404]),
        (Outsider, [404, 404, 404, 404, 404]),
    ];
    for (target, wants) in rows {
        for (who, want) in ALL.into_iter().zip(wants) {
            let fresh;
            let w = if want == 204 {
                fresh = world(&app).await;
                &fresh
            } else {
                &shared
            };
            let t = w.u(target);
            w.req(
                who,
                DELETE,
                &w.wp(&format!("/members/{}", t.id)),
                None,
                want,
            )
            .await;
            let present = w.role_of(t).await.is_some();
            assert_eq!(
                present,
                want != 204 && target != Outsider,
                "{who:?} kicks {target:?}"
            );
            if want == 204 {
                w.get(target, &w.wp(""), 404).await;
                w.get(target, &ch(&w.public, ""), 404).await;
            }
        }
    }
    // A moderator cannot kick another moderator.
    let w = world(&app).await;
    app.set_role(w.u(Admin), &w.ws, w.u(User), "moderator")
        .await;
    w.req(
        Moderator,
        DELETE,
        &w.wp(&format!("/members/{}", w.u(User).id)),
        None,
        403,
    )
    .await;
    app.stop().await;
}

/// PATCH /api/workspaces/{id}/members/{userId}: admins only; the last admin
/// cannot be demoted (409); a non-member target is 404.
async fn role_change_matrix(engine: Engine) {
    let app = spawn_app(engine).await;
    let shared = world(&app).await;
    // Rows: the target and its new role; columns: the actor.
    let rows = [
        (Admin, "user", [409, 403, 403, 403, 404]),
        (Moderator, "admin", [200, 403, 403, 403, 404]),
        (User, "moderator", [200, 403, 403, 403, 404]),
        (Guest, "user", [200, 403, 403, 403, 404]),
        (Outsider, "user", [404, 404, 404, 404, 404]),
    ];
    for (target, role, wants) in rows {
        for (who, want) in ALL.into_iter().zip(wants) {
            let fresh;
            let w = if want == 200 {
                fresh = world(&app).await;
                &fresh
            } else {
                &shared
            };
            let t = w.u(target);
            let path = w.wp(&format!("/members/{}", t.id));
            let r = w
                .req(who, PATCH, &path, Some(json!({"role": role})), want)
                .await;
            let was = ["admin", "moderator", "user", "guest"]
                .get(target as usize)
                .copied();
            let now = if want == 200 { Some(role) } else { was };
            assert_eq!(
                w.role_of(t).await.as_deref(),
                now,
                "{who:?} sets {target:?} to {role}"
            );
            if want == 200 {
                assert_eq!(
                    (r.body["id"].as_str(), r.body["role"].as_str()),
                    (Some(t.id.as_str()), now)
                );
            }
        }
    }
    // A guest promoted to user now sees public channels.
    let w = world(&app).await;
    w.get(Guest, &ch(&w.public, ""), 404).await;
    app.set_role(w.u(Admin), &w.ws, w.u(Guest), "user").await;
    w.get(Guest, &ch(&w.public, ""), 200).await;
    // With a second admin the first may step down, and then has no admin rights.
    app.set_role(w.u(Admin), &w.ws, w.u(Moderator), "admin")
        .await;
    let member = |who: Who| w.wp(&format!("/members/{}", w.u(who).id));
    w.req(
        Admin,
        PATCH,
        &member(Admin),
        Some(json!({"role": "user"})),
        200,
    )
    .await;
    w.req(
        Admin,
        PATCH,
        &member(User),
        Some(json!({"role": "guest"})),
        403,
    )
    .await;
    // And now the former moderator is the last admin.
    w.req(
        Moderator,
        PATCH,
        &member(Moderator),
        Some(json!({"role": "user"})),
        409,
    )
    .await;
    app.stop().await;
}
