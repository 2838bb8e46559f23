//! `sio-idle`: N Socket.IO connections on namespace `/`, held open (answering
//! Engine.IO pings); reports the server's RSS per connection. Against huddle
//! each socket authenticates (`auth` → `auth-success`, 16 sockets per
//! account); against a peer it only connects the namespace.
//!
//! The connections open in two waves with the server's RSS read after each:
//! `kb_per_conn` is the growth over all of them, `kb_per_conn_marginal` the
//! second wave's alone — the cost of one more connection on a warm server,
//! without the fixed costs that first use brings (the database connections'
//! page caches, allocator arenas), which is what projects to more connections.
//!
//! Every process here may open at most 20,000 files, so the connections are
//! spread over child processes (this binary re-executed in a hidden mode, one
//! line of work per connection on its stdin), and their source addresses
//! round-robin over 127.0.0.1..K to pass the ~28k ephemeral ports of one
//! address.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::wsclient::Frame;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::procstat;
use crate::report::{mib, Summary};
use crate::sio::{self, Server, Sources, Target, Ws};

#[derive(clap::Args)]
pub struct Args {
    /// HTTP base of the server, e.g. http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    #[arg(long, value_enum, default_value_t = Target::Huddle)]
    target: Target,
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// The server's PID, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections being opened at once, per child process.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Child processes holding the connections; 0: one per 5,000.
    #[arg(long, default_value_t = 0)]
    procs: usize,
    /// Source addresses 127.0.0.1..K, round-robin (0: the kernel chooses).
    #[arg(long, default_value_t = 4)]
    source_addrs: u8,
    /// huddle: accounts per workspace (0: all in one workspace). Every
    /// account coming online is announced to its whole workspace, so one
    /// workspace of 1,000+ accounts floods every socket while connecting;
    /// 64 accounts (1,024 sockets) keeps the set-up traffic small.
    #[arg(long, default_value_t = 64)]
    workspace_size: usize,
    /// Seconds to let the server settle before reading its memory.
    #[arg(long, default_value_t = 3)]
    settle: u64,
}

/// The hidden child mode: reads `TOKEN WORKSPACE` lines (`- -` for a peer)
/// up to an empty line, opens one connection per line, prints
/// `READY connected=C failed=F`, then holds them until stdin closes,
/// answering a `count` line with `ALIVE N` (connections still open).
#[derive(clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    target: Target,
    /// Global index of this child's first connection (for source addresses).
    #[arg(long)]
    first: usize,
    #[arg(long)]
    source_addrs: u8,
    #[arg(long)]
    batch: usize,
}

/// Sockets per account (huddle allows 16).
const PER_USER: usize = 16;
/// Connections per child process when `--procs` is 0.
const PER_CHILD: usize = 5000;

/// Opens one connection: namespace `/`, and huddle's `auth`; or a comet
/// connection subscribed to a pipe.
async fn connect(
    server: &Server,
    source: Option<std::net::Ipv4Addr>,
    target: Target,
    work: &str,
) -> Result<Ws, String> {
    if target == Target::Comet {
        return comet(server, source).await;
    }
    let (mut ws, _sid) = sio::connect(server, source, "/", None).await?;
    if target == Target::Huddle {
        let (token, workspace) = work
            .split_once(' ')
            .ok_or("a work line without token and workspace")?;
        sio::huddle_auth(&mut ws, token, workspace).await?;
    }
    Ok(ws)
}

/// An anonymous comet connection on `web_idle`, once its `serverInfo` arrived.
async fn comet(server: &Server, source: Option<std::net::Ipv4Addr>) -> Result<Ws, String> {
    let mut ws = sio::open_url(server, source, &server.comet_url()).await?;
    ws.send_text("subscription\nweb_idle")
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    sio::next_text(
        &mut ws,
        tokio::time::Instant::now() + Duration::from_secs(30),
    )
    .await
    .map_err(|e| format!("waiting for serverInfo: {e}"))?;
    Ok(ws)
}

