//! `sio-idle`: N authenticated Socket.IO connections on namespace `/`, held
//! open (answering Engine.IO pings); reports the server's RSS per connection.
//! Speaks raw Engine.IO v4 / Socket.IO v5 over websocket.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::procstat;

#[derive(clap::Args)]
pub struct Args {
    /// HTTP base of the server, e.g. http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// The server's PID, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

/// Sockets per account (the server allows 16).
const PER_USER: usize = 16;

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value, String> {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{status}: {v}"));
    }
    Ok(v)
}

/// Accounts, one workspace they all belong to: (tokens, workspace id).
async fn accounts(base: &str, n: usize) -> Result<(Vec<String>, String), String> {
    let http = reqwest::Client::new();
    let run = std::process::id();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("bench-{run}-{i}@bench.invalid");
        let v = post(
            &http,
            format!("{base}/api/auth/signup"),
            None,
            json!({"email": email, "password": "bench password", "name": format!("b{i}")}),
        )
        .await?;
        tokens.push(
            v["credentials"]["accessToken"]
                .as_str()
                .ok_or("no token")?
                .to_owned(),
        );
    }
    let ws = post(
        &http,
        format!("{base}/api/workspaces"),
        Some(&tokens[0]),
        json!({"name": "bench"}),
    )
    .await?;
    let ws = ws["id"].as_str().ok_or("no workspace id")?.to_owned();
    let code = post(
        &http,
        format!("{base}/api/workspaces/{ws}/invites"),
        Some(&tokens[0]),
        json!({}),
    )
    .await?;
    let code = code["code"].as_str().ok_or("no code")?.to_owned();
    for t in &tokens[1..] {
        post(&http, format!("{base}/api/join/{code}"), Some(t), json!({})).await?;
    }
    Ok((tokens, ws))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// Opens one connection and authenticates it on namespace `/`.
async fn connect(ws_url: &str, token: &str, workspace: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .map_err(|e| e.to_string())?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected an Engine.IO open packet, got {open}"));
    }
    ws.send(Message::Text("40".into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws).await?;
        if t.starts_with("40") {
            break;
        }
    }
    let auth = json!(["auth", {"transaction": "auth", "token": token, "workspaceId": workspace}]);
    ws.send(Message::Text(format!("42{auth}").into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws).await?;
        if t == "2" {
            ws.send(Message::Text("3".into()))
                .await
                .map_err(|e| e.to_string())?;
        } else if t.starts_with("42[\"auth-success\"") {
            return Ok(ws);
        } else if t.starts_with("42[\"socket-api-error") {
            return Err(format!("auth refused: {t}"));
        }
    }
}

/// Holds a connection open, answering pings, discarding events.
async fn hold(mut ws: Ws) {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            if t.as_str() == "2" && ws.send(Message::Text("3".into())).await.is_err() {
                return;
            }
        }
    }
}

pub async fn run(a: Args) -> Result<(), String> {
    let base = a.url.trim_end_matches('/').to_owned();
    let started = Instant::now();
    let (tokens, workspace) = accounts(&base, a.connections.div_ceil(PER_USER).max(1)).await?;
    println!(
        "setup           {} accounts in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let before = a.server_pid.and_then(procstat::rss_bytes);
    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replacen("http", "ws", 1)
    );
    let mut held = Vec::with_capacity(a.connections);
    let mut failed = 0usize;
    let opening = Instant::now();
    let mut i = 0;
    while i < a.connections {
        let batch: Vec<_> = (i..(i + a.batch).min(a.connections))
            .map(|k| {
                let (url, token, ws) = (
                    ws_url.clone(),
                    tokens[k / PER_USER].clone(),
                    workspace.clone(),
                );
                tokio::spawn(async move { connect(&url, &token, &ws).await })
            })
            .collect();
        for b in batch {
            match b.await {
                Ok(Ok(ws)) => held.push(tokio::spawn(hold(ws))),
                Ok(Err(e)) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("connection failed: {e}");
                    }
                }
                Err(_) => failed += 1,
            }
        }
        i += a.batch;
    }
    let connected = held.len();
    println!(
        "connected       {connected} (failed {failed}) in {:.1} s",
        opening.elapsed().as_secs_f64()
    );
    // Let allocations settle, then read the server's memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Some(b), Some(after)) = (before, a.server_pid.and_then(procstat::rss_bytes)) {
        println!(
            "server rss      {:.1} MiB before, {:.1} MiB with the connections",
            b as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        if connected > 0 {
            println!(
                "per connection  {:.2} KB",
                (after.saturating_sub(b)) as f64 / connected as f64 / 1024.0
            );
        }
    }
    if let Some(c) = procstat::rss_bytes(std::process::id()) {
        println!("client rss      {:.1} MiB", c as f64 / 1048576.0);
    }
    for h in held {
        h.abort();
    }
    Ok(())
}
