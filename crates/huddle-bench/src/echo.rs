//! `sio-echo`: C connections, each a closed request/ack loop for T seconds:
//! round trips per second and their latency.
//!
//! - peer: `42<id>["echo",{...}]` → `43<id>[{...}]`.
//! - huddle: `42<id>["ping",{...}]` → `43<id>[{...}]` on namespace `/`, from
//!   authenticated sockets. A server without the `ping` event answers
//!   `socket-api-error` "Unknown event": reported as an error, never a hang.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::api::Api;
use crate::measure::Percentiles;
use crate::procstat;
use crate::report::Summary;
use crate::sio::{self, Server, Sources, Target, Ws};

#[derive(clap::Args)]
pub struct Args {
    /// HTTP base of the server, e.g. http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, value_enum, default_value_t = Target::Huddle)]
    target: Target,
    /// Concurrent request/ack loops, one connection each.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's PID, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Source addresses 127.0.0.1..K, round-robin (0: the kernel chooses).
    #[arg(long, default_value_t = 0)]
    source_addrs: u8,
}

/// Sockets per account (huddle allows 16).
const PER_USER: usize = 16;
/// How long one round trip may take before the loop gives up.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What one loop measured: latencies in microseconds, or why it stopped.
struct LoopResult {
    latencies: Vec<u64>,
    error: Option<String>,
}

/// One round trip: emits `event` with ack id `id`, waits for `43{id}[`.
async fn round_trip(ws: &mut Ws, event: &str, id: u64, n: usize) -> Result<(), String> {
    sio::send(
        ws,
        format!("42{id}[\"{event}\",{{\"n\":{n},\"pad\":\"bench\"}}]"),
    )
    .await?;
    let want = format!("43{id}[");
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        let t = sio::next_text(ws, deadline).await?;
        if t.starts_with(&want) {
            return Ok(());
        }
        if t.starts_with("42[\"socket-api-error\"") {
            if t.contains("Unknown event") {
                return Err(format!(
                    "the server does not implement the `{event}` event (it answered {t})"
                ));
            }
            return Err(format!("the server refused `{event}`: {t}"));
        }
    }
}

async fn echo_loop(mut ws: Ws, event: &'static str, n: usize, until: Instant) -> LoopResult {
    let mut latencies = Vec::new();
    let mut id = 1u64;
    while Instant::now() < until {
        let sent = Instant::now();
        if let Err(e) = round_trip(&mut ws, event, id, n).await {
            return LoopResult {
                latencies,
                error: Some(e),
            };
        }
        latencies.push(sent.elapsed().as_micros() as u64);
        id += 1;
    }
    LoopResult {
        latencies,
        error: None,
    }
}

pub async fn run(a: Args) -> Result<(), String> {
    if a.target == Target::Comet {
        return Err("--target comet is for sio-idle only (comet-fanout covers comet)".into());
    }
    let server = Server::resolve(&a.url).await?;
    let event = match a.target {
        Target::Huddle => "ping",
        Target::Peer | Target::Comet => "echo",
    };
    let accounts = match a.target {
        Target::Huddle => {
            Api::new(&server.base)
                .accounts(a.concurrency.div_ceil(PER_USER).max(1), 0)
                .await?
        }
        Target::Peer | Target::Comet => Vec::new(),
    };
    let sources = Sources(a.source_addrs);
    let opened: Vec<Result<Ws, String>> = futures::stream::iter(0..a.concurrency)
        .map(|i| {
            let server = &server;
            let account = accounts.get(i / PER_USER);
            async move {
                let (mut ws, _) = sio::connect(server, sources.of(i), "/", None).await?;
                if let Some(acc) = account {
                    sio::huddle_auth(&mut ws, &acc.token, &acc.workspace).await?;
                }
                // One warm-up round trip, outside the measured window: it
                // also finds out at once whether the server knows the event.
                round_trip(&mut ws, event, 0, i).await?;
                Ok(ws)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(a.concurrency);
    for o in opened {
        conns.push(o?);
    }
    let server_cpu = procstat::CpuMeter::start(a.server_pid.as_slice());
    let client_cpu = procstat::CpuMeter::start(&[std::process::id()]);
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let loops: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, ws)| tokio::spawn(echo_loop(ws, event, n, until)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0usize;
    for l in loops {
        match l.await {
            Ok(r) => {
                latencies.extend(r.latencies);
                if let Some(e) = r.error {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("loop stopped: {e}");
                    }
                }
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    latencies.sort_unstable();
    let rt_per_s = latencies.len() as f64 / elapsed;
    let l = Percentiles::of(&latencies);
    println!("scenario        sio-echo ({})", a.target.name());
    println!(
        "loops           {} for {} s (event `{event}`)",
        a.concurrency, a.seconds
    );
    println!(
        "round trips     {} ({rt_per_s:.0}/s), {errors} loops stopped early",
        latencies.len()
    );
    println!("latency ms      {}", l.human());
    if let (Some(s), Some(c)) = (server_cpu, client_cpu) {
        println!(
            "cpu             server {:.0}%, client {:.0}% of one core",
            s * 100.0,
            c * 100.0
        );
    }
    let mut s = Summary::new("sio-echo");
    s.add("target", a.target.name())
        .add("concurrency", a.concurrency)
        .add("seconds", a.seconds)
        .add("round_trips", latencies.len())
        .num("rt_per_s", rt_per_s, 0)
        .add("errors", errors);
    l.add_to(&mut s);
    s.opt("server_cpu_pct", server_cpu.map(|c| c * 100.0), 0)
        .opt("client_cpu_pct", client_cpu.map(|c| c * 100.0), 0)
        .opt(
            "server_rss_mib",
            a.server_pid
                .and_then(procstat::rss_bytes)
                .map(crate::report::mib),
            1,
        );
    s.print();
    if errors > 0 {
        return Err(format!("{errors} of {} loops failed", a.concurrency));
    }
    Ok(())
}