/// Holds a connection open, answering pings, discarding events.
async fn hold(mut ws: Ws) {
    loop {
        let ping = match ws.next().await {
            Ok(Frame::Text(t)) => t == "2",
            Ok(Frame::Close) | Err(_) => return,
            Ok(_) => false,
        };
        if ping && ws.send_text("3").await.is_err() {
            return;
        }
    }
}

pub async fn child(a: ChildArgs) -> Result<(), String> {
    let server = Server::resolve(&a.url).await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut work = Vec::new();
    while let Some(line) = stdin.next_line().await.map_err(|e| e.to_string())? {
        if line.is_empty() {
            break;
        }
        work.push(line);
    }
    let sources = Sources(a.source_addrs);
    // Each connection is held (read) as soon as it is open: the server may
    // send it events while the others are still connecting.
    let results: Vec<Result<JoinHandle<()>, String>> =
        futures::stream::iter(work.iter().enumerate())
            .map(|(i, w)| {
                let server = &server;
                async move {
                    let ws = connect(server, sources.of(a.first + i), a.target, w).await?;
                    Ok(tokio::spawn(hold(ws)))
                }
            })
            .buffer_unordered(a.batch.max(1))
            .collect()
            .await;
    let mut held = Vec::with_capacity(results.len());
    let mut failed = 0usize;
    for r in results {
        match r {
            Ok(h) => held.push(h),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    println!("ERROR {e}");
                }
            }
        }
    }
    println!("READY connected={} failed={failed}", held.len());
    // Hold until the parent closes our stdin (or dies); `count` asks how many
    // connections are still open.
    while let Ok(Some(line)) = stdin.next_line().await {
        if line == "count" {
            let alive = held.iter().filter(|h| !h.is_finished()).count();
            println!("ALIVE {alive}");
        }
    }
    for h in held {
        h.abort();
    }
    Ok(())
}

