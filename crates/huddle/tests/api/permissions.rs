//! The permission matrix (SPEC §2, seeds-research §1.6, `huddle_domain::roles`)
//! over real HTTP: every workspace and channel route, driven per role as tables
//! of (actor, expected status).
//!
//! Every test builds the same world with [`world`]:
//! - one workspace whose creator is `admin`; `moderator`, `user` and `guest` join
//!   by invite and get their roles from the admin; `outsider` is signed up but
//!   is not a member;
//! - `public`: a public channel created by the MODERATOR (channel admin), with
//!   the `user` as an explicit member (channel role `user`);
//! - `private`: a private channel created by the USER (channel admin), with the
//!   `moderator` as an explicit member (channel role `user`). The workspace
//!   ADMIN and the GUEST are NOT members of it: for them it does not exist (404).
//!
//! Destructive rows (kick, leave, role changes, deletes, member changes) run on
//! a fresh world or a fresh channel, so no row depends on another.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::common::*;

both_engines!(
    outsiders_get_404_on_every_route,
    private_channel_is_404_to_non_members_on_every_route,
    workspace_routes_by_role,
    workspace_delete_by_role,
    leave_and_the_last_admin,
    kick_matrix,
    role_change_matrix,
    channel_routes_by_role,
    channel_delete_by_role,
    channel_member_management_by_role,
    guests_see_public_channels_only_when_added,
);

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Moderator,
    User,
    Guest,
    Outsider,
}
use Who::*;

struct World<'a> {
    app: &'a TestApp,
    users: [TestUser; 5],
    ws: String,
    public: String,
    private: String,
}

/// Builds the world described in the module documentation (fresh users each time).
async fn world(app: &TestApp) -> World<'_> {
    let mut users = Vec::new();
    for name in ["Admin", "Moderator", "User", "Guest", "Outsider"] {
        users.push(app.signup(name).await);
    }
    let users: [TestUser; 5] = users.try_into().expect("five users");
    let ws = app.workspace(&users[0], "Matrix").await;
    for u in &users[1..4] {
        app.join(&users[0], &ws, u).await;
    }
    app.set_role(&users[0], &ws, &users[1], "moderator").await;
    app.set_role(&users[0], &ws, &users[3], "guest").await;
    let mut w = World {
        app,
        users,
        ws,
        public: String::new(),
        private: String::new(),
    };
    w.public = w.new_public().await;
    w.private = w.new_private().await;
    w
}

impl World<'_> {
    fn u(&self, who: Who) -> &TestUser {
        &self.users[who as usize]
    }

    /// A channel like `public`: the moderator's, with the user as member.
    async fn new_public(&self) -> String {
        self.app
            .channel(
                self.u(Moderator),
                &self.ws,
                "general",
                false,
                &[self.u(User)],
            )
            .await
    }

    /// A channel like `private`: the user's, with the moderator as member.
    async fn new_private(&self) -> String {
        self.app
            .channel(self.u(User), &self.ws, "secret", true, &[self.u(Moderator)])
            .await
    }

    /// `/api/workspaces/{ws}{rest}`.
    fn wp(&self, rest: &str) -> String {
        format!("/api/workspaces/{}{rest}", self.ws)
    }

    /// Sends a request as `who`; checks the status and, for an error, its envelope.
    async fn req(&self, who: Who, m: Method, path: &str, body: Option<Value>, want: u16) -> Reply {
        let ctx = format!("{who:?} {m} {path}");
        let r = self.app.call(m, path, Some(&self.u(who).token), body).await;
        assert_eq!(r.status.as_u16(), want, "{ctx}: {}", r.body);
        let code = match want {
            400 => "validation_failed",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            _ => return r,
        };
        assert_eq!(r.code(), code, "{ctx}: {}", r.body);
        let message = r.body["error"]["message"].as_str();
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "{ctx}: no message: {}",
            r.body
        );
        let keys = r.body.as_object().map(|o| o.len());
        assert_eq!(keys, Some(1), "{ctx}: not a bare envelope: {}", r.body);
        r
    }

    async fn get(&self, who: Who, path: &str, want: u16) -> Reply {
        self.req(who, GET, path, None, want).await
    }

    /// The workspace role of `who`, from the admin's member list (`None`: not a member).
    async fn role_of(&self, who: &TestUser) -> Option<String> {
        let r = self
            .app
            .get(&self.wp("/members"), &self.u(Admin).token)
            .await;
        role_in(&r.body["members"], "id", &who.id)
    }
}

fn ch(id: &str, rest: &str) -> String {
    format!("/api/channels/{id}{rest}")
}

/// Sorted `key`s of a list.
fn ids(list: &Value, key: &str) -> Vec<String> {
    let items = list.as_array().expect("a list");
    let mut out: Vec<String> = items
        .iter()
        .map(|x| x[key].as_str().expect("id").into())
        .collect();
    out.sort();
    out
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

/// The role of `id` in a member list (`key` is `id` or `userId`).
fn role_in(list: &Value, key: &str, id: &str) -> Option<String> {
    let member = list.as_array()?.iter().find(|m| m[key] == id)?;
    member["role"].as_str().map(str::to_owned)
}

type Route = (Method, String, Option<Value>);

/// Every workspace route with a well-formed body (`target`: a member's id).
fn workspace_routes(w: &World<'_>, target: &str) -> Vec<Route> {
    let member = w.wp(&format!("/members/{target}"));
    vec![
        (GET, w.wp(""), None),
        (PATCH, w.wp(""), Some(json!({"name": "renamed"}))),
        (DELETE, w.wp(""), None),
        (POST, w.wp("/invites"), Some(json!({}))),
        (GET, w.wp("/members"), None),
        (DELETE, member.clone(), None),
        (PATCH, member, Some(json!({"role": "moderator"}))),
        (GET, w.wp("/channels"), None),
        (POST, w.wp("/channels"), Some(json!({"name": "new"}))),
        (POST, w.wp("/leave"), Some(json!({}))),
    ]
}

/// Every channel route with a well-formed body (`target`: a channel member's id).
fn channel_routes(id: &str, target: &str) -> Vec<Route> {
    let users = json!({"users": [target]});
    let member = ch(id, &format!("/members/{target}"));
    vec![
        (GET, ch(id, ""), None),
        (PATCH, ch(id, ""), Some(json!({"name": "renamed"}))),
        (DELETE, ch(id, ""), None),
        (GET, ch(id, "/members"), None),
        (POST, ch(id, "/members"), Some(users.clone())),
        (DELETE, ch(id, "/members"), Some(users)),
        (DELETE, member.clone(), None),
        (PATCH, member, Some(json!({"role": "moderator"}))),
    ]
}

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

/// Actors in the column order of every matrix below.
const ALL: [Who; 5] = [Admin, Moderator, User, Guest, Outsider];

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
