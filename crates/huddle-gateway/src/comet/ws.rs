//! The comet websocket: the connection's URL, Origin and subprotocol are
//! checked here, its commands answered by [`Session`]; the socket itself is
//! [`crate::wsconn`]'s (one small task per connection, a bounded queue).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use huddle_core::{ConnId, TokenBucket};

use crate::wsconn::{self, Opening, QueuedConn, Replies};
use huddle_domain::comet::{valid_name, Sender, MAX_NAME, MAX_SUBSCRIPTIONS};

use super::url::{parse, ConnectRequest};
use super::{pipe_topic, user_topic, wire, CometCtx, CometGateway};

/// `/ws/{*rest}` on any router that carries the gateway as state.
pub fn router(gw: Arc<CometGateway>) -> Router {
    Router::new()
        .route("/ws/{*rest}", get(upgrade))
        .route("/ws", get(upgrade_bare))
        .route("/ws/", get(upgrade_bare))
        .with_state(gw)
}

fn refuse(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"error": {"code": "comet_refused", "message": message}})),
    )
        .into_response()
}

/// `/ws` or `/ws/` with nothing after: no session, the original's 401.
async fn upgrade_bare() -> Response {
    refuse(401, super::url::Refusal::Session.message())
}

async fn upgrade(
    State(gw): State<Arc<CometGateway>>,
    Path(rest): Path<String>,
    mut http: Request,
) -> Response {
    let req = match parse(&rest) {
        Ok(r) => r,
        Err(r) => return refuse(r.status(), r.message()),
    };
    let headers = http.headers();
    let allowed = gw
        .settings
        .dev_origins
        .get(&req.dev)
        .unwrap_or(&gw.settings.origins);
    if !allowed.is_empty() {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|re| re.is_match(origin)) {
            tracing::warn!(origin, dev = %req.dev, "comet connection refused: origin not allowed for this dev id");
            return refuse(423, "origin not allowed");
        }
    }
    let offered_chat = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|p| p.to_str().ok())
        .any(|p| p.split(',').any(|x| x.trim() == "chat"));
    let (mut response, upgrade) = match huddle_ws::handshake(&mut http) {
        Ok(ok) => ok,
        Err(refused) => return *refused,
    };
    if offered_chat {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat"),
        );
    }
    // The peer address bounds hash guessing (see `comet_authenticate`); a
    // listener served without connect info leaves only the per-user bound.
    let client = http
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| huddle_core::client_key(c.0.ip()).to_string());
    let max = gw.settings.max_frame;
    wsconn::spawn(upgrade, max, Box::pin(open(gw, req, client)));
    response
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// State of one connection's task.
struct Session {
    gw: Arc<CometGateway>,
    id: ConnId,
    dev: String,
    user_id: i64,
    uuid: String,
    subscriptions: HashSet<String>,
    bucket: TokenBucket,
}

fn sys_error(error: &str, code: &str) -> Value {
    json!({"pipe": "sys", "event": "error", "data": {"error": error, "code": code}})
}

