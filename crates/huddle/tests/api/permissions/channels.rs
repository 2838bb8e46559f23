//! Channel routes per role: reads, updates, deletion, member management and
//! guests.

use serde_json::json;

use super::{ch, ids, role_in, world, Who, World, ALL, DELETE, PATCH, POST};
use crate::both_engines;
use crate::common::*;
use Who::*;

both_engines!(
    channel_routes_by_role,
    channel_delete_by_role,
    channel_member_management_by_role,
    guests_see_public_channels_only_when_added,
);

/// The channel admin (manager) and the plain member of a world's channel.
fn staff_of(private: bool) -> (Who, Who) {
    if private {
        (User, Moderator)
    } else {
        (Moderator, User)
    }
}

/// GET/PATCH /api/channels/{id} and GET its members, per role, on both channels.
async fn channel_routes_by_role(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    // (channel, private?, GET and GET members, PATCH); columns: the actor.
    let rows = [
        (
            &w.public,
            false,
            [200, 200, 200, 404, 404],
            [200, 200, 403, 404, 404],
        ),
        (
            &w.private,
            true,
            [404, 200, 200, 404, 404],
            [404, 200, 200, 404, 404],
        ),
    ];
    for (id, private, see, patch) in rows {
        let (manager, member) = staff_of(private);
        for (i, who) in ALL.into_iter().enumerate() {
            let r = w.get(who, &ch(id, ""), see[i]).await;
            if see[i] == 200 {
                let role = match who {
                    x if x == manager => Some("admin"),
                    x if x == member => Some("user"),
                    _ => None,
                };
                assert_eq!(r.body["id"], *id);
                assert_eq!(
                    r.body["userRelation"]["role"].as_str(),
                    role,
                    "{who:?} on {id}"
                );
            }
            let r = w.get(who, &ch(id, "/members"), see[i]).await;
            if see[i] == 200 {
                let members = &r.body["members"];
                assert_eq!(
                    role_in(members, "userId", &w.u(manager).id).as_deref(),
                    Some("admin")
                );
                assert_eq!(
                    role_in(members, "userId", &w.u(member).id).as_deref(),
                    Some("user")
                );
                assert_eq!(members.as_array().map(Vec::len), Some(2));
            }
            let name = format!("{who:?} was here");
            let r = w
                .req(
                    who,
                    PATCH,
                    &ch(id, ""),
                    Some(json!({"name": name})),
                    patch[i],
                )
                .await;
            if patch[i] == 200 {
                assert_eq!(r.body["name"], name);
            }
        }
    }
    // Refused PATCHes changed nothing: the last successful one holds.
    assert_eq!(
        w.get(Moderator, &ch(&w.public, ""), 200).await.body["name"],
        "Moderator was here"
    );
    assert_eq!(
        w.get(User, &ch(&w.private, ""), 200).await.body["name"],
        "User was here"
    );
    app.stop().await;
}

/// A fresh channel like the world's public or private one.
async fn new_channel(w: &World<'_>, private: bool) -> String {
    if private {
        w.new_private().await
    } else {
        w.new_public().await
    }
}

/// DELETE /api/channels/{id}: creator, channel admin/moderator, or workspace
/// admin/moderator, among those who see it. A fresh channel per case.
async fn channel_delete_by_role(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    for (private, wants) in [
        (false, [204, 204, 403, 404, 404]),
        (true, [404, 204, 204, 404, 404]),
    ] {
        for (who, want) in ALL.into_iter().zip(wants) {
            let id = new_channel(&w, private).await;
            w.req(who, DELETE, &ch(&id, ""), None, want).await;
            let creator = staff_of(private).0;
            w.get(creator, &ch(&id, ""), if want == 204 { 404 } else { 200 })
                .await;
        }
    }
    app.stop().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    RemoveMany,
    SetRole,
}

