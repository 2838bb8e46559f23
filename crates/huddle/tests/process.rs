//! Tests that drive the real `huddle` binary as a process: signals, restart
//! durability, configuration layering and errors, the CLI subcommands.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The API suite's harness: PostgreSQL schemas per test.
#[path = "api/common.rs"]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_huddle");

/// A command for the binary in `dir`, with a clean `HUDDLE_*` environment and cheap hashing.
fn huddle(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).kill_on_drop(true).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("HUDDLE_") {
            c.env_remove(k);
        }
    }
    c.env("HUDDLE_AUTH__ARGON2_MEMORY_KIB", "64")
        .env("HUDDLE_AUTH__ARGON2_ITERATIONS", "1")
        // Many servers run at once: no fixed comet port.
        .env("HUDDLE_COMET__LISTEN", "")
        .env("HUDDLE_USERS_SOCKET__PORT", "0");
    c
}

struct Server {
    child: Child,
    base: String,
}

/// Starts `huddle serve` on port 0 and waits for its "listening on" line.
async fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut child = huddle(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn huddle");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("huddle listening on ") {
                return rest.trim().to_owned();
            }
        }
        panic!("huddle exited before listening");
    })
    .await
    .expect("huddle starts within 30 s");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, base }
}

impl Server {
    fn signal(&self, sig: i32) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {pid}");
    }

    async fn wait(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait")
    }
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Writes through the API, stops the server with `sig`, restarts it on the same
/// data and reads everything back — including the session, which proves the
/// generated JWT secret was kept.
async fn durability(extra: &[&str], sig: i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path(), extra).await;
    let (s, body) = post(
        &server.base,
        "/api/auth/signup",
        None,
        json!({"email": format!("a{sig}@x.io"), "password": "password 1", "name": "Ann"}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let token = body["credentials"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let (s, ws) = post(
        &server.base,
        "/api/workspaces",
        Some(&token),
        json!({"name": "Durable ' \" ;--"}),
    )
    .await;
    assert_eq!(s, 201);
    let ws_id = ws["id"].as_str().expect("id").to_owned();
    let mut channels = Vec::new();
    for i in 0..20 {
        let (s, ch) = post(
            &server.base,
            &format!("/api/workspaces/{ws_id}/channels"),
            Some(&token),
            json!({"name": format!("c{i}")}),
        )
        .await;
        assert_eq!(s, 201);
        channels.push(ch["id"].as_str().expect("id").to_owned());
    }
    server.signal(sig);
    let status = server.wait().await;
    if sig == 15 {
        assert!(
            status.success(),
            "SIGTERM is a graceful exit 0, got {status:?}"
        );
    }
    let server = serve(dir.path(), extra).await;
    let (s, state) = get(&server.base, &format!("/api/workspaces/{ws_id}"), &token).await;
    assert_eq!(s, 200, "{state}");
    assert_eq!(state["workspace"]["name"], "Durable ' \" ;--");
    let got: Vec<&str> = state["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(got, channels.iter().map(String::as_str).collect::<Vec<_>>());
    server.signal(15);
    assert!(server.wait().await.success());
}

#[tokio::test]
async fn sqlite_survives_sigterm_and_sigkill() {
    durability(&[], 15).await;
    durability(&[], 9).await;
}

#[tokio::test]
async fn postgres_survives_sigterm_and_sigkill() {
    for sig in [15, 9] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, schema) = common::fresh_database(common::Engine::Postgres, dir.path()).await;
        durability(&["--database-url", &url], sig).await;
        common::drop_schema(&schema.expect("a PostgreSQL schema")).await;
    }
}

async fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("huddle exits within 30 s")
        .expect("run huddle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_configuration_names_the_key_and_exits_before_listening() {
    let dir = tempfile::tempdir().expect("tempdir");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("HUDDLE_HTTP__LISTEN", "not-an-address")],
            vec![],
            "http.listen",
        ),
        (vec![], vec!["--database-url", "mysql://x"], "database.url"),
        (
            vec![("HUDDLE_AUTH__ACCESS_TOKEN_TTL", "forever")],
            vec![],
            "auth.access_token_ttl",
        ),
        (
            vec![("HUDDLE_AUTH__JWT_SECRET", "short")],
            vec![],
            "auth.jwt_secret",
        ),
        (
            vec![("HUDDLE_LIMITS__MAX_BODY_BYTES", "-1")],
            vec![],
            "limits.max_body_bytes",
        ),
        (
            vec![("HUDDLE_HTTP__NO_SUCH_KEY", "1")],
            vec![],
            "http.no_such_key",
        ),
    ];
    for (env, args, key) in cases {
        let mut cmd = huddle(dir.path());
        // Valid by default, so that each case's one bad value is the only problem.
        cmd.env("HUDDLE_HTTP__LISTEN", "127.0.0.1:0")
            .arg("serve")
            .args(&args)
            .envs(env.iter().copied());
        let (code, stdout, stderr) = output(&mut cmd).await;
        assert_eq!(code, 2, "{key}: exit code; stderr: {stderr}");
        assert!(stderr.contains(key), "the error names {key}: {stderr}");
        assert!(!stdout.contains("listening"), "nothing listened: {stdout}");
    }
    std::fs::write(
        dir.path().join("huddle.toml"),
        "[http]\nlisten = \"127.0.0.1:1111\"\nbogus = 1\n",
    )
    .expect("write");
    let (code, _, stderr) = output(huddle(dir.path()).arg("config")).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("bogus"), "{stderr}");
    let (code, _, stderr) =
        output(huddle(dir.path()).args(["--config", "missing.toml", "config"])).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[tokio::test]