/// Authenticates the connection, registers it with the hub and counts it
/// online, then announces the session (`serverInfo`) and hands over what was
/// queued for the user while offline.
async fn open(
    gw: Arc<CometGateway>,
    req: ConnectRequest,
    client: Option<String>,
) -> Opening<Session> {
    let authorized = matches!(
        gw.domain
            .comet_authenticate(&req.dev, req.user_id, &req.key, client.as_deref())
            .await,
        Ok(true)
    );
    let user_id = if authorized { req.user_id } else { 0 };
    // Join the user's private pipe and count the connection online *before*
    // announcing the session, so a backend message sent right after the client
    // sees `serverInfo` is delivered live instead of parked in the queue.
    let id: ConnId = format!(
        "comet-{}",
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
    .into();
    let conn = QueuedConn::new(id.clone(), gw.settings.outbound_queue_bytes);
    gw.hub.register(conn.clone());
    gw.conns().insert(
        id.clone(),
        CometCtx {
            user_id,
            uuid: req.uuid.clone(),
        },
    );
    if authorized {
        gw.hub.join(&id, user_topic(&req.dev, user_id));
        if let Err(e) = gw.domain.comet_connected(&req.dev, user_id).await {
            gw.hub.unregister(&id);
            gw.conns().remove(&id);
            return Opening {
                first: vec![sys_error(&e.to_string(), "429").to_string()],
                session: Err((1008, "too many connections")),
            };
        }
    }
    let info = json!({
        "pipe": "sys", "event": "serverInfo", "data": "", "server": "huddle",
        "authorized": authorized, "message_send_time": chrono::Utc::now().timestamp(),
    });
    let mut first = vec![info.to_string()];
    // Messages queued for this user while offline: exactly once, in order,
    // before any live one (they are written ahead of the hub's frames). A
    // second pass catches a message that was being queued while the first
    // pass ran (its sender saw the user offline).
    if authorized {
        for _pass in 0..2 {
            match gw.domain.comet_take_queue(&req.dev, user_id).await {
                Ok(queued) => {
                    for m in queued {
                        let data: Value =
                            serde_json::from_str(&m.message).unwrap_or(Value::String(m.message));
                        let v = wire(
                            "msg",
                            &m.event,
                            &data,
                            0,
                            &[("fromQueue", Value::Bool(true))],
                        );
                        first.push(v.to_string());
                    }
                }
                Err(e) => tracing::error!(error = %e, "comet queue flush failed"),
            }
        }
    }
    let session = Session {
        bucket: TokenBucket::new(
            gw.settings.rate_per_sec,
            gw.settings.rate_burst,
            Instant::now(),
        ),
        gw,
        id,
        dev: req.dev,
        user_id,
        uuid: req.uuid,
        subscriptions: HashSet::new(),
    };
    Opening {
        first,
        session: Ok((session, conn)),
    }
}

impl wsconn::Session for Session {
    fn text<'a>(&'a mut self, text: &'a str) -> BoxFuture<'a, Replies> {
        Box::pin(async move {
            match self.command(text).await {
                Some(replies) => Ok(replies.iter().map(Value::to_string).collect()),
                // As the original: an unknown command ends the connection.
                None => Err((1008, "unknown command")),
            }
        })
    }

    fn binary(&mut self) -> Replies {
        Ok(vec![
            sys_error("binary frames are not supported", "400").to_string()
        ])
    }

    fn finish(self) -> BoxFuture<'static, ()> {
        Box::pin(self.leave())
    }
}

impl Session {
    /// Handles one command; `None` closes the connection (unknown command).
    async fn command(&mut self, text: &str) -> Option<Vec<Value>> {
        if !self.bucket.take(Instant::now()) {
            return Some(vec![sys_error("rate limited: slow down", "429")]);
        }
        let command = match parse_command(text)? {
            Ok(command) => command,
            Err(refused) => return Some(vec![refused]),
        };
        Some(match command {
            Command::Subscription(names) => self.subscription(names).await,
            Command::WebPipe2 {
                pipe,
                event,
                message,
            } => self.web_pipe2(pipe, event, message).await,
            Command::PipeLog { pipe, marker } => self.pipe_log(pipe, marker),
            Command::PipeCount { pipe, marker } => self.pipe_count(pipe, marker),
            Command::TrackPipeUsers { pipe, marker } => self.track_pipe_users(pipe, marker),
            Command::UserStatus(user) => self.user_status(user).await,
            Command::UserData { marker, user } => self.user_data(marker, user).await,
            Command::Ignored => Vec::new(),
        })
    }

    async fn subscription(&mut self, names: Vec<&str>) -> Vec<Value> {
        let wanted: HashSet<String> = names
            .into_iter()
            .filter(|n| !(n.starts_with("private_") && self.user_id == 0))
            // Reserved: the private pipe and the server's reply pipes are not subscribable.
            .filter(|n| *n != "msg" && *n != "sys" && !n.starts_with("_answer"))
            .map(str::to_owned)
            .collect();
        for old in self.subscriptions.difference(&wanted) {
            self.gw.hub.leave(&self.id, &pipe_topic(&self.dev, old));
            if old.starts_with("track_") {
                self.track_event(old, "unsubscription").await;
            }
        }
        for new in wanted.difference(&self.subscriptions) {
            self.gw.hub.join(&self.id, pipe_topic(&self.dev, new));
            if new.starts_with("track_") {
                self.track_event(new, "subscription").await;
            }
        }
        self.subscriptions = wanted;
        Vec::new()
    }

    async fn track_event(&self, pipe: &str, event: &str) {
        let data = json!({"user_id": self.user_id, "uuid": self.uuid});
        if let Err(e) = self
            .gw
            .domain
            .comet_publish(&self.dev, pipe, event, data, self.user_id, None)
            .await
        {
            tracing::debug!(error = %e, "track event refused");
        }
    }

