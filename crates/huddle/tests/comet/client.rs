//! A raw comet websocket client and the server-API helpers the tests share.
//!
//! Every read is bounded by [`WAIT`]; nothing sleeps. Absence ("no echo",
//! "nothing crossed tenants") is checked with barriers: a command whose reply
//! comes back on the same connection ([`Comet::sync`]), or a fence message
//! published on the same pipe after the one that must not arrive.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use huddle::config::Secret;

use crate::common::{spawn_app_with, Engine, Reply, TestApp};

/// The longest any single expected message may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The version the JS client (CometServerApi.js) sends in `v=`.
pub const JS_VERSION: &str = "4.02";

/// The comet password every test server uses (API bearer, JWT secret prefix).
pub fn password() -> String {
    "pw".repeat(8)
}

/// A server with a known comet password and no separate comet listener.
pub async fn comet_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, |c| {
        c.comet.password = Some(Secret(password()));
    })
    .await
}

/// `ws://{addr}/ws/{tail}` on the main HTTP port.
pub fn ws_url(app: &TestApp, tail: &str) -> String {
    format!(
        "ws://{}/ws/{}",
        app.base.trim_start_matches("http://"),
        tail
    )
}

/// A client uuid like the JS client makes: 32 of `[A-Za-z0-9_-]`.
pub fn new_uuid() -> String {
    let s = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    s[..32].to_owned()
}

/// The connect path, positional as in the original:
/// `sesion={key}&myid={id}&devid={dev}&v={ver}&uuid={uuid}&api=js`.
pub fn connect_tail(key: &str, myid: &str, dev: &str, uuid: &str) -> String {
    format!("sesion={key}&myid={myid}&devid={dev}&v={JS_VERSION}&uuid={uuid}&api=js")
}

/// An HS256 JWT signed with `comet.password + dev` carrying `claims`.
pub fn jwt(dev: &str, claims: Value) -> String {
    jwt_with_secret(&format!("{}{dev}", password()), claims)
}

pub fn jwt_with_secret(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("jwt encodes")
}

