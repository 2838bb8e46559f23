//! `sio-fanout`: N Socket.IO subscribers in one room, one publisher at R
//! messages/s for T seconds. Each publication carries its sequence number and
//! send time (this process's clock) as `{"bench":"{seq}:{micros}"}`, found in
//! each delivery without parsing it (see [`crate::measure`]).
//!
//! - peer: subscribers emit `join` (and wait for its ack); a separate,
//!   unjoined publisher emits `broadcast`, which the server relays to the room.
//! - huddle: the room is a voice call. N accounts in one workspace, a channel;
//!   each subscriber authenticates and selects the channel from its socket
//!   (`POST /api/channels/{id}/select?socketId=`). The first subscriber also
//!   publishes `conversation-broadcast`, which reaches every socket in the
//!   call, its own included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::api::{Account, Api};
use crate::measure::{self, Deliveries, FanoutOutcome, Receiver};
use crate::procstat;
use crate::sio::{self, Server, Sources, Target, Ws};
use crate::wsclient::{Frame, Reader, Writer};

#[derive(clap::Args)]
pub struct Args {
    /// HTTP base of the server, e.g. http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, value_enum, default_value_t = Target::Huddle)]
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
    /// Seconds deliveries are awaited after the last publication; what has
    /// not arrived by then counts as lost.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// Seconds to wait for every subscriber to receive a probe publication.
    #[arg(long, default_value_t = 300)]
    ready_timeout: u64,
    /// Subscribers being set up at once.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Source addresses 127.0.0.1..K, round-robin (0: the kernel chooses).
    #[arg(long, default_value_t = 0)]
    source_addrs: u8,
}

const NEEDLE: &str = "\"bench\":\"";

type Sink = Arc<Mutex<Writer>>;

#[derive(Default)]
struct Counters {
    refused: AtomicU64,
    disconnected: AtomicU64,
    /// Messages that were not publications (huddle: presence, call events).
    other: AtomicU64,
}

/// The frame that publishes `stamp` (`p` for a probe, `{seq}:{micros}`).
fn publication(target: Target, stamp: &str) -> String {
    match target {
        Target::Peer | Target::Comet => format!("42[\"broadcast\",{{\"bench\":\"{stamp}\"}}]"),
        Target::Huddle => format!(
            "42[\"conversation-broadcast\",{{\"action\":\"bench\",\"data\":{{\"bench\":\"{stamp}\"}}}}]"
        ),
    }
}

/// One subscriber, ready to receive: in the room (peer) or in the call (huddle).
async fn subscribe(
    server: &Server,
    api: &Api,
    source: Option<std::net::Ipv4Addr>,
    account: Option<&Account>,
    channel: &str,
) -> Result<Ws, String> {
    let (mut ws, sid) = sio::connect(server, source, "/", None).await?;
    match account {
        None => {
            sio::emit_with_ack(&mut ws, "/", 1, "join", "").await?;
        }
        Some(acc) => {
            sio::huddle_auth(&mut ws, &acc.token, &acc.workspace).await?;
            api.select(&acc.token, channel, &sid).await?;
        }
    }
    Ok(ws)
}

