//! `sio-chat` (huddle only): K writers post chat messages into one text
//! channel through the community namespace `/socket/commu-{workspaceId}`, each
//! waiting for its ack before the next (closed loop), for T seconds or M
//! messages. Reports stored messages per second and the ack latency, then
//! reads the channel's history back over REST and checks that its chat ids
//! are exactly 1..M, without gaps or repeats.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::api::Api;
use crate::measure::Percentiles;
use crate::procstat;
use crate::report::Summary;
use crate::sio::{self, Server, Sources, Ws};

#[derive(clap::Args)]
pub struct Args {
    /// HTTP base of the server, e.g. http://127.0.0.1:3000
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Concurrent writers, one account and connection each.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Seconds to write for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Stop after this many messages (0: only the time limit).
    #[arg(long, default_value_t = 0)]
    messages: usize,
    /// The server's PID, for its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label for the RESULT line, e.g. the database engine.
    #[arg(long, default_value = "")]
    label: String,
    /// Source addresses 127.0.0.1..K, round-robin (0: the kernel chooses).
    #[arg(long, default_value_t = 0)]
    source_addrs: u8,
}

const ACK_TIMEOUT: Duration = Duration::from_secs(30);

struct WriterResult {
    latencies: Vec<u64>,
    written: usize,
    error: Option<String>,
}

/// Writes until the time is up or the shared budget is spent.
async fn writer(
    mut ws: Ws,
    namespace: String,
    channel: String,
    claimed: Arc<AtomicUsize>,
    limit: usize,
    until: Instant,
) -> WriterResult {
    let prefix = sio::ns_prefix(&namespace);
    let mut r = WriterResult {
        latencies: Vec::new(),
        written: 0,
        error: None,
    };
    let mut ack = 1u64;
    while Instant::now() < until {
        let n = claimed.fetch_add(1, Ordering::Relaxed);
        if limit > 0 && n >= limit {
            break;
        }
        let body = json!({"chatType": "new", "channelId": channel, "content": format!("bench message {n}")});
        let sent = Instant::now();
        if let Err(e) = sio::send(&mut ws, format!("42{prefix}{ack}[\"chat\",{body}]")).await {
            r.error = Some(e);
            return r;
        }
        let want = format!("43{prefix}{ack}[");
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        let reply = loop {
            match sio::next_text(&mut ws, deadline).await {
                Ok(t) if t.starts_with(&want) => break t,
                Ok(_) => continue,
                Err(e) => {
                    r.error = Some(format!("waiting for a chat ack: {e}"));
                    return r;
                }
            }
        };
        if !reply.contains("\"written\":true") {
            r.error = Some(format!("a chat was not written: {reply}"));
            return r;
        }
        r.latencies.push(sent.elapsed().as_micros() as u64);
        r.written += 1;
        ack += 1;
    }
    r
}

/// How the stored ids compare with 1..=expected.
fn check_ids(mut ids: Vec<i64>, expected: usize) -> (bool, usize, usize) {
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    let duplicates = before - ids.len();
    let want: Vec<i64> = (1..=expected as i64).collect();
    let missing = want
        .iter()
        .filter(|i| ids.binary_search(i).is_err())
        .count();
    (ids == want && duplicates == 0, missing, duplicates)
}

pub async fn run(a: Args) -> Result<(), String> {
    let server = Server::resolve(&a.url).await?;
    let api = Api::new(&server.base);
    let started = Instant::now();
    let accounts = api.accounts(a.writers.max(1), 0).await?;
    let owner = &accounts[0];
    let channel = api
        .channel(&owner.token, &owner.workspace, "bench chat")
        .await?;
    let already = api.chat_ids(&owner.token, &channel).await?.len();
    let namespace = format!("/socket/commu-{}", owner.workspace);
    let sources = Sources(a.source_addrs);
    let opened: Vec<Result<Ws, String>> = futures::stream::iter(accounts.iter().enumerate())
        .map(|(i, acc)| {
            let (server, namespace) = (&server, namespace.as_str());
            let auth = json!({"token": format!("Bearer {}", acc.token)});
            async move {
                sio::connect(server, sources.of(i), namespace, Some(&auth))
                    .await
                    .map(|(ws, _)| ws)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(a.writers);
    for o in opened {
        conns.push(o?);
    }
    println!(
        "setup           {} writers connected to {namespace} in {:.1} s",
        conns.len(),
        started.elapsed().as_secs_f64()
    );
    let server_cpu = procstat::CpuMeter::start(a.server_pid.as_slice());
    let client_cpu = procstat::CpuMeter::start(&[std::process::id()]);
    let claimed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| {
            tokio::spawn(writer(
                ws,
                namespace.clone(),
                channel.clone(),
                claimed.clone(),
                a.messages,
                until,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut written, mut errors) = (0usize, 0usize);
    for t in tasks {
        match t.await {
            Ok(r) => {
                latencies.extend(r.latencies);
                written += r.written;
                if let Some(e) = r.error {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("writer stopped: {e}");
                    }
                }
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (server_cpu, client_cpu) = (server_cpu.fraction(), client_cpu.fraction());
    latencies.sort_unstable();
    let l = Percentiles::of(&latencies);
    let per_sec = written as f64 / elapsed;
    let ids = api.chat_ids(&owner.token, &channel).await?;
    let stored = ids.len();
    let (ids_ok, missing, duplicates) = check_ids(ids, already + written);
    let label = if a.label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", a.label)
    };
    println!("scenario        sio-chat (huddle){label}");
    println!("writers         {} for {:.1} s", a.writers, elapsed);
    println!(
        "stored          {written} acked messages ({per_sec:.0}/s), {errors} writers stopped early"
    );
    println!("ack latency ms  {}", l.human());
    println!(
        "history         {stored} chats read back; ids 1..{}: {} ({missing} missing, {duplicates} repeated)",
        already + written,
        if ids_ok { "exact" } else { "NOT exact" }
    );
    if let (Some(s), Some(c)) = (server_cpu, client_cpu) {
        println!(
            "cpu             server {:.0}%, client {:.0}% of one core",
            s * 100.0,
            c * 100.0
        );
    }
    let mut s = Summary::new("sio-chat");
    s.add("target", "huddle");
    if !a.label.is_empty() {
        s.add("label", &a.label);
    }
    s.add("writers", a.writers)
        .num("seconds", elapsed, 1)
        .add("written", written)
        .num("msgs_per_s", per_sec, 0)
        .add("errors", errors)
        .add("stored", stored)
        .add("ids_ok", ids_ok)
        .add("missing", missing)
        .add("repeated", duplicates);
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
    if !ids_ok {
        return Err("the channel's chat ids are not exactly 1..M".into());
    }
    if errors > 0 {
        return Err(format!("{errors} of {} writers failed", a.writers));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_checked() {
        assert_eq!(check_ids(vec![3, 1, 2], 3), (true, 0, 0));
        assert_eq!(check_ids(vec![3, 1], 3), (false, 1, 0));
        assert_eq!(check_ids(vec![1, 2, 2, 3], 3), (false, 0, 1));
        assert_eq!(check_ids(vec![], 0), (true, 0, 0));
    }
}
