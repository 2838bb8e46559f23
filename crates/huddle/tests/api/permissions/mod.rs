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

use crate::common::*;

mod channels;
mod visibility;
mod workspace_members;
mod workspaces;

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

/// Actors in the column order of every matrix below.
const ALL: [Who; 5] = [Admin, Moderator, User, Guest, Outsider];