/// POST/DELETE /api/channels/{id}/members and DELETE/PATCH .../members/{userId}:
/// the channel admin, or a workspace admin who sees the channel; anyone may
/// remove themself; only workspace members can be added. A fresh channel per case.
async fn channel_member_management_by_role(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    // (private?, operation, target); columns: the actor.
    let rows = [
        (false, Op::Add, Guest, [200, 200, 403, 404, 404]),
        (false, Op::Add, Outsider, [400, 400, 403, 404, 404]),
        (false, Op::Remove, User, [204, 204, 204, 404, 404]),
        (false, Op::Remove, Moderator, [204, 204, 403, 404, 404]),
        (false, Op::Remove, Guest, [404, 404, 403, 404, 404]),
        (false, Op::RemoveMany, User, [204, 204, 204, 404, 404]),
        (false, Op::SetRole, User, [200, 200, 403, 404, 404]),
        (true, Op::Add, Guest, [404, 403, 200, 404, 404]),
        (true, Op::Add, Admin, [404, 403, 200, 404, 404]),
        (true, Op::Add, Outsider, [404, 403, 400, 404, 404]),
        (true, Op::Remove, Moderator, [404, 204, 204, 404, 404]),
        (true, Op::Remove, User, [404, 403, 204, 404, 404]),
        (true, Op::RemoveMany, Moderator, [404, 204, 204, 404, 404]),
        (true, Op::SetRole, Moderator, [404, 403, 200, 404, 404]),
    ];
    for (private, op, target, wants) in rows {
        for (who, want) in ALL.into_iter().zip(wants) {
            let id = new_channel(&w, private).await;
            let t = w.u(target).id.clone();
            let (m, path, body) = match op {
                Op::Add => (POST, ch(&id, "/members"), Some(json!({"users": [t]}))),
                Op::Remove => (DELETE, ch(&id, &format!("/members/{t}")), None),
                Op::RemoveMany => (DELETE, ch(&id, "/members"), Some(json!({"users": [t]}))),
                Op::SetRole => (
                    PATCH,
                    ch(&id, &format!("/members/{t}")),
                    Some(json!({"role": "moderator"})),
                ),
            };
            let ctx = format!("{op:?} by {who:?} on {target:?}, private={private}");
            let r = w.req(who, m, &path, body, want).await;
            if want == 400 {
                assert_eq!(r.body["error"]["field"], "users", "{ctx}");
            }
            let (manager, member) = staff_of(private);
            let was = match target {
                x if x == manager => Some("admin"),
                x if x == member => Some("user"),
                _ => None,
            };
            let now = match (op, want) {
                (Op::Add, 200) => Some("user"),
                (Op::Remove | Op::RemoveMany, 204) => None,
                (Op::SetRole, 200) => Some("moderator"),
                _ => was,
            };
            // Someone who still sees the channel reads its members.
            let viewer = match (private, target == manager) {
                (false, _) => Admin,
                (true, true) => member,
                (true, false) => manager,
            };
            let members = w.get(viewer, &ch(&id, "/members"), 200).await;
            assert_eq!(
                role_in(&members.body["members"], "userId", &t).as_deref(),
                now,
                "{ctx}"
            );
            if want == 200 {
                assert_eq!(
                    role_in(&r.body["members"], "userId", &t).as_deref(),
                    now,
                    "{ctx}: reply"
                );
            }
            // The target sees the channel when a member, or when it is public
            // and the target a non-guest member of the workspace.
            let sees = target != Outsider && (now.is_some() || (!private && target != Guest));
            w.get(target, &ch(&id, ""), if sees { 200 } else { 404 })
                .await;
        }
    }
    app.stop().await;
}

/// Guests do not see public channels unless added explicitly.
async fn guests_see_public_channels_only_when_added(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    let id = app
        .channel(w.u(User), &w.ws, "with-guest", false, &[w.u(Guest)])
        .await;
    w.get(Guest, &ch(&w.public, ""), 404).await;
    assert_eq!(
        w.get(Guest, &ch(&id, ""), 200).await.body["userRelation"]["role"],
        "user"
    );
    w.get(Guest, &ch(&id, "/members"), 200).await;
    let list = w.get(Guest, &w.wp("/channels"), 200).await;
    assert_eq!(ids(&list.body["channels"], "id"), vec![id.clone()]);
    let state = w.get(Guest, &w.wp(""), 200).await;
    assert_eq!(ids(&state.body["channels"], "id"), vec![id.clone()]);
    // A guest member is a plain member: no updates, no member management.
    w.req(
        Guest,
        PATCH,
        &ch(&id, ""),
        Some(json!({"name": "mine"})),
        403,
    )
    .await;
    w.req(Guest, DELETE, &ch(&id, ""), None, 403).await;
    w.req(
        Guest,
        POST,
        &ch(&id, "/members"),
        Some(json!({"users": [w.u(Admin).id]})),
        403,
    )
    .await;
    // Removed again, the channel is gone for the guest.
    w.req(
        User,
        DELETE,
        &ch(&id, &format!("/members/{}", w.u(Guest).id)),
        None,
        204,
    )
    .await;
    w.get(Guest, &ch(&id, ""), 404).await;
    assert_eq!(
        w.get(Guest, &w.wp("/channels"), 200).await.body["channels"],
        json!([])
    );
    app.stop().await;
}
