//! A server on port 0 with its listeners' addresses, and raw clients.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use huddle::config::Config;
use huddle::Application;

use crate::common::{fresh_database, test_config, Engine};

/// The address every test's attacker connects from.
pub const ATTACKER: [u8; 4] = [127, 0, 0, 1];
/// Another client's address.
pub const BYSTANDER: [u8; 4] = [127, 0, 0, 2];
/// Where tests read `/metrics` from (never under the attacker's cap).
pub const OBSERVER: [u8; 4] = [127, 0, 0, 3];

pub struct Server {
    pub http: SocketAddr,
    pub users: Option<SocketAddr>,
    pub comet: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Arc<tempfile::TempDir>,
}

/// Starts a server (SQLite) whose configuration `tweak` adjusts.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, _) = fresh_database(Engine::Sqlite, dir.path()).await;
    let mut config = test_config(dir.path());
    config.database.url = Some(url);
    tweak(&mut config);
    let app = Application::build(config)
        .await
        .expect("application builds");
    let http = app.local_addr();
    let users = app.users_socket_addr();
    let comet = app.comet_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Server {
        http,
        users,
        comet,
        stop: Some(tx),
        task: Some(task),
        _dir: Arc::new(dir),
    }
}

impl Server {
    /// Stops the server and waits for it (within the shutdown drain).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server ran");
        }
    }

    /// The `/metrics` text, fetched from [`OBSERVER`] (retried for up to
    /// 5 s while a total cap refuses it). The fetch is itself an open
    /// connection of the HTTP listener while it is served.
    pub async fn metrics(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match get(OBSERVER, self.http, "/metrics").await {
                Ok((200, body)) => return body,
                other => assert!(Instant::now() < deadline, "no metrics: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of one metric line (`name{labels}`), 0 if absent.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// Waits (up to 10 s) until `name` reads `want`.
    pub async fn metric_becomes(&self, name: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.metric(name).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {got}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A TCP connection to `to` from the loopback address `from`.
pub async fn connect(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    socket.connect(to).await
}

/// Whether the server closes `tcp` (EOF or reset) within `within`, having
/// sent nothing or something (e.g. an error status): the bytes it sent.
pub async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// Sends a keep-alive `GET /healthz` on `tcp`: whether it was answered 200
/// (the connection was admitted and stays open).
pub async fn served(tcp: &mut TcpStream) -> bool {
    if tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: huddle\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

/// `GET path` from `from` on a fresh connection: status and body.
pub async fn get(from: [u8; 4], to: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(
        from,
        to,
        &format!("GET {path} HTTP/1.1\r\nHost: huddle\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Sends a raw request on a fresh connection and reads the answer to its end.
pub async fn request(from: [u8; 4], to: SocketAddr, raw: &str) -> std::io::Result<(u16, String)> {
    let mut tcp = connect(from, to).await?;
    tcp.write_all(raw.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    parse(&answer).ok_or_else(|| std::io::Error::other("connection closed without an answer"))
}

/// The status and body of an HTTP/1.1 answer.
pub fn parse(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