struct Child {
    proc: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Child {
    /// The child's next line, within `wait`; `late` and `gone` name what
    /// went wrong otherwise.
    async fn line(&mut self, wait: Duration, late: &str, gone: &str) -> Result<String, String> {
        tokio::time::timeout(wait, self.lines.next_line())
            .await
            .map_err(|_| late.to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| gone.to_owned())
    }
}

pub async fn run(a: Args) -> Result<(), String> {
    let server = Server::resolve(&a.url).await?;
    let started = Instant::now();
    // One work line per connection.
    let work: Vec<String> = match a.target {
        Target::Huddle => {
            let n = a.connections.div_ceil(PER_USER).max(1);
            let accounts = Api::new(&server.base).accounts(n, a.workspace_size).await?;
            println!(
                "setup           {} accounts in {:.1} s",
                accounts.len(),
                started.elapsed().as_secs_f64()
            );
            (0..a.connections)
                .map(|i| {
                    let acc = &accounts[i / PER_USER];
                    format!("{} {}", acc.token, acc.workspace)
                })
                .collect()
        }
        Target::Peer | Target::Comet => vec!["- -".to_owned(); a.connections],
    };
    let before = a.server_pid.and_then(procstat::rss_bytes);
    let procs = if a.procs == 0 {
        a.connections.div_ceil(PER_CHILD).max(1)
    } else {
        a.procs
    };
    let per = a.connections.div_ceil(procs).max(1);
    let chunks: Vec<&[String]> = work.chunks(per).collect();
    // Two waves: the server's memory is read after each, so that the second
    // wave's growth is the marginal cost of a connection on a warm server
    // (fixed costs that first use brings, such as the database connections'
    // page caches, land in the first wave).
    let first_wave = chunks.len().div_ceil(2);
    let opening = Instant::now();
    let mut children = spawn_children(&a, &server, &chunks[..first_wave], 0, per).await?;
    // CPU while connecting, both waves (not the settling between them).
    let mut server_cpu = CpuSum::default();
    let mut client_cpu = CpuSum::default();
    let meters = |children: &[Child]| {
        let pids: Vec<u32> = children.iter().filter_map(|c| c.proc.id()).collect();
        (
            procstat::CpuMeter::start(a.server_pid.as_slice()),
            procstat::CpuMeter::start(&pids),
        )
    };
    let (sm, cm) = meters(&children);
    let (mut connected, mut failed) = wait_ready(&mut children).await?;
    server_cpu.add(&sm);
    client_cpu.add(&cm);
    let mut connect_secs = opening.elapsed().as_secs_f64();
    let mut mid = None;
    let mut second = Vec::new();
    if first_wave < chunks.len() {
        tokio::time::sleep(Duration::from_secs(a.settle)).await;
        mid = a.server_pid.and_then(procstat::rss_bytes);
        let opening = Instant::now();
        second = spawn_children(&a, &server, &chunks[first_wave..], first_wave, per).await?;
        let (sm, cm) = meters(&second);
        let (c, f) = wait_ready(&mut second).await?;
        server_cpu.add(&sm);
        client_cpu.add(&cm);
        connected += c;
        failed += f;
        connect_secs += opening.elapsed().as_secs_f64();
    }
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    println!(
        "connected       {connected} (failed {failed}) in {connect_secs:.1} s over {} processes, in two waves",
        children.len() + second.len()
    );
    // Let allocations settle, then read the server's memory.
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let after = a.server_pid.and_then(procstat::rss_bytes);
    // Connections the server closed since (e.g. as slow consumers) are not
    // held: count what is still open.
    let alive_first = count_alive(&mut children).await?;
    let alive_second = count_alive(&mut second).await?;
    let alive = alive_first + alive_second;
    children.append(&mut second);
    if alive < connected {
        println!(
            "closed          {} connections were closed by the server after connecting",
            connected - alive
        );
    }
    let per_conn = match (before, after) {
        (Some(b), Some(af)) if alive > 0 => {
            Some(af.saturating_sub(b) as f64 / alive as f64 / 1024.0)
        }
        _ => None,
    };
    let marginal = match (mid, after) {
        (Some(m), Some(af)) if alive_second > 0 => {
            Some(af.saturating_sub(m) as f64 / alive_second as f64 / 1024.0)
        }
        _ => None,
    };
    if let (Some(s), Some(c)) = (server_cpu, client_cpu) {
        println!(
            "cpu             server {:.0}%, client {:.0}% of one core while connecting",
            s * 100.0,
            c * 100.0
        );
    }
    if let (Some(b), Some(af)) = (before, after) {
        println!(
            "server rss      {:.1} MiB before, {:.1} MiB with the connections",
            mib(b),
            mib(af)
        );
    }
    if let Some(p) = per_conn {
        println!("per connection  {p:.2} KB (over the {alive} still open)");
    }
    if let (Some(m), Some(p)) = (marginal, mid) {
        println!(
            "marginal        {m:.2} KB per connection of the second wave ({alive_second} open; {:.1} MiB after the first)",
            mib(p)
        );
    }
    let client_rss: u64 = children
        .iter()
        .filter_map(|c| c.proc.id().and_then(procstat::rss_bytes))
        .sum();
    println!(
        "client rss      {:.1} MiB in the child processes",
        mib(client_rss)
    );
    let mut s = Summary::new("sio-idle");
    s.add("target", a.target.name())
        .add("connections", a.connections)
        .add("connected", connected)
        .add("failed", failed)
        .add("alive", alive);
    if a.target == Target::Huddle {
        s.add("workspace_size", a.workspace_size);
    }
    s.num("connect_s", connect_secs, 1)
        .opt("rss_before_mib", before.map(mib), 1)
        .opt("rss_after_mib", after.map(mib), 1)
        .opt("rss_mid_mib", mid.map(mib), 1)
        .opt("kb_per_conn", per_conn, 2)
        .opt("kb_per_conn_marginal", marginal, 2)
        .num("client_rss_mib", mib(client_rss), 1)
        .opt("server_cpu_pct", server_cpu.map(|c| c * 100.0), 0)
        .opt("client_cpu_pct", client_cpu.map(|c| c * 100.0), 0);
    s.print();
    for mut c in children {
        drop(c.stdin);
        if tokio::time::timeout(Duration::from_secs(10), c.proc.wait())
            .await
            .is_err()
        {
            let _ = c.proc.kill().await;
        }
    }
    Ok(())
}

/// CPU seconds over several measured windows.
#[derive(Default)]
struct CpuSum {
    cpu: f64,
    wall: f64,
    read: bool,
}

impl CpuSum {
    fn add(&mut self, m: &procstat::CpuMeter) {
        if let Some((cpu, wall)) = m.used() {
            self.cpu += cpu;
            self.wall += wall;
            self.read = true;
        }
    }