async fn configuration_layers_and_masks_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Defaults with no configuration at all.
    let (code, out, err) = output(huddle(dir.path()).arg("config")).await;
    assert_eq!(code, 0, "{err}");
    let v: toml::Value = toml::from_str(&out).expect("config prints TOML");
    assert_eq!(v["http"]["listen"].as_str(), Some("127.0.0.1:3000"));
    assert_eq!(v["data_dir"].as_str(), Some("./data"));
    assert_eq!(v["auth"]["access_token_ttl"].as_str(), Some("1h"));
    assert_eq!(v["auth"]["refresh_token_ttl"].as_str(), Some("31d"));

    // file < environment < flag.
    std::fs::write(dir.path().join("huddle.toml"), "[http]\nlisten = \"127.0.0.1:1111\"\n[auth]\njwt_secret = \"file-secret-file-secret-file-secret-0000\"\n").expect("write");
    let listen = |out: &str| {
        toml::from_str::<toml::Value>(out).expect("toml")["http"]["listen"]
            .as_str()
            .map(str::to_owned)
    };
    let (_, out, _) = output(huddle(dir.path()).arg("config")).await;
    assert_eq!(listen(&out).as_deref(), Some("127.0.0.1:1111"));
    assert!(
        out.contains("********") && !out.contains("file-secret"),
        "secret masked: {out}"
    );
    let (_, out, _) = output(
        huddle(dir.path())
            .arg("config")
            .env("HUDDLE_HTTP__LISTEN", "127.0.0.1:2222"),
    )
    .await;
    assert_eq!(listen(&out).as_deref(), Some("127.0.0.1:2222"));
    let (_, out, _) = output(
        huddle(dir.path())
            .args(["config", "--listen", "127.0.0.1:3333"])
            .env("HUDDLE_HTTP__LISTEN", "127.0.0.1:2222"),
    )
    .await;
    assert_eq!(listen(&out).as_deref(), Some("127.0.0.1:3333"));
    // Nested keys of every section take effect; unrelated HUDDLE_* variables are not configuration.
    let (code, out, err) = output(
        huddle(dir.path())
            .arg("config")
            .env("HUDDLE_REALTIME__AUTH_TIMEOUT", "1s")
            .env("HUDDLE_BIN", "/usr/bin/whatever"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: toml::Value = toml::from_str(&out).expect("toml");
    assert_eq!(v["realtime"]["auth_timeout"].as_str(), Some("1s"));
    // Database passwords are masked too.
    let (_, out, _) =
        output(huddle(dir.path()).args(["config", "--database-url", "postgres://u:hunter2@h/db"]))
            .await;
    assert!(
        out.contains("postgres://u:********@h/db") && !out.contains("hunter2"),
        "{out}"
    );
}

#[tokio::test]
async fn migrate_and_token_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = output(huddle(dir.path()).arg("migrate")).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("migrations applied"));
    assert!(
        dir.path().join("data/huddle.db").exists(),
        "default SQLite location"
    );

    let server = serve(dir.path(), &[]).await;
    let (_, body) = post(
        &server.base,
        "/api/auth/signup",
        None,
        json!({"email": "t@x.io", "password": "password 1", "name": "T"}),
    )
    .await;
    let id = body["user"]["id"].as_str().expect("id").to_owned();
    let (code, token, err) = output(huddle(dir.path()).args(["token", "--user", &id])).await;
    assert_eq!(code, 0, "{err}");
    let (s, me) = get(&server.base, "/api/me", token.trim()).await;
    assert_eq!(
        (s, me["id"].as_str()),
        (200, Some(id.as_str())),
        "a minted token works against the running server"
    );
    let (code, _, err) = output(huddle(dir.path()).args([
        "token",
        "--user",
        "00000000-0000-0000-0000-000000000000",
    ]))
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    server.signal(15);
    assert!(server.wait().await.success());
}
