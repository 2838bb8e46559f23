//! The scenario against the real binary under a 1024-file limit:
//! 1,100 half-open requests from one address used to exhaust the process's
//! descriptors so that every legitimate request timed out.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{connect, get, ATTACKER, BYSTANDER};

const BIN: &str = env!("CARGO_BIN_EXE_huddle");

/// `huddle serve` on port 0 in `dir`, after `limit` (a shell `ulimit`).
async fn serve(dir: &std::path::Path, limit: &str) -> (Child, SocketAddr) {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "{limit} && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\""
        ))
        .arg(BIN)
        .arg(dir)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HUDDLE_") {
            c.env_remove(k);
        }
    }
    c.env("HUDDLE_AUTH__ARGON2_MEMORY_KIB", "64")
        .env("HUDDLE_AUTH__ARGON2_ITERATIONS", "1")
        .env("HUDDLE_COMET__LISTEN", "")
        .env("HUDDLE_USERS_SOCKET__PORT", "0");
    let mut child = c.spawn().expect("spawn huddle");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("huddle listening on http://") {
                return rest.trim().parse().expect("an address");
            }
        }
        panic!("huddle exited before listening");
    })
    .await
    .expect("huddle starts within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The soft and hard "Max open files" of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut v = line.split_whitespace().skip(3);
    (
        v.next().unwrap_or_default().to_owned(),
        v.next().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_raises_its_soft_open_file_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, _) = serve(dir.path(), "ulimit -S -n 512").await;
    let (soft, hard) = open_file_limits(child.id().expect("running"));
    assert_eq!(soft, hard, "the soft limit stayed below the hard limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_half_open_requests_under_a_1024_file_limit_do_not_starve_a_bystander() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_child, addr) = serve(dir.path(), "ulimit -n 1024").await;
    let mut attack = Vec::new();
    for _ in 0..1100 {
        let mut tcp = connect(ATTACKER, addr).await.expect("connect");
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: huddle\r\n").await;
        attack.push(tcp);
    }
    for _ in 0..3 {
        let asked = Instant::now();
        let answered =
            tokio::time::timeout(Duration::from_secs(5), get(BYSTANDER, addr, "/healthz"))
                .await
                .expect("the bystander is answered, not left waiting")
                .expect("the bystander's request");
        assert_eq!(answered.0, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
    }
    let (_, metrics) = get(BYSTANDER, addr, "/metrics").await.expect("metrics");
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("huddle_refused_total{reason=\"connections_per_address\"} ")
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    assert_eq!(refused, 1100 - 512, "the default per-address cap is 512");
    drop(attack);
}
