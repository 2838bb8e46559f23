//! The test harness.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use huddle::config::{Config, Secret};
use huddle::Application;
#[allow(unused_imports)]
// used by the API suite, not by every binary that includes this harness
pub use huddle_core::Bus;
use huddle_core::InProcessBus;

/// The secret every test server signs with, so tests can forge tokens on purpose.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs an async test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Engine::Postgres).await
            }
        }
    )*};
}

/// The PostgreSQL server tests use (`HUDDLE_TEST_DATABASE_URL`).
pub fn postgres_url() -> String {
    std::env::var("HUDDLE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub bus: Arc<InProcessBus>,
    pub config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    schema: Option<String>,
    _dir: Arc<tempfile::TempDir>,
}

/// A configuration for tests: port 0, cheap password hashing, fixed secret.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.http.listen = "127.0.0.1:0".parse().expect("addr");
    c.data_dir = dir.to_path_buf();
    c.auth.jwt_secret = Some(Secret(JWT_SECRET.into()));
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    // Tests sign up and post from one address far faster than people do;
    // the tests of these limits set them low again.
    c.limits.signup_ip_attempts = 100_000;
    c.limits.chat_per_sec = 100_000;
    c.limits.chat_burst = 100_000;
    c.limits.rest_writes_per_sec = 100_000;
    c.limits.rest_writes_burst = 100_000;
    // Many servers run at once: no fixed second port.
    c.comet.listen = String::new();
    c.users_socket.port = 0;
    c
}

/// A fresh database for `engine`: (database url, schema to drop afterwards).
pub async fn fresh_database(engine: Engine, dir: &std::path::Path) -> (String, Option<String>) {
    match engine {
        Engine::Sqlite => (
            format!("sqlite://{}", dir.join("huddle.db").display()),
            None,
        ),
        Engine::Postgres => {
            let schema = format!("huddle_t_{}", uuid::Uuid::new_v4().simple());
            let admin = huddle_store::Db::connect(&postgres_url(), &Default::default())
                .await
                .expect("PostgreSQL must be reachable at HUDDLE_TEST_DATABASE_URL (scripts/test starts it)");
            admin
                .execute_raw(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create schema");
            admin.close().await;
            let sep = if postgres_url().contains('?') {
                '&'
            } else {
                '?'
            };
            (
                format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_url()),
                Some(schema),
            )
        }
    }
}

/// Drops a schema made by [`fresh_database`].
pub async fn drop_schema(schema: &str) {
    let admin = huddle_store::Db::connect(&postgres_url(), &Default::default())
        .await
        .expect("PostgreSQL reachable");
    admin
        .execute_raw(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    admin.close().await;
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, |_| {}).await
}

/// Starts a server whose configuration `tweak` may adjust.
pub async fn spawn_app_with(engine: Engine, tweak: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var_os("RUST_LOG").is_some() {
        huddle::telemetry::init();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, schema) = fresh_database(engine, dir.path()).await;
    let mut config = test_config(dir.path());
    config.database.url = Some(url);
    tweak(&mut config);
    start(config, schema, Arc::new(dir)).await
}

async fn start(config: Config, schema: Option<String>, dir: Arc<tempfile::TempDir>) -> TestApp {
    let app = Application::build(config.clone())
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let bus = app.bus();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        bus,
        config,
        shutdown: Some(tx),
        server: Some(server),
        schema,
        _dir: dir,
    }
}

/// A client whose connections come from `ip` (a loopback address such as
/// 127.0.0.2), for limits keyed by the client address.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse().expect("ip")))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Sends `body` as JSON with `client`; the answer as a [`Reply`].
pub async fn send_json(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Reply {
    let mut req = client.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        headers,
    }
}

/// The value of the `/metrics` sample named exactly `series`, or 0.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
    pub session: String,
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Stops the server gracefully and drops its PostgreSQL schema.
    pub async fn stop(mut self) {
        self.shutdown_server().await;
        if let Some(schema) = self.schema.take() {
            drop_schema(&schema).await;
        }
    }

    async fn shutdown_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.expect("server task").expect("server ran");
        }
    }

    /// Stops and starts the server again on the same database and data directory.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown_server().await;
        let mut config = self.config.clone();
        config.http.listen = "127.0.0.1:0".parse().expect("addr");
        let schema = self.schema.take();
        start(config, schema, self._dir.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs up `name` with a unique email.
    pub async fn signup(&self, name: &str) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            uuid::Uuid::new_v4().simple()
        );
        let r = self
            .call(
                Method::POST,
                "/api/auth/signup",
                None,
                Some(json!({"email": email, "password": "correct horse", "name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "signup: {:?}", r.body);
        user_from(&r.body, email)
    }

    /// Creates a workspace owned by `admin`; returns its id.
    pub async fn workspace(&self, admin: &TestUser, name: &str) -> String {
        let r = self
            .post("/api/workspaces", &admin.token, json!({"name": name}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create workspace: {:?}",
            r.body
        );
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Makes `user` join `workspace` through an invite made by `admin`.
    pub async fn join(&self, admin: &TestUser, workspace: &str, user: &TestUser) {
        let r = self
            .post(
                &format!("/api/workspaces/{workspace}/invites"),
                &admin.token,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "invite: {:?}", r.body);
        let code = r.body["code"].as_str().expect("code").to_owned();
        let r = self
            .post(&format!("/api/join/{code}"), &user.token, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "join: {:?}", r.body);
    }

    /// Sets `user`'s role in `workspace` (as `admin`).
    pub async fn set_role(&self, admin: &TestUser, workspace: &str, user: &TestUser, role: &str) {
        let r = self
            .patch(
                &format!("/api/workspaces/{workspace}/members/{}", user.id),
                &admin.token,
                json!({"role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "set role: {:?}", r.body);
    }

    /// Creates a channel as `user`; returns its id.
    pub async fn channel(
        &self,
        user: &TestUser,
        workspace: &str,
        name: &str,
        private: bool,
        members: &[&TestUser],
    ) -> String {
        let users: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let r = self
            .post(
                &format!("/api/workspaces/{workspace}/channels"),
                &user.token,
                json!({"name": name, "isPrivate": private, "users": users}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create channel: {:?}",
            r.body
        );
        r.body["id"].as_str().expect("id").to_owned()
    }
}

/// Reads a `{user, credentials}` answer.
pub fn user_from(body: &Value, email: String) -> TestUser {
    TestUser {
        id: body["user"]["id"].as_str().expect("user.id").to_owned(),
        email,
        token: body["credentials"]["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned(),
        refresh: body["credentials"]["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
        session: body["credentials"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned(),
    }
}

/// Waits (bounded) for the next bus publication named `event`, skipping others.
pub async fn next_event(sub: &mut huddle_core::Subscription, event: &str) -> Value {
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, async {
        loop {
            let p = sub.recv().await.expect("bus open");
            if p.event == event {
                return serde_json::from_slice::<Value>(&p.payload).expect("event json");
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} event within {deadline:?}"))
}