/// Reads deliveries until aborted (its figures are handed over then); answers
/// pings; counts refusals, and the server ending the connection.
async fn receive(mut rx: Reader, tx: Sink, d: Arc<Deliveries>, counters: Arc<Counters>) {
    let mut receiver = Receiver::new(d);
    loop {
        let ping = match rx.next().await {
            Ok(Frame::Text("2")) => true,
            Ok(Frame::Text(t)) => {
                if let Some(s) = measure::stamp(t, NEEDLE) {
                    receiver.record(s);
                } else {
                    counters.other.fetch_add(1, Ordering::Relaxed);
                    if t.starts_with("42[\"socket-api-error\"")
                        && counters.refused.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        eprintln!("the server refused a publication: {t}");
                    }
                }
                false
            }
            Ok(Frame::Binary | Frame::Ping) => false,
            Ok(Frame::Close) | Err(_) => {
                counters.disconnected.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        if ping {
            let _ = tx.lock().await.send_text("3").await;
        }
    }
}

pub async fn run(a: Args) -> Result<(), String> {
    if a.target == Target::Comet {
        return Err("--target comet is for sio-idle only (comet-fanout covers comet)".into());
    }
    let server = Server::resolve(&a.url).await?;
    let api = Api::new(&server.base);
    let started = Instant::now();
    let (accounts, channel) = match a.target {
        Target::Huddle => {
            let accounts = api.accounts(a.subscribers.max(1), 0).await?;
            let channel = api
                .channel(&accounts[0].token, &accounts[0].workspace, "bench call")
                .await?;
            (accounts, channel)
        }
        Target::Peer | Target::Comet => (Vec::new(), String::new()),
    };
    if a.target == Target::Huddle {
        println!(
            "setup           {} accounts and a call in {:.1} s",
            accounts.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let total = (a.rate * a.seconds) as usize;
    let d = Arc::new(Deliveries::new(total, a.subscribers));
    let counters = Arc::new(Counters::default());
    let sources = Sources(a.source_addrs);
    let joining = Instant::now();
    // Each subscriber is read as soon as it is in: the server sends set-up
    // events (presence, call membership) while the others are joining.
    let subscribed: Vec<Result<(Sink, JoinHandle<()>), String>> =
        futures::stream::iter(0..a.subscribers)
            .map(|i| {
                let (server, api, channel) = (&server, &api, channel.as_str());
                let account = accounts.get(i);
                let (d, counters) = (d.clone(), counters.clone());
                async move {
                    let ws = subscribe(server, api, sources.of(i), account, channel).await?;
                    let (rx, tx) = ws.split();
                    let tx: Sink = Arc::new(Mutex::new(tx));
                    let task = tokio::spawn(receive(rx, tx.clone(), d, counters));
                    Ok((tx, task))
                }
            })
            .buffer_unordered(a.batch.max(1))
            .collect()
            .await;
    let mut tasks = Vec::with_capacity(a.subscribers + 1);
    let mut sinks = Vec::with_capacity(a.subscribers);
    let mut failure = None;
    for s in subscribed {
        match s {
            Ok((tx, task)) => {
                sinks.push(tx);
                tasks.push(task);
            }
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        stop(tasks).await;
        return Err(format!(
            "{} of {} subscribers could not join: {e}",
            a.subscribers - sinks.len(),
            a.subscribers
        ));
    }
    println!(
        "subscribed      {} in {:.1} s",
        a.subscribers,
        joining.elapsed().as_secs_f64()
    );
    // The publisher: huddle's is the first subscriber (it must be in the
    // call); a peer's is a connection of its own, not in the room.
    let publisher: Sink = match a.target {
        Target::Huddle => sinks.first().cloned().ok_or("no subscribers")?,
        Target::Peer | Target::Comet => {
            let (ws, _) = sio::connect(&server, sources.of(a.subscribers), "/", None).await?;
            let (rx, tx) = ws.split();
            let tx: Sink = Arc::new(Mutex::new(tx));
            // Its reader only answers pings and counts refusals: a tracker
            // that never sees a stamp records nothing.
            let d = Arc::new(Deliveries::new(0, 0));
            tasks.push(tokio::spawn(receive(rx, tx.clone(), d, counters.clone())));
            tx
        }
    };
    drop(sinks);
    // Probe until every subscriber receives publications. huddle joins the
    // call's room asynchronously, after `select` answers, and every device
    // coming online and joining the call is announced to the whole workspace
    // (~2N events to N sockets), which the probes wait behind.
    let probing = Instant::now();
    let probe = publication(a.target, "p");
    let mut reported = Instant::now();
    while (d.ready.load(Ordering::Relaxed) as usize) < a.subscribers {
        if probing.elapsed() > Duration::from_secs(a.ready_timeout) {
            stop(tasks).await;
            return Err(format!(
                "only {} of {} subscribers received the probe in {} s ({} disconnected by the server)",
                d.ready.load(Ordering::Relaxed),
                a.subscribers,
                a.ready_timeout,
                counters.disconnected.load(Ordering::Relaxed)
            ));
        }
        if reported.elapsed() > Duration::from_secs(15) {
            reported = Instant::now();
            println!(
                "probing         {} of {} subscribers ready after {:.0} s; {} set-up messages received",
                d.ready.load(Ordering::Relaxed),
                a.subscribers,
                probing.elapsed().as_secs_f64(),
                counters.other.load(Ordering::Relaxed)
            );
        }
        publisher.lock().await.send_text(&probe).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "ready           every subscriber receives publications after {:.1} s of probing ({} set-up messages received)",
        probing.elapsed().as_secs_f64(),
        counters.other.load(Ordering::Relaxed)
    );
    // Let the probes (and any set-up traffic) drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_cpu = procstat::CpuMeter::start(a.server_pid.as_slice());
    let client_cpu = procstat::CpuMeter::start(&[std::process::id()]);
    let start = Instant::now();
    let started_at = d.now_micros();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / a.rate.max(1)));
    for seq in 0..total {
        tick.tick().await;
        let frame = publication(a.target, &format!("{seq}:{}", d.now_micros()));
        publisher
            .lock()
            .await
            .send_text(&frame)
            .await
            .map_err(|e| format!("publishing: {e}"))?;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let expected = (a.subscribers * total) as u64;
    let drain = Instant::now();
    while d.received.load(Ordering::Relaxed) < expected
        && drain.elapsed() < Duration::from_secs(a.drain)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    stop(tasks).await;
    FanoutOutcome {
        scenario: "sio-fanout",
        target: a.target.name(),
        subscribers: a.subscribers,
        rate: a.rate,
        seconds: a.seconds,
        started_at,
        publish_secs,
        drain_secs: a.drain,
        refused: counters.refused.load(Ordering::Relaxed),
        disconnected: counters.disconnected.load(Ordering::Relaxed),
        server_cpu,
        client_cpu,
        server_rss: a.server_pid.and_then(procstat::rss_bytes),
    }
    .print(&d);
    Ok(())
}

/// Ends every reader (each hands its figures over as it is dropped).
async fn stop(tasks: Vec<JoinHandle<()>>) {
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Stamp;

    #[test]
    fn publications_carry_the_stamp() {
        for t in [Target::Peer, Target::Huddle] {
            let f = publication(t, "3:99");
            assert_eq!(
                measure::stamp(&f, NEEDLE),
                Some(Stamp::Data { seq: 3, sent: 99 })
            );
            let v: serde_json::Value =
                serde_json::from_str(f.trim_start_matches("42")).expect("valid JSON");
            assert!(v.is_array());
        }
    }
}