    /// CPU seconds per wall second over the windows added.
    fn fraction(&self) -> Option<f64> {
        self.read.then(|| self.cpu / self.wall.max(1e-3))
    }
}

/// Starts one child per chunk of work lines (`first`: the index of the first
/// chunk, for the children's global connection numbers).
async fn spawn_children(
    a: &Args,
    server: &Server,
    chunks: &[&[String]],
    first: usize,
    per: usize,
) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut children = Vec::new();
    for (k, chunk) in chunks.iter().enumerate() {
        let mut proc = tokio::process::Command::new(&exe)
            .arg("sio-idle-child")
            .args(["--url", &server.base, "--target", a.target.name()])
            .args(["--first", &((first + k) * per).to_string()])
            .args(["--source-addrs", &a.source_addrs.to_string()])
            .args(["--batch", &a.batch.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let mut stdin = proc.stdin.take().ok_or("child without stdin")?;
        let stdout = proc.stdout.take().ok_or("child without stdout")?;
        let mut text = chunk.join("\n");
        text.push_str("\n\n");
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("cannot feed a child: {e}"))?;
        children.push(Child {
            proc,
            stdin,
            lines: BufReader::new(stdout).lines(),
        });
    }
    Ok(children)
}

/// Waits for every child's `READY`: (connected, failed) summed.
async fn wait_ready(children: &mut [Child]) -> Result<(usize, usize), String> {
    let (mut connected, mut failed) = (0usize, 0usize);
    for c in children {
        loop {
            let line = c
                .line(
                    Duration::from_secs(900),
                    "a child did not finish connecting in 15 minutes",
                    "a child exited before it was ready",
                )
                .await?;
            if let Some(e) = line.strip_prefix("ERROR ") {
                eprintln!("connection failed: {e}");
            } else if let Some(r) = line.strip_prefix("READY ") {
                for kv in r.split(' ') {
                    match kv.split_once('=') {
                        Some(("connected", v)) => connected += v.parse::<usize>().unwrap_or(0),
                        Some(("failed", v)) => failed += v.parse::<usize>().unwrap_or(0),
                        _ => {}
                    }
                }
                break;
            }
        }
    }
    Ok((connected, failed))
}

/// The connections the children still hold.
async fn count_alive(children: &mut [Child]) -> Result<usize, String> {
    let mut alive = 0usize;
    for c in children {
        c.stdin
            .write_all(b"count\n")
            .await
            .map_err(|e| format!("cannot ask a child: {e}"))?;
        loop {
            let line = c
                .line(
                    Duration::from_secs(30),
                    "a child did not answer `count`",
                    "a child exited early",
                )
                .await?;
            if let Some(n) = line.strip_prefix("ALIVE ") {
                alive += n.parse::<usize>().unwrap_or(0);
                break;
            }
        }
    }
    Ok(alive)
}