/// A far-future `exp` for test tokens.
pub fn far_exp() -> i64 {
    now() + 3600
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `pipe` and `event` of a message.
pub fn is(v: &Value, pipe: &str, event: &str) -> bool {
    v["pipe"] == pipe && v["event"] == event
}

/// A `track_*` announcement (`subscription`/`unsubscription`) about the connection `uuid`.
pub fn is_track(v: &Value, pipe: &str, event: &str, uuid: &str) -> bool {
    is(v, pipe, event) && v["data"]["uuid"] == uuid
}

/// A message on `pipe` that is not an announcement about the connection `own_uuid`
/// (a track pipe subscriber hears its own arrival).
pub fn on_pipe_except_own(v: &Value, pipe: &str, own_uuid: &str) -> bool {
    v["pipe"] == pipe && v["data"]["uuid"] != own_uuid
}

/// A `sys` error message.
pub fn is_sys_error(v: &Value) -> bool {
    is(v, "sys", "error")
}

/// Asserts `message_send_time` is a unix time close to now.
pub fn assert_recent_time(v: &Value) {
    let t = v["message_send_time"]
        .as_i64()
        .unwrap_or_else(|| panic!("message_send_time must be an integer: {v}"));
    assert!(
        (t - now()).abs() < 120,
        "message_send_time {t} is not close to now ({}): {v}",
        now()
    );
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The server sent a close frame (with its code, if any).
    Close(Option<u16>),
    /// The stream ended or failed without a close frame.
    Dropped(String),
}

/// One comet websocket connection.
pub struct Comet {
    ws: Ws,
    pending: VecDeque<Value>,
    /// The first frame, `serverInfo`.
    pub info: Value,
    pub uuid: String,
    pub dev: String,
    barrier: u64,
}

impl Comet {
    /// Connects with `key` as `user_id` `myid` in tenant `dev`; the first frame must be `serverInfo`.
    pub async fn connect(app: &TestApp, dev: &str, myid: &str, key: &str) -> Comet {
        let uuid = new_uuid();
        let url = ws_url(app, &connect_tail(key, myid, dev, &uuid));
        Self::open(&url, dev, &uuid).await
    }

    /// An anonymous connection: user id 0 and a key that authorises nothing.
    pub async fn anonymous(app: &TestApp, dev: &str) -> Comet {
        let c = Self::connect(app, dev, "0", "undefined").await;
        assert_eq!(
            c.info["authorized"], false,
            "anonymous must not be authorised: {}",
            c.info
        );
        c
    }

    /// Connects exactly like an anonymous page with the JS client does:
    /// `sesion=undefined&myid=undefined` (the seed's own example URL).
    pub async fn js_anonymous(app: &TestApp, dev: &str) -> Comet {
        let c = Self::connect(app, dev, "undefined", "undefined").await;
        assert_eq!(
            c.info["authorized"], false,
            "anonymous must not be authorised: {}",
            c.info
        );
        c
    }

    /// Connects and asserts the connection is authorised.
    pub async fn authorized(app: &TestApp, dev: &str, user: u64, key: &str) -> Comet {
        let c = Self::connect(app, dev, &user.to_string(), key).await;
        assert_eq!(
            c.info["authorized"], true,
            "user {user} with key {key:?} in dev {dev} must be authorised: {}",
            c.info
        );
        c
    }

    /// Connects without reading anything (for connections the server may refuse after the upgrade).
    pub async fn connect_raw(app: &TestApp, dev: &str, myid: &str, key: &str) -> Comet {
        let uuid = new_uuid();
        let url = ws_url(app, &connect_tail(key, myid, dev, &uuid));
        Self::open_raw(&url, dev, &uuid).await
    }

    /// Connects like [`Comet::connect`], from the local address `ip` (a
    /// loopback address such as 127.0.0.2), for limits keyed by address.
    pub async fn connect_from(app: &TestApp, ip: &str, dev: &str, myid: &str, key: &str) -> Comet {
        let uuid = new_uuid();
        let url = ws_url(app, &connect_tail(key, myid, dev, &uuid));
        let server: std::net::SocketAddr = app
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("server address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::new(ip.parse().expect("ip"), 0))
            .expect("bind the client address");
        let stream = socket.connect(server).await.expect("tcp connect");
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(stream)),
        )
        .await
        .unwrap_or_else(|_| panic!("connect {url}: timed out"))
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let mut c = Comet {
            ws,
            pending: VecDeque::new(),
            info: Value::Null,
            uuid,
            dev: dev.to_owned(),
            barrier: 0,
        };
        let first = c.next().await;
        assert!(is(&first, "sys", "serverInfo"), "got {first}");
        c.info = first;
        c
    }

    /// Opens `url`; reads nothing.
    pub async fn open_raw(url: &str, dev: &str, uuid: &str) -> Comet {
        let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("connect {url}: timed out"))
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Comet {
            ws,
            pending: VecDeque::new(),
            info: Value::Null,
            uuid: uuid.to_owned(),
            dev: dev.to_owned(),
            barrier: 0,
        }
    }

    /// Opens `url` and reads `serverInfo`.
    pub async fn open(url: &str, dev: &str, uuid: &str) -> Comet {
        let mut c = Self::open_raw(url, dev, uuid).await;
        let first = c.next().await;
        assert!(
            is(&first, "sys", "serverInfo"),
            "the first message must be serverInfo, got {first}"
        );
        c.info = first;
        c
    }

    pub fn authorized_flag(&self) -> bool {
        self.info["authorized"] == true
    }

    /// Sends one text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("send {text:?}: {e}"));
    }

    /// Sends every frame in one write (the server reads them all at once).
    pub async fn send_pipelined(&mut self, texts: &[String]) {
        for t in texts {
            self.ws
                .feed(Message::text(t.clone()))
                .await
                .unwrap_or_else(|e| panic!("feed {t:?}: {e}"));
        }
        self.ws
            .flush()
            .await
            .unwrap_or_else(|e| panic!("flush: {e}"));
    }

    /// Sends one text frame, ignoring a connection the server already closed.
    pub async fn send_lossy(&mut self, text: &str) {
        let _ = self.ws.send(Message::text(text.to_owned())).await;
    }

    /// Sends one binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .unwrap_or_else(|e| panic!("send binary: {e}"));
    }

    /// Sends a frame, tolerating a connection the server already closed.
    pub async fn try_send(&mut self, msg: Message) -> Result<(), WsError> {
        self.ws.send(msg).await
    }

    /// `subscription\n{pipes joined by \n}`.
    pub async fn subscribe(&mut self, pipes: &[&str]) {
        let frame = format!("subscription\n{}", pipes.join("\n"));
        self.send(&frame).await;
    }

    /// Reads frames until at least one JSON message is pending; panics on close or timeout.
    async fn fill(&mut self) {
        while self.pending.is_empty() {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message within {WAIT:?}"));
            match msg {
                Some(Ok(Message::Text(t))) => self.push_text(t.as_str()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(b))) => {
                    panic!("the server sent a binary frame ({} bytes)", b.len())
                }
                Some(Ok(Message::Close(f))) => panic!("connection closed while waiting: {f:?}"),
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(e)) => panic!("connection failed while waiting: {e}"),
                None => panic!("connection ended while waiting"),
            }
        }
    }

    /// Messages are JSON objects, one per line; a frame may carry several.
    fn push_text(&mut self, text: &str) {
        for line in text.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a message is not JSON ({e}): {line:?}"));
            assert!(v.is_object(), "a message must be a JSON object: {line}");
            self.pending.push_back(v);
        }
    }

    /// The next message, in order.
    pub async fn next(&mut self) -> Value {
        self.fill().await;
        self.pending.pop_front().expect("filled")
    }

    /// The first message (already received or arriving) matching `pred`;
    /// others stay queued, in order, for later calls.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).expect("index");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let before = self.pending.len();
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = tokio::time::timeout(remaining, self.read_more()).await;
            match got {
                Err(_) => panic!(
                    "expected {what} within {WAIT:?}; got instead: {:?}",
                    self.pending
                ),
                Ok(Err(end)) => panic!(
                    "expected {what}, but the connection ended ({end:?}); got: {:?}",
                    self.pending
                ),
                Ok(Ok(())) => {}
            }
            if let Some(i) = self.pending.iter().skip(before).position(&pred) {
                return self.pending.remove(before + i).expect("index");
            }
        }
    }

    /// `expect` for a pipe and event.
    pub async fn expect_event(&mut self, pipe: &str, event: &str) -> Value {
        self.expect(&format!("{pipe}/{event}"), |v| is(v, pipe, event))
            .await
    }

    /// The next `sys` error.
    pub async fn expect_sys_error(&mut self, what: &str) -> Value {
        let v = self
            .expect(&format!("a sys error ({what})"), is_sys_error)
            .await;
        assert!(
            v["data"]["error"].as_str().is_some_and(|s| !s.is_empty()),
            "a sys error carries data.error text: {v}"
        );
        v
    }

    /// Reads one more frame into `pending`.
    async fn read_more(&mut self) -> Result<(), Ended> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    self.push_text(t.as_str());
                    return Ok(());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(b))) => {
                    panic!("the server sent a binary frame ({} bytes)", b.len())
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(Ended::Close(f.map(|f: CloseFrame| u16::from(f.code))))
                }
                Some(Err(e)) => return Err(Ended::Dropped(e.to_string())),
                None => return Err(Ended::Dropped("end of stream".into())),
            }
        }
    }

    /// A round trip on this connection: everything the server sent before its
    /// answer to this barrier is then in `pending`. The barrier is a
    /// `pipe_count` on a pipe no test uses.
    pub async fn sync(&mut self) {
        self.barrier += 1;
        let marker = format!("sync{}", self.barrier);
        self.send(&format!("pipe_count\nweb_zz_barrier\n{marker}\n"))
            .await;
        let m = marker.clone();
        self.expect(&format!("the barrier reply {marker}"), move |v| {
            v["pipe"] == "_answer_pipe_count" && v["marker"] == m.as_str()
        })
        .await;
    }

    /// Takes every message received so far (call after [`sync`](Self::sync)).
    pub fn drain(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Syncs, then asserts nothing received so far matches `pred`.
    pub async fn assert_none(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        self.sync().await;
        let bad: Vec<&Value> = self.pending.iter().filter(|v| pred(v)).collect();
        assert!(bad.is_empty(), "expected no {what}, got {bad:?}");
    }

    /// Waits (bounded) for the server to end the connection; messages before
    /// the end stay in `pending`.
    pub async fn expect_closed(&mut self, why: &str) -> Ended {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.read_more()).await {
                Err(_) => panic!(
                    "the server should have closed the connection ({why}) within {WAIT:?}; got: {:?}",
                    self.pending
                ),
                Ok(Err(end)) => return end,
                Ok(Ok(())) => {}
            }
        }
    }

    /// Closes cleanly and waits for the server's side of the handshake.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Tries to open `url` (optionally with an `Origin`); returns the HTTP status
