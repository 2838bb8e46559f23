//! `comet-fanout`: subscribers on one pipe, a publisher at a fixed rate; the
//! publication carries its sequence number and send time (this process's
//! clock), so every receipt gives an exact latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::measure::{self, Deliveries, FanoutOutcome, Receiver, Stamp};
use crate::procstat;
use crate::sio::{self, Server, Target};
use crate::wsclient::Frame;

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
/// How long every subscriber may take to receive a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// The stamp of a bench delivery, found without parsing the whole message:
/// the server writes keys in sorted order, `"data":"{seq}:{micros}"` among them.
fn bench_payload(text: &str) -> Option<Stamp> {
    if !text.contains("\"pipe\":\"web_bench\"") {
        return None;
    }
    measure::stamp(text, "\"data\":\"")
}

pub async fn run(a: Args) -> Result<(), String> {
    if a.target != Target::Comet {
        return Err("comet-fanout drives the comet endpoint only (--target comet)".into());
    }
    let server = match a.url.strip_prefix("ws://") {
        Some(rest) => Server::resolve(&format!("http://{rest}")).await?,
        None => Server::resolve(&a.url).await?,
    };
    let url = server.comet_url();
    let total = (a.rate * a.seconds) as usize;
    let d = Arc::new(Deliveries::new(total, a.subscribers));
    let disconnected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.subscribers {
        let mut ws = sio::open_url(&server, None, &url).await?;
        ws.send_text("subscription\nweb_bench").await?;
        let (d, disconnected) = (d.clone(), disconnected.clone());
        // Read until aborted at the end (the receiver hands its figures over
        // then). A receiver that has everything keeps its connection open: a
        // subscriber leaving while others still receive would load the server
        // (as sio-fanout's do not), delaying the last deliveries of the run.
        tasks.push(tokio::spawn(async move {
            let mut receiver = Receiver::new(d);
            loop {
                match ws.next().await {
                    Ok(Frame::Text(t)) => {
                        // A probe or a publication marks the receiver ready.
                        if let Some(stamp) = bench_payload(t) {
                            receiver.record(stamp);
                        }
                    }
                    Ok(Frame::Binary | Frame::Ping) => {}
                    Ok(Frame::Close) | Err(_) => {
                        disconnected.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }));
    }
    let publisher = sio::open_url(&server, None, &url).await?;
    let (mut answers, mut publisher) = publisher.split();
    // Read the publisher's replies (delivery reports, refusals) so its own
    // queue never fills.
    let refused = Arc::new(AtomicU64::new(0));
    let reader = {
        let refused = refused.clone();
        tokio::spawn(async move {
            while let Ok(Frame::Text(t)) = answers.next().await {
                if t.contains("\"pipe\":\"sys\"") && t.contains("\"error\"") {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Probe (as sio-fanout does) until every subscriber receives
    // publications: then every subscription is in, and the measured window
    // starts on a settled server.
    let probing = Instant::now();
    while (d.ready.load(Ordering::Relaxed) as usize) < a.subscribers {
        if probing.elapsed() > PROBE_TIMEOUT {
            for t in &tasks {
                t.abort();
            }
            return Err(format!(
                "only {} of {} subscribers received the probe in {} s",
                d.ready.load(Ordering::Relaxed),
                a.subscribers,
                PROBE_TIMEOUT.as_secs()
            ));
        }
        publisher.send_text("web_pipe2\nweb_bench\nb\n*\np").await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let the probes drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_cpu = procstat::CpuMeter::start(a.server_pid.as_slice());
    let client_cpu = procstat::CpuMeter::start(&[std::process::id()]);
    let start = Instant::now();
    let started_at = d.now_micros();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
    for seq in 0..total {
        tick.tick().await;
        let frame = format!("web_pipe2\nweb_bench\nb\n*\n{seq}:{}", d.now_micros());
        publisher.send_text(&frame).await?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = (a.subscribers * total) as u64;
    let drain = Instant::now();
    while d.received.load(Ordering::Relaxed) < expected && drain.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
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