    async fn web_pipe2(&mut self, pipe: &str, event: &str, message: &str) -> Vec<Value> {
        let sender = if self.user_id > 0 {
            Sender::User(self.user_id)
        } else {
            Sender::Anonymous
        };
        match self
            .gw
            .domain
            .comet_web_publish(&self.dev, pipe, event, message, sender, self.id.to_string())
            .await
        {
            Ok(pipe) => {
                let topic = pipe_topic(&self.dev, &pipe);
                let hub = &self.gw.hub;
                let others = hub
                    .subscriber_count(&topic)
                    .saturating_sub(usize::from(hub.is_subscribed(&self.id, &topic)));
                vec![json!({
                    "pipe": format!("_answer_to_{pipe}"), "event": "answer",
                    "data": {"number_messages": others, "message": message},
                })]
            }
            Err(e) => vec![sys_error(&e.to_string(), "403")],
        }
    }

    fn pipe_log(&self, pipe: &str, marker: &str) -> Vec<Value> {
        self.gw
            .domain
            .comet_history(&self.dev, pipe)
            .into_iter()
            .map(|m| {
                let mut v = wire(
                    pipe,
                    &m.event,
                    &m.data,
                    m.user_id,
                    &[
                        ("history", Value::Bool(true)),
                        ("fromQueue", Value::Bool(true)),
                        ("marker", Value::from(marker)),
                    ],
                );
                v["message_send_time"] = Value::from(m.time);
                v
            })
            .collect()
    }

    fn pipe_count(&self, pipe: &str, marker: &str) -> Vec<Value> {
        let n = self.gw.hub.subscriber_count(&pipe_topic(&self.dev, pipe));
        vec![
            json!({"pipe": "_answer_pipe_count", "event": "user_in_pipe", "marker": marker, "data": {"user_in_pipe": n}}),
        ]
    }

    fn track_pipe_users(&self, pipe: &str, marker: &str) -> Vec<Value> {
        let users: Vec<Value> = self
            .gw
            .authorised_in(&self.dev, pipe)
            .into_iter()
            .map(|(u, uuid)| json!({"user_id": u, "uuid": uuid}))
            .collect();
        vec![json!({"pipe": "_answer", "event": "answer", "marker": marker, "data": users})]
    }

    async fn user_status(&self, user: i64) -> Vec<Value> {
        match self.gw.domain.comet_user_time(&self.dev, user).await {
            Ok(t) => {
                // As the original: the reply is `now - stored time`, so an online
                // user (stored 0) reads as `now`.
                let since = if t < 0 {
                    -1
                } else {
                    chrono::Utc::now().timestamp() - t
                };
                vec![
                    json!({"pipe": "_answer_user_status", "event": format!("user_status_{user}"), "data": {"data": since, "last_online_time": since}}),
                ]
            }
            Err(e) => vec![sys_error(&e.to_string(), "500")],
        }
    }

    async fn user_data(&self, marker: &str, user: i64) -> Vec<Value> {
        match self.gw.domain.comet_data(&self.dev, user).await {
            Ok(data) => vec![
                json!({"pipe": "_answer", "event": "answer", "marker": marker, "data": {"user_id": user, "user_data": data}}),
            ],
            Err(e) => vec![sys_error(&e.to_string(), "500")],
        }
    }

    /// Leaves every pipe (announcing on track_ pipes) and the presence registry.
    async fn leave(self) {
        for pipe in &self.subscriptions {
            if pipe.starts_with("track_") {
                self.track_event(pipe, "unsubscription").await;
            }
        }
        self.gw.hub.unregister(&self.id);
        self.gw.conns().remove(&self.id);
        if self.user_id > 0 {
            if let Err(e) = self
                .gw
                .domain
                .comet_disconnected(&self.dev, self.user_id)
                .await
            {
                tracing::error!(error = %e, "comet presence cleanup failed");
            }
        }
    }
}

/// A client command read from its frame (`{command}\n{arguments}`), the
/// arguments borrowed from it and checked as far as no state is needed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// The whole set of pipes wanted (at most [`MAX_SUBSCRIPTIONS`] names).
    Subscription(Vec<&'a str>),
    WebPipe2 {
        pipe: &'a str,
        event: &'a str,
        message: &'a str,
    },
    PipeLog {
        pipe: &'a str,
        marker: &'a str,
    },
    PipeCount {
        pipe: &'a str,
        marker: &'a str,
    },
    TrackPipeUsers {
        pipe: &'a str,
        marker: &'a str,
    },
    UserStatus(i64),
    UserData {
        marker: &'a str,
        user: i64,
    },
    /// Accepted and answered with nothing (`statistics`, `cgi_call`).
    Ignored,
}

