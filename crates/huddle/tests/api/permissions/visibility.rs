//! Who sees what: outsiders and non-members of a private channel get 404
//! everywhere.

use super::{ch, channel_routes, ids, sorted, workspace_routes, world, Who};
use crate::both_engines;
use crate::common::*;
use Who::*;

both_engines!(
    outsiders_get_404_on_every_route,
    private_channel_is_404_to_non_members_on_every_route,
);

/// A non-member of the workspace gets 404 on every workspace and channel route,
/// with the same body as for an id that does not exist; user profiles are 404
/// across workspaces.
async fn outsiders_get_404_on_every_route(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let mut routes = workspace_routes(&w, &w.u(User).id);
    routes.extend(channel_routes(&w.public, &w.u(User).id));
    routes.extend(channel_routes(&w.private, &w.u(Moderator).id));
    for (m, path, body) in routes {
        let r = w.req(Outsider, m.clone(), &path, body.clone(), 404).await;
        // The same request on an id that does not exist answers the same body.
        let ghost = [&w.ws, &w.public, &w.private]
            .iter()
            .fold(path.clone(), |p, id| p.replace(*id, &missing));
        let g = w.req(Admin, m, &ghost, body, 404).await;
        assert_eq!(
            r.body, g.body,
            "{path}: an outsider's 404 differs from a missing id's"
        );
    }
    // Nothing the outsider tried took effect.
    let state = w.get(Admin, &w.wp(""), 200).await;
    assert_eq!(state.body["workspace"]["name"], "Matrix");
    assert_eq!(state.body["users"].as_array().map(Vec::len), Some(4));
    let r = w.get(User, &ch(&w.private, "/members"), 200).await;
    assert_eq!(
        ids(&r.body["members"], "userId"),
        sorted(&[&w.u(User).id, &w.u(Moderator).id])
    );

    // GET /api/users/{id}: only users sharing a workspace (and oneself).
    let profile = |who: Who| format!("/api/users/{}", w.u(who).id);
    w.get(Admin, &profile(Outsider), 404).await;
    w.get(Outsider, &profile(Admin), 404).await;
    w.get(Outsider, &format!("/api/users/{missing}"), 404).await;
    assert_eq!(
        w.get(Outsider, &profile(Outsider), 200).await.body["id"],
        w.u(Outsider).id
    );
    for who in [Admin, Moderator, User, Guest] {
        let r = w.get(who, &profile(Guest), 200).await;
        assert_eq!(r.body["id"], w.u(Guest).id);
        assert!(
            r.body.get("email").is_none(),
            "a public profile has no email"
        );
    }
    app.stop().await;
}

/// A private channel does not exist for workspace members outside it — not even
/// the workspace admin: 404 on every channel route, absent from every list.
async fn private_channel_is_404_to_non_members_on_every_route(engine: Engine) {
    let app = spawn_app(engine).await;
    let w = world(&app).await;
    let missing = uuid::Uuid::new_v4().to_string();
    for who in [Admin, Guest, Outsider] {
        for (m, path, body) in channel_routes(&w.private, &w.u(Moderator).id) {
            let r = w.req(who, m.clone(), &path, body.clone(), 404).await;
            let g = w
                .req(who, m, &path.replace(&w.private, &missing), body, 404)
                .await;
            assert_eq!(
                r.body, g.body,
                "{who:?} {path}: the 404 reveals that the channel exists"
            );
        }
    }
    // GET /api/workspaces/{id}/channels and the channels of GET /api/workspaces/{id}.
    let visible = [
        (Admin, sorted(&[&w.public])),
        (Moderator, sorted(&[&w.public, &w.private])),
        (User, sorted(&[&w.public, &w.private])),
        (Guest, vec![]),
    ];
    for (who, want) in visible {
        let list = w.get(who, &w.wp("/channels"), 200).await;
        assert_eq!(
            ids(&list.body["channels"], "id"),
            want,
            "{who:?}: GET .../channels"
        );
        let state = w.get(who, &w.wp(""), 200).await;
        assert_eq!(
            ids(&state.body["channels"], "id"),
            want,
            "{who:?}: GET /api/workspaces/{{id}}"
        );
        if matches!(who, Admin | Guest) {
            assert!(
                !state.body.to_string().contains("secret"),
                "{who:?} sees the private name"
            );
        }
    }
    // The non-members' attempts changed nothing.
    let r = w.get(User, &ch(&w.private, ""), 200).await;
    assert_eq!(
        (r.body["name"].as_str(), r.body["isPrivate"].as_bool()),
        (Some("secret"), Some(true))
    );
    assert_eq!(r.body["userRelation"]["role"], "admin");
    let r = w.get(Moderator, &ch(&w.private, "/members"), 200).await;
    assert_eq!(
        ids(&r.body["members"], "userId"),
        sorted(&[&w.u(User).id, &w.u(Moderator).id])
    );
    app.stop().await;
}
