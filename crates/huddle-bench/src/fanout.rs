//! `comet-fanout`: subscribers on one pipe, a publisher at a fixed rate; the
//! publication carries its sequence number and send time (this process's
//! clock), so every receipt gives an exact latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::procstat;

#[derive(clap::Args)]
pub struct Args {
    /// Comet websocket base, e.g. ws://127.0.0.1:8087
    #[arg(long, default_value = "ws://127.0.0.1:8087")]
    url: String,
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

/// `(sequence, send time)` of a bench delivery, found without parsing the
/// whole message: the client must not be the bottleneck. The server writes keys
/// in sorted order, `"data":"{seq}:{micros}"` among them.
fn bench_payload(text: &str) -> Option<(usize, u64)> {
    if !text.contains("\"pipe\":\"web_bench\"") {
        return None;
    }
    let start = text.find("\"data\":\"")? + 8;
    let rest = text.get(start..)?;
    let (seq, sent) = rest.get(..rest.find('"')?)?.split_once(':')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(a: Args) -> Result<(), String> {
    let t0 = Instant::now();
    let url = format!(
        "{}/ws/sesion=&myid=0&devid=bench&v=4.09&uuid=b&api=js",
        a.url
    );
    let total = (a.rate * a.seconds) as usize;
    let received = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let latencies: Arc<Mutex<Vec<u64>>> =
        Arc::new(Mutex::new(Vec::with_capacity(a.subscribers * total)));
    let mut tasks = Vec::new();
    let ready = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for _ in 0..a.subscribers {
        let mut stop = stop_rx.clone();
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        ws.send(Message::Text("subscription\nweb_bench".into()))
            .await
            .map_err(|e| e.to_string())?;
        let (received, duplicates, latencies, ready) = (
            received.clone(),
            duplicates.clone(),
            latencies.clone(),
            ready.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seen = vec![false; total];
            let mut mine = Vec::with_capacity(total);
            let mut first = true;
            loop {
                let msg = tokio::select! {
                    m = ws.next() => match m { Some(Ok(m)) => m, _ => break },
                    _ = stop.wait_for(|s| *s) => break,
                };
                let Message::Text(t) = msg else { continue };
                if first {
                    first = false;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                let Some((seq, sent)) = bench_payload(t.as_str()) else {
                    continue;
                };
                let now = t0.elapsed().as_micros() as u64;
                if seq < total && !seen[seq] {
                    seen[seq] = true;
                    mine.push(now.saturating_sub(sent));
                    received.fetch_add(1, Ordering::Relaxed);
                } else {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
                if mine.len() == total {
                    break;
                }
            }
            if let Ok(mut l) = latencies.lock() {
                l.extend(mine);
            }
        }));
    }
    // Every subscriber has its serverInfo: the subscriptions are in.
    let wait = Instant::now();
    while (ready.load(Ordering::Relaxed) as usize) < a.subscribers
        && wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (publisher, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
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
    let (server_cpu0, client_cpu0) = (
        a.server_pid.and_then(procstat::cpu_seconds),
        procstat::cpu_seconds(std::process::id()),
    );
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
    for seq in 0..total {
        tick.tick().await;
        let frame = format!(
            "web_pipe2\nweb_bench\nb\n*\n{seq}:{}",
            t0.elapsed().as_micros()
        );
        publisher
            .send(Message::Text(frame.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = (a.subscribers * total) as u64;
    let drain = Instant::now();
    while received.load(Ordering::Relaxed) < expected && drain.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let server_cpu = a
        .server_pid
        .and_then(procstat::cpu_seconds)
        .zip(server_cpu0)
        .map(|(b, a)| (b - a) / elapsed);
    let client_cpu = procstat::cpu_seconds(std::process::id())
        .zip(client_cpu0)
        .map(|(b, a)| (b - a) / elapsed);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    reader.abort();
    let got = received.load(Ordering::Relaxed);
    let mut l = latencies.lock().map_err(|_| "lock")?.clone();
    l.sort_unstable();
    println!("scenario        comet-fanout");
    println!("subscribers     {}", a.subscribers);
    println!(
        "offered         {} msgs/s x {} = {} deliveries/s for {} s",
        a.rate,
        a.subscribers,
        a.rate * a.subscribers as u64,
        a.seconds
    );
    println!("delivered       {got} of {expected} ({:.0}/s over the publishing window of {publish_secs:.1} s)", got as f64 / publish_secs);
    println!(
        "refused         {} publications (the publisher's inbound rate limit)",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "lost            {} deliveries",
        expected - got.min(expected)
    );
    println!("duplicated      {}", duplicates.load(Ordering::Relaxed));
    println!(
        "latency ms      p50 {:.1}  p99 {:.1}  p999 {:.1}  max {:.1}",
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        percentile(&l, 0.999),
        percentile(&l, 1.0)
    );
    if let Some(c) = server_cpu {
        println!("server cpu      {:.0}% of one core", c * 100.0);
    }
    if let Some(c) = client_cpu {
        println!("client cpu      {:.0}% of one core", c * 100.0);
    }
    if let Some(rss) = a.server_pid.and_then(procstat::rss_bytes) {
        println!("server rss      {:.1} MiB", rss as f64 / 1048576.0);
    }
    Ok(())
}
