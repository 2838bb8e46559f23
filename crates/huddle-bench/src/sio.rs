//! A raw Engine.IO v4 / Socket.IO v5 client over websocket, just what the
//! scenarios need: open (optionally from a chosen 127.0.0.x source address),
//! the Engine.IO handshake, namespace CONNECT, events, acks and pings.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;
use tokio::net::TcpSocket;

use crate::wsclient::{self, Frame};

pub use crate::wsclient::Ws;

/// Which kind of server the bench talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// huddle: accounts, `auth`, voice calls, community namespaces.
    Huddle,
    /// A peer server of bench/peers (socket.io on Node, socketioxide): plain
    /// namespace `/`, events `join`, `broadcast`, `echo`.
    Peer,
    /// huddle's comet endpoint (`/ws/...`, sio-idle only): an anonymous
    /// connection subscribed to one `web_` pipe.
    Comet,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Huddle => "huddle",
            Target::Peer => "peer",
            Target::Comet => "comet",
        }
    }
}

/// Where the server is: its HTTP base and the socket address to connect to.
#[derive(Clone, Debug)]
pub struct Server {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub addr: SocketAddr,
    /// The Engine.IO websocket URL.
    pub ws_url: String,
}

/// The comet path of an anonymous bench connection (dev id `bench`).
const COMET_PATH: &str = "/ws/sesion=&myid=0&devid=bench&v=4.09&uuid=b&api=js";

impl Server {
    pub async fn resolve(url: &str) -> Result<Server, String> {
        let base = url.trim_end_matches('/').to_owned();
        let hostport = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("--url must start with http:// (got {url})"))?;
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let addr = tokio::net::lookup_host(hostport)
            .await
            .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("no IPv4 address for {hostport}"))?;
        Ok(Server {
            ws_url: format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket"),
            base,
            addr,
        })
    }

    /// The comet websocket URL of an anonymous bench connection.
    pub fn comet_url(&self) -> String {
        format!("ws://{}{COMET_PATH}", self.addr)
    }
}

/// Client source addresses, round-robin over 127.0.0.1..127.0.0.K: each
/// source address has its own ~28k ephemeral ports.
#[derive(Clone, Copy, Debug)]
pub struct Sources(pub u8);

impl Sources {
    /// The source address of the `i`th connection; `None` when K is 0 (let the
    /// kernel choose).
    pub fn of(self, i: usize) -> Option<Ipv4Addr> {
        (self.0 > 0).then(|| Ipv4Addr::new(127, 0, 0, 1 + (i % self.0 as usize) as u8))
    }
}

/// Opens the websocket (nothing read yet). Small buffers: an idle client
/// connection must not cost 128 KiB, and writes go out at once. The socket
/// closes with a reset (linger 0) so that tens of thousands of connections
/// leave no TIME_WAIT behind to block the next run's ports.
pub async fn open(server: &Server, source: Option<Ipv4Addr>) -> Result<Ws, String> {
    open_url(server, source, &server.ws_url).await
}

/// A websocket to `url` on the server's address, from `source` if given.
pub async fn open_url(server: &Server, source: Option<Ipv4Addr>, url: &str) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    #[allow(deprecated)] // a zero linger never blocks the thread
    socket
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| format!("SO_LINGER: {e}"))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip.into(), 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(server.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", server.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    wsclient::handshake(stream, url).await
}

pub async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send_text(&text).await
}

/// The next text message that is not an Engine.IO ping (pings are answered),
/// received before `deadline`.
pub async fn next_text(ws: &mut Ws, deadline: Instant) -> Result<String, String> {
    loop {
        let text = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Ok(Frame::Text(t))) => t.to_owned(),
            Ok(Ok(Frame::Close)) => return Err("connection closed".into()),
            Ok(Ok(Frame::Binary | Frame::Ping)) => continue,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("timed out waiting for the server".into()),
        };
        if text == "2" {
            send(ws, "3".into()).await?;
            continue;
        }
        return Ok(text);
    }
}

/// The deadline of a set-up step.
pub fn setup_deadline() -> Instant {
    Instant::now() + SETUP
}

