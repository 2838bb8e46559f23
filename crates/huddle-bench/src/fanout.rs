//! `comet-fanout`: subscribers on one pipe, a publisher at a fixed rate; the
//! publication carries its sequence number and send time (this process's
//! clock), so every receipt gives an exact latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::measure::{self, Deliveries, FanoutOutcome, Stamp};
use crate::procstat;
use crate::sio::Target;

#[derive(clap::Args)]
pub struct Args {
    /// Comet websocket base, e.g. ws://127.0.0.1:8087 (http:// is taken as ws://)
    #[arg(long, default_value = "ws://127.0.0.1:8087")]
    url: String,
    /// Only `comet` (accepted so that scripts/bench can pass it to every scenario).
    #[arg(long, value_enum, default_value_t = Target::Comet)]
    target: Target,
    #[arg(long, default_value_t = 2000)]
    subscribers: usize,
    /// Publications per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's PID, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// How long deliveries are awaited after the last publication.
const DRAIN: Duration = Duration::from_secs(10);

/// The stamp of a bench delivery, found without parsing the whole message:
/// the server writes keys in sorted order, `"data":"{seq}:{micros}"` among them.
fn bench_payload(text: &str) -> Option<Stamp> {
    if !text.contains("\"pipe\":\"web_bench\"") {
        return None;
    }
    measure::stamp(text, "\"data\":\"")
}

/// A client websocket with a small read buffer: tungstenite's default
/// (128 KiB) is zeroed on every read, which made the client the bottleneck.
async fn connect(
    url: &str,
) -> Result<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>, String> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

pub async fn run(a: Args) -> Result<(), String> {
    if a.target != Target::Comet {
        return Err("comet-fanout drives the comet endpoint only (--target comet)".into());
    }
    let base = match a.url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => a.url.clone(),
    };
    let url = format!(
        "{}/ws/sesion=&myid=0&devid=bench&v=4.09&uuid=b&api=js",
        base.trim_end_matches('/')
    );
    let total = (a.rate * a.seconds) as usize;
    let d = Arc::new(Deliveries::new(total, a.subscribers));
    let disconnected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..a.subscribers {
        let mut stop = stop_rx.clone();
        let mut ws = connect(&url).await?;
        ws.send(Message::Text("subscription\nweb_bench".into()))
            .await
            .map_err(|e| e.to_string())?;
        let (d, disconnected) = (d.clone(), disconnected.clone());
        tasks.push(tokio::spawn(async move {
            let mut tracker = d.tracker();
            loop {
                let msg = tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(m)) => m,
                        _ => {
                            disconnected.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    },
                    _ = stop.wait_for(|s| *s) => break,
                };
                let Message::Text(t) = msg else { continue };
                // The first frame is serverInfo: the subscription is in.
                tracker.mark_ready(&d);
                let Some(stamp) = bench_payload(t.as_str()) else {
                    continue;
                };
                if tracker.record(&d, stamp) {
                    break;
                }
            }
            tracker.finish(&d);
        }));
    }
    // Every subscriber has its serverInfo: the subscriptions are in.
    let wait = Instant::now();
    while (d.ready.load(Ordering::Relaxed) as usize) < a.subscribers
        && wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let publisher = connect(&url).await?;
    let (mut publisher, mut answers) = publisher.split();
    // Read the publisher's replies (delivery reports, refusals) so its own
    // queue never fills.
    let refused = Arc::new(AtomicU64::new(0));
    let reader = {
        let refused = refused.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = answers.next().await {
                if t.as_str().contains("\"pipe\":\"sys\"") && t.as_str().contains("\"error\"") {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Round trip on every subscriber is implied by serverInfo; give the
    // subscription commands one pipe_count round trip on the publisher.
    publisher
        .send(Message::Text("pipe_count\nweb_bench\nm\n".into()))
        .await
        .map_err(|e| e.to_string())?;
    let server_cpu = procstat::CpuMeter::start(a.server_pid.as_slice());
    let client_cpu = procstat::CpuMeter::start(&[std::process::id()]);
    let start = Instant::now();
    let started_at = d.now_micros();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
    for seq in 0..total {
        tick.tick().await;
        let frame = format!("web_pipe2\nweb_bench\nb\n*\n{seq}:{}", d.now_micros());
        publisher
            .send(Message::Text(frame.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = (a.subscribers * total) as u64;
    let drain = Instant::now();
    while d.received.load(Ordering::Relaxed) < expected && drain.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    reader.abort();
    FanoutOutcome {
        scenario: "comet-fanout",
        target: "comet",
        subscribers: a.subscribers,
        rate: a.rate,
        seconds: a.seconds,
        started_at,
        publish_secs,
        drain_secs: DRAIN.as_secs(),
        refused: refused.load(Ordering::Relaxed),
        disconnected: disconnected.load(Ordering::Relaxed),
        server_cpu,
        client_cpu,
        server_rss: a.server_pid.and_then(procstat::rss_bytes),
    }
    .print(&d);
    Ok(())
}