/// of a refused upgrade, or panics if it was accepted.
pub async fn refused_status(url: &str, origin: Option<&str>) -> u16 {
    match try_open(url, origin).await {
        Ok(_) => panic!("{url} (origin {origin:?}) must be refused, but was accepted"),
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{url}: expected an HTTP error status on the upgrade, got {e}"),
    }
}

/// Opens `url` with an optional `Origin` header.
pub async fn try_open(url: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = url.into_client_request().expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).expect("origin header"));
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap_or_else(|_| panic!("connect {url}: timed out"))
        .map(|(ws, _)| ws)
}

/// The comet server API, `/api/comet/{dev}/...`, with the comet password.
pub struct Api<'a> {
    pub app: &'a TestApp,
}

impl<'a> Api<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Api { app }
    }

    pub async fn call(&self, method: Method, dev: &str, path: &str, body: Option<Value>) -> Reply {
        self.app
            .call(
                method,
                &format!("/api/comet/{dev}{path}"),
                Some(&password()),
                body,
            )
            .await
    }

    /// POST `/pipes/{pipe}/messages` → the `delivered` count.
    pub async fn publish(&self, dev: &str, pipe: &str, event: &str, message: &str) -> u64 {
        let r = self
            .call(
                Method::POST,
                dev,
                &format!("/pipes/{pipe}/messages"),
                Some(json!({"event": event, "message": message})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "publish to {pipe}: {:?}", r.body);
        r.body["delivered"]
            .as_u64()
            .unwrap_or_else(|| panic!("publish answers {{delivered: N}}: {:?}", r.body))
    }

    /// POST `/users/{id}/messages` → `{delivered, queued}`.
    pub async fn send_to_user(&self, dev: &str, user: u64, event: &str, message: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                dev,
                &format!("/users/{user}/messages"),
                Some(json!({"event": event, "message": message})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "message to user {user}: {:?}",
            r.body
        );
        assert!(
            r.body["delivered"].is_u64() && r.body["queued"].is_boolean(),
            "answers {{delivered, queued}}: {:?}",
            r.body
        );
        r.body
    }

    /// PUT `/users/{id}/auth {hash}` → 204.
    pub async fn set_hash(&self, dev: &str, user: u64, hash: &str) {
        let r = self
            .call(
                Method::PUT,
                dev,
                &format!("/users/{user}/auth"),
                Some(json!({ "hash": hash })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "set hash: {:?}", r.body);
    }

    /// PUT `/pipes/{pipe}/settings {length}` → 204.
    pub async fn set_history(&self, dev: &str, pipe: &str, length: u64) {
        let r = self
            .call(
                Method::PUT,
                dev,
                &format!("/pipes/{pipe}/settings"),
                Some(json!({ "length": length })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "set history of {pipe}: {:?}",
            r.body
        );
    }

    /// PUT `/users/{id}/data {data}` → 204.
    pub async fn set_data(&self, dev: &str, user: u64, data: &str) {
        let r = self
            .call(
                Method::PUT,
                dev,
                &format!("/users/{user}/data"),
                Some(json!({ "data": data })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "set data: {:?}", r.body);
    }

    /// GET `/users/{id}/time` → `time`.
    pub async fn user_time(&self, dev: &str, user: u64) -> i64 {
        let r = self
            .call(Method::GET, dev, &format!("/users/{user}/time"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "user time: {:?}", r.body);
        r.body["time"]
            .as_i64()
            .unwrap_or_else(|| panic!("answers {{time: N}}: {:?}", r.body))
    }

    /// GET `/pipes/{pipe}` → `{name, users, authorizedUsers}`.
    pub async fn pipe_info(&self, dev: &str, pipe: &str) -> Value {
        let r = self
            .call(Method::GET, dev, &format!("/pipes/{pipe}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "pipe info: {:?}", r.body);
        r.body
    }
}