const SETUP: Duration = Duration::from_secs(30);

/// Opens the connection, reads the Engine.IO open packet and connects a
/// namespace (`/` or `/name`) with an optional auth payload; returns the
/// Socket.IO socket id.
pub async fn connect(
    server: &Server,
    source: Option<Ipv4Addr>,
    namespace: &str,
    auth: Option<&Value>,
) -> Result<(Ws, String), String> {
    let mut ws = open(server, source).await?;
    let open = next_text(&mut ws, setup_deadline())
        .await
        .map_err(|e| format!("waiting for the Engine.IO open packet: {e}"))?;
    if !open.starts_with('0') {
        return Err(format!("expected an Engine.IO open packet, got {open}"));
    }
    let sid = connect_namespace(&mut ws, namespace, auth).await?;
    Ok((ws, sid))
}

/// `40[/ns,][auth]` → `40[/ns,]{"sid":...}`, or `44[/ns,]{"message":...}`.
pub async fn connect_namespace(
    ws: &mut Ws,
    namespace: &str,
    auth: Option<&Value>,
) -> Result<String, String> {
    let prefix = ns_prefix(namespace);
    let auth = auth.map(Value::to_string).unwrap_or_default();
    send(ws, format!("40{prefix}{auth}")).await?;
    let ok = format!("40{prefix}");
    let refused = format!("44{prefix}");
    let deadline = setup_deadline();
    loop {
        let t = next_text(ws, deadline)
            .await
            .map_err(|e| format!("waiting for the CONNECT reply of {namespace}: {e}"))?;
        if let Some(body) = t.strip_prefix(&ok) {
            let v: Value =
                serde_json::from_str(body).map_err(|e| format!("bad CONNECT reply {t}: {e}"))?;
            return v["sid"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("CONNECT reply without sid: {t}"));
        }
        if t.starts_with(&refused) {
            return Err(format!("namespace {namespace} refused the connection: {t}"));
        }
    }
}

/// `/name,` for a namespace other than `/`, else nothing.
pub fn ns_prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

/// huddle's workspace socket: `auth` → `auth-success`.
pub async fn huddle_auth(ws: &mut Ws, token: &str, workspace: &str) -> Result<(), String> {
    let auth =
        serde_json::json!(["auth", {"transaction": "t", "token": token, "workspaceId": workspace}]);
    send(ws, format!("42{auth}")).await?;
    let deadline = setup_deadline();
    loop {
        let t = next_text(ws, deadline)
            .await
            .map_err(|e| format!("waiting for auth-success: {e}"))?;
        if t.starts_with("42[\"auth-success\"") {
            return Ok(());
        }
        if t.starts_with("42[\"socket-api-error") {
            return Err(format!("auth refused: {t}"));
        }
    }
}

/// Emits `event` with `args` (a JSON array's elements) and ack id `ack`, then
/// waits for its ack; other messages are skipped. Returns the ack's body.
pub async fn emit_with_ack(
    ws: &mut Ws,
    namespace: &str,
    ack: u64,
    event: &str,
    args: &str,
) -> Result<String, String> {
    let prefix = ns_prefix(namespace);
    let sep = if args.is_empty() { "" } else { "," };
    send(ws, format!("42{prefix}{ack}[\"{event}\"{sep}{args}]")).await?;
    let want = format!("43{prefix}{ack}");
    let deadline = setup_deadline();
    loop {
        let t = next_text(ws, deadline)
            .await
            .map_err(|e| format!("waiting for the ack of {event}: {e}"))?;
        if let Some(body) = t.strip_prefix(&want) {
            if body.starts_with('[') {
                return Ok(body.to_owned());
            }
        }
        if t.starts_with("42[\"socket-api-error\"") {
            return Err(format!("{event}: the server answered {t}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_robin() {
        let s = Sources(3);
        assert_eq!(s.of(0), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(s.of(4), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(Sources(0).of(7), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(ns_prefix("/"), "");
        assert_eq!(ns_prefix("/socket/commu-x"), "/socket/commu-x,");
    }
}