/// Reads a command frame. `None`: an unknown command (the connection ends, as
/// the original's did); `Some(Err)`: the `sys` error that answers it.
pub(crate) fn parse_command(text: &str) -> Option<Result<Command<'_>, Value>> {
    let (cmd, args) = text.split_once('\n').unwrap_or((text, ""));
    let mut lines = args.split('\n');
    let mut pipe_and_marker = || {
        let pipe = lines.next().unwrap_or("").trim();
        let marker = lines.next().unwrap_or("").trim();
        (pipe, marker)
    };
    Some(match cmd.trim() {
        "subscription" => {
            let names: Vec<&str> = args
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .filter(|p| !p.is_empty())
                .collect();
            if names.len() > MAX_SUBSCRIPTIONS {
                Err(sys_error(
                    &format!("Too many pipes (at most {MAX_SUBSCRIPTIONS})"),
                    "403",
                ))
            } else if names.iter().any(|n| n.len() > MAX_NAME) {
                Err(sys_error(
                    &format!("Too many letters in a pipe name (at most {MAX_NAME})"),
                    "403",
                ))
            } else {
                Ok(Command::Subscription(names))
            }
        }
        "web_pipe2" => {
            let mut parts = args.splitn(4, '\n');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(pipe), Some(event), Some(_auth), Some(message)) => Ok(Command::WebPipe2 {
                    pipe: pipe.trim(),
                    event: event.trim(),
                    message,
                }),
                _ => Err(sys_error(
                    "web_pipe2 needs: pipe, event, auth type, message",
                    "400",
                )),
            }
        }
        "pipe_log" => match pipe_and_marker() {
            (pipe, marker) if valid_name(pipe) => Ok(Command::PipeLog { pipe, marker }),
            _ => Err(sys_error("pipe_log needs a valid pipe name", "400")),
        },
        "pipe_count" => match pipe_and_marker() {
            (pipe, marker)
                if valid_name(pipe) && (pipe.starts_with("web_") || pipe.starts_with("track_")) =>
            {
                Ok(Command::PipeCount { pipe, marker })
            }
            _ => Err(sys_error(
                "pipe_count works on web_ and track_ pipes",
                "403",
            )),
        },
        "track_pipe_users" => match pipe_and_marker() {
            (pipe, marker) if valid_name(pipe) && pipe.starts_with("track_") => {
                Ok(Command::TrackPipeUsers { pipe, marker })
            }
            _ => Err(sys_error("track_pipe_users works on track_ pipes", "403")),
        },
        "user_status" => match args.trim().parse::<i64>() {
            Ok(user) => Ok(Command::UserStatus(user)),
            Err(_) => Err(sys_error("user_status needs a user id", "400")),
        },
        "user_data" => {
            let marker = lines.next().unwrap_or("").trim();
            match lines.next().map(|u| u.trim().parse::<i64>()) {
                Some(Ok(user)) => Ok(Command::UserData { marker, user }),
                _ => Err(sys_error("user_data needs a marker and a user id", "400")),
            }
        }
        "statistics" | "cgi_call" => Ok(Command::Ignored),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_command_the_js_client_sends() {
        fn ok(t: &str) -> Option<Command<'_>> {
            parse_command(t).and_then(Result::ok)
        }
        assert_eq!(
            ok("subscription\nweb_a\ntrack_b"),
            Some(Command::Subscription(vec!["web_a", "track_b"]))
        );
        assert_eq!(
            ok("web_pipe2\nweb_a\nev\n*\nhello\nworld"),
            Some(Command::WebPipe2 {
                pipe: "web_a",
                event: "ev",
                message: "hello\nworld"
            })
        );
        assert_eq!(
            ok("pipe_count\nweb_a\nm1\n"),
            Some(Command::PipeCount {
                pipe: "web_a",
                marker: "m1"
            })
        );
        assert_eq!(ok("user_status\n 7 "), Some(Command::UserStatus(7)));
        assert_eq!(
            ok("user_data\nm\n9"),
            Some(Command::UserData {
                marker: "m",
                user: 9
            })
        );
        assert_eq!(ok("statistics\n{}"), Some(Command::Ignored));
        assert_eq!(parse_command("nonsense\n"), None);
        for refused in [
            "web_pipe2\nweb_a",
            "pipe_log\nbad pipe",
            "pipe_count\nmsg",
            "track_pipe_users\nweb_a",
            "user_status\nx",
            "user_data\nm",
        ] {
            assert!(
                matches!(parse_command(refused), Some(Err(_))),
                "{refused:?} is answered with an error"
            );
        }
    }
}
