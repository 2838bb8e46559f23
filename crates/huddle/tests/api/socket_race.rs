//! No socket outlives its session or membership, even when the end races the
//! socket's authentication: many sockets authenticate (`auth` on `/`, or the
//! community handshake) while the session is signed out or the member kicked,
//! over real websockets, round after round. Whatever the interleaving, once
//! everything has settled no socket is left authenticated (`/metrics`
//! `huddle_connections`). Without the re-check after subscribing, sockets that
//! read the session or membership before it ended and subscribed after its
//! close event was delivered stayed authenticated (zombies).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::both_engines;
use crate::common::{spawn_app_with, user_from, Engine, TestApp, TestUser};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sockets raced against each revocation, and rounds per scenario.
const SOCKETS: usize = 24;
const ROUNDS: usize = 8;

/// A Socket.IO v5 client over a websocket (just enough of the protocol).
struct Client {
    ws: Ws,
}

impl Client {
    async fn open(app: &TestApp) -> Client {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            app.base.replacen("http", "ws", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let mut c = Client { ws };
        let open = c.recv().await.expect("engine.io open");
        assert!(open.starts_with('0'), "engine.io open: {open}");
        c
    }

    /// Connected to namespace `/`, not yet authenticated.
    async fn root(app: &TestApp) -> Client {
        let mut c = Client::open(app).await;
        c.send("40".into()).await;
        let reply = c.recv().await.expect("CONNECT answered");
        assert!(reply.starts_with("40"), "CONNECT /: {reply}");
        c
    }

    async fn send(&mut self, text: String) {
        // The server may already have closed it: that is an outcome, not an error.
        let _closed = self.ws.send(Message::text(text)).await;
    }

    /// The next Socket.IO text packet (answering pings); `None` once closed.
    async fn recv(&mut self) -> Option<String> {
        loop {
            let msg = timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a packet within 10 s")?;
            match msg {
                Ok(Message::Text(t)) if t.as_str() == "2" => self.send("3".into()).await,
                Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits for the answer to `auth` (success, refusal, or the socket closed).
    async fn auth_answered(&mut self) {
        while let Some(p) = self.recv().await {
            if p.starts_with("42[\"auth-success\"")
                || p.starts_with("42[\"socket-api-error\"")
                || p.starts_with("41")
            {
                return;
            }
        }
    }
}

/// Authenticated sockets of `protocol` as `/metrics` counts them.
async fn connections(app: &TestApp, protocol: &str) -> u64 {
    sampled(
        app,
        &format!("huddle_connections{{protocol=\"{protocol}\"}} "),
    )
    .await
}

/// The value of one `/metrics` sample (its name and labels, then a space).
async fn sampled(app: &TestApp, sample: &str) -> u64 {
    app.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has {sample}"))
}

/// Waits (bounded) until no socket of `protocol` is authenticated and, for
/// `/`, no device is left in presence either (an `auth` interrupted after
/// attaching its device must not leave it behind); the count left otherwise.
async fn settled_to_zero(app: &TestApp, protocol: &str) -> Result<(), u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut n = connections(app, protocol).await;
        if protocol == "socketio" {
            n += sampled(app, "huddle_presence_devices ").await;
        }
        if n == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(n);
        }
        // Poll interval while the close events are delivered, not a synchronisation.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn signin(app: &TestApp, user: &TestUser) -> TestUser {
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/auth/signin",
            None,
            Some(json!({"email": user.email, "password": "correct horse"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "signin: {:?}", r.body);
    user_from(&r.body, user.email.clone())
}

/// Sends `auth` on every socket while `end` runs, then waits for every answer.
async fn race_auth(
    sockets: &mut [Client],
    auth: &Value,
    end: impl std::future::Future<Output = ()>,
) {
    let packet = format!("42{}", json!(["auth", auth]));
    let (first, second) = sockets.split_at_mut(SOCKETS / 3);
    for s in first.iter_mut() {
        s.send(packet.clone()).await;
    }
    let sends = async {
        for s in second.iter_mut() {
            s.send(packet.clone()).await;
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(sends, end);
    for s in sockets.iter_mut() {
        s.auth_answered().await;
    }
}

fn big_limits(engine: Engine) -> impl std::future::Future<Output = TestApp> {
    spawn_app_with(engine, |c| {
        c.limits.max_connections_per_user = 10_000;
        // A device that lost its socket keeps its place this long; one still
        // in presence well after it was never going to leave (a leak).
        c.realtime.grace_period = Duration::from_millis(200);
    })
}

async fn workspace_auth_racing_signout_leaves_no_zombie(engine: Engine) {
    let app = big_limits(engine).await;
    let a = app.signup("ann").await;
    let w = app.workspace(&a, "W").await;
    for round in 0..ROUNDS {
        let session = signin(&app, &a).await;
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            sockets.push(Client::root(&app).await);
        }
        let auth = json!({"token": session.token, "workspaceId": w});
        race_auth(&mut sockets, &auth, async {
            let r = app
                .post("/api/auth/signout", &session.token, json!({}))
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "signout: {:?}", r.body);
        })
        .await;
        if let Err(n) = settled_to_zero(&app, "socketio").await {
            panic!("round {round}: {n} sockets of `/` still authenticated after sign-out");
        }
    }
    app.stop().await;
}

async fn workspace_auth_racing_kick_leaves_no_zombie(engine: Engine) {
    let app = big_limits(engine).await;
    let a = app.signup("ann").await;
    let b = app.signup("bob").await;
    let w = app.workspace(&a, "W").await;
    let auth = json!({"token": b.token, "workspaceId": w});
    for round in 0..ROUNDS {
        app.join(&a, &w, &b).await;
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            sockets.push(Client::root(&app).await);
        }
        race_auth(&mut sockets, &auth, async {
            let r = app
                .delete(&format!("/api/workspaces/{w}/members/{}", b.id), &a.token)
                .await;
            assert!(r.status.is_success(), "kick: {:?}", r.body);
        })
        .await;
        if let Err(n) = settled_to_zero(&app, "socketio").await {
            panic!("round {round}: {n} sockets of `/` still authenticated after the kick");
        }
    }
    app.stop().await;
}

async fn community_handshake_racing_signout_leaves_no_zombie(engine: Engine) {
    let app = big_limits(engine).await;
    let a = app.signup("ann").await;
    let w = app.workspace(&a, "W").await;
    let ns = format!("/socket/commu-{w}");
    for round in 0..ROUNDS {
        let session = signin(&app, &a).await;
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            sockets.push(Client::open(&app).await);
        }
        let packet = format!(
            "40{ns},{}",
            json!({"token": format!("Bearer {}", session.token)})
        );
        let (first, second) = sockets.split_at_mut(SOCKETS / 3);
        for s in first.iter_mut() {
            s.send(packet.clone()).await;
        }
        let sends = async {
            for s in second.iter_mut() {
                s.send(packet.clone()).await;
                tokio::task::yield_now().await;
            }
        };
        let end = async {
            let r = app
                .post("/api/auth/signout", &session.token, json!({}))
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "signout: {:?}", r.body);
        };
        tokio::join!(sends, end);
        for s in sockets.iter_mut() {
            // Accepted (`40`), refused (`44`) or closed: the handshake is answered.
            let _answer = s.recv().await;
        }
        if let Err(n) = settled_to_zero(&app, "socketio_community").await {
            panic!("round {round}: {n} community sockets still authenticated after sign-out");
        }
    }
    app.stop().await;
}

/// Two `auth` events sent back to back on one socket run concurrently on the
/// server: exactly one may authenticate it (the other is refused), never both
/// (one socket subscribed as two users, one context overwriting the other).
async fn concurrent_auths_on_one_socket_authenticate_once(engine: Engine) {
    let app = big_limits(engine).await;
    let a = app.signup("ann").await;
    let b = app.signup("bob").await;
    let w = app.workspace(&a, "W").await;
    let v = app.workspace(&b, "V").await;
    let as_a = format!(
        "42{}",
        json!(["auth", {"token": a.token, "workspaceId": w}])
    );
    let as_b = format!(
        "42{}",
        json!(["auth", {"token": b.token, "workspaceId": v}])
    );
    for round in 0..ROUNDS {
        let mut s = Client::root(&app).await;
        // One write: the server reads both before either is answered.
        s.ws.feed(Message::text(as_a.clone())).await.expect("feed");
        s.ws.feed(Message::text(as_b.clone())).await.expect("feed");
        s.ws.flush().await.expect("flush");
        let (mut ok, mut refused) = (0, Vec::new());
        while ok + refused.len() < 2 {
            let p = s.recv().await.expect("the socket stays open");
            if p.starts_with("42[\"auth-success\"") {
                ok += 1;
            } else if p.starts_with("42[\"socket-api-error\"") {
                refused.push(p);
            }
        }
        assert_eq!(ok, 1, "round {round}: refusals {refused:?}");
        assert!(
            refused[0].contains("already authenticat"),
            "round {round}: {refused:?}"
        );
        assert_eq!(connections(&app, "socketio").await, 1, "round {round}");
        drop(s);
        if let Err(n) = settled_to_zero(&app, "socketio").await {
            panic!("round {round}: {n} sockets still authenticated after leaving");
        }
    }
    app.stop().await;
}

both_engines!(
    concurrent_auths_on_one_socket_authenticate_once,
    workspace_auth_racing_signout_leaves_no_zombie,
    workspace_auth_racing_kick_leaves_no_zombie,
    community_handshake_racing_signout_leaves_no_zombie
);
