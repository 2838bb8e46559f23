//! The community `join` on both engines, spoken as Socket.IO v5 over a real
//! websocket: one query answers which of the named channels the caller may
//! read in the namespace's workspace (`Db::channels_with_roles_in`), each id
//! once; more than `limits.max_join_channels` ids is refused whole and counted.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::both_engines;
use crate::common::{spawn_app_with, Engine, TestApp, TestUser};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Socket.IO client in one community namespace (just enough of the protocol).
struct Commu {
    ws: Ws,
    ns: String,
    next_ack: u64,
}

impl Commu {
    /// Connects to `/socket/commu-{workspace}` with `user`'s token; `Err` is the connect_error message.
    async fn open(app: &TestApp, user: &TestUser, workspace: &str) -> Result<Commu, String> {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            app.base.replacen("http", "ws", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let mut c = Commu {
            ws,
            ns: format!("/socket/commu-{workspace}"),
            next_ack: 1,
        };
        let open = c.recv().await;
        assert!(open.starts_with('0'), "engine.io open: {open}");
        let auth = json!({"token": format!("Bearer {}", user.token)});
        c.send(format!("40{},{auth}", c.ns)).await;
        let reply = c.recv().await;
        let connected = format!("40{},", c.ns);
        let error = format!("44{},", c.ns);
        if reply.starts_with(&connected) {
            Ok(c)
        } else if let Some(rest) = reply.strip_prefix(&error) {
            let v: Value = serde_json::from_str(rest).expect("connect_error json");
            Err(v["message"].as_str().unwrap_or_default().to_owned())
        } else {
            panic!("unexpected answer to CONNECT: {reply}")
        }
    }

    async fn send(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next Socket.IO text packet, answering Engine.IO pings on the way.
    async fn recv(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a packet within 10 s")
                .expect("connection open")
                .expect("websocket frame");
            if let Message::Text(t) = msg {
                if t.as_str() == "2" {
                    self.send("3".into()).await;
                    continue;
                }
                return t.as_str().to_owned();
            }
        }
    }

    /// Emits `event` with an acknowledgement and returns the ack's first argument.
    async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(format!("42{},{id}{}", self.ns, json!([event, data])))
            .await;
        let prefix = format!("43{},{id}", self.ns);
        loop {
            let p = self.recv().await;
            if let Some(rest) = p.strip_prefix(&prefix) {
                let args: Value = serde_json::from_str(rest).expect("ack json");
                return args[0].clone();
            }
        }
    }
}

fn refused_total(metrics: &str, reason: &str) -> u64 {
    let sample = format!("huddle_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&sample))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has {sample}"))
}

async fn join_answers_readable_channels_once(engine: Engine) {
    let app = spawn_app_with(engine, |c| c.limits.max_join_channels = 20).await;
    let a = app.signup("ann").await;
    let b = app.signup("bob").await;
    let c = app.signup("cid").await;
    let w = app.workspace(&a, "W").await;
    let x = app.workspace(&c, "X").await;
    app.join(&a, &w, &b).await;
    let public = app.channel(&a, &w, "public", false, &[]).await;
    let secret = app.channel(&a, &w, "secret", true, &[]).await;
    let with_b = app.channel(&a, &w, "with-bob", true, &[&b]).await;
    let elsewhere = app.channel(&c, &x, "elsewhere", false, &[]).await;
    let nowhere = "00000000-0000-4000-8000-000000000000";

    let mut s = Commu::open(&app, &b, &w).await.expect("bob connects");
    let ack = s
        .emit_ack(
            "join",
            json!({"channels": [
                public, with_b, secret, elsewhere, "not-a-uuid", 7, nowhere,
                public.to_uppercase(), public, with_b,
            ]}),
        )
        .await;
    assert_eq!(ack["error"], Value::Null, "{ack}");
    assert_eq!(ack["joined"], json!([public, with_b]), "{ack}");
    let mut refused: Vec<String> = ack["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    refused.sort();
    let mut expected = vec![
        secret.clone(),
        elsewhere.clone(),
        "not-a-uuid".to_owned(),
        "7".to_owned(),
        nowhere.to_owned(),
    ];
    expected.sort();
    assert_eq!(refused, expected, "{ack}");

    // A guest reads only the channels it is an explicit member of.
    app.set_role(&a, &w, &b, "guest").await;
    let ack = s
        .emit_ack("join", json!({"channels": [public, with_b]}))
        .await;
    assert_eq!(ack["joined"], json!([with_b]), "{ack}");
    assert_eq!(ack["refused"], json!([public]), "{ack}");

    // Past the cap: refused whole, with an error, and counted.
    let before = refused_total(&app.metrics().await, "join_too_large");
    let many: Vec<String> = (0..21).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let ack = s.emit_ack("join", json!({ "channels": many })).await;
    assert_eq!(ack["joined"], json!([]), "{ack}");
    assert_eq!(ack["refused"], json!([]), "{ack}");
    assert!(
        ack["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 20")),
        "{ack}"
    );
    assert_eq!(
        refused_total(&app.metrics().await, "join_too_large"),
        before + 1
    );
    app.stop().await;
}

async fn community_sockets_are_capped_per_user(engine: Engine) {
    let app = spawn_app_with(engine, |c| c.limits.max_connections_per_user = 2).await;
    let a = app.signup("ann").await;
    let w = app.workspace(&a, "W").await;
    let v = app.workspace(&a, "V").await;
    let first = Commu::open(&app, &a, &w).await.expect("first");
    let _second = Commu::open(&app, &a, &v).await.expect("second");
    let before = refused_total(&app.metrics().await, "connections_per_user");
    let err = Commu::open(&app, &a, &w)
        .await
        .err()
        .expect("the third is refused");
    assert!(err.contains("Too many connections"), "{err}");
    assert_eq!(
        refused_total(&app.metrics().await, "connections_per_user"),
        before + 1
    );
    // A socket leaving frees its slot (once the server has seen it go).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Commu::open(&app, &a, &w).await {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(e.contains("Too many connections"), "{e}");
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("the slot was not freed: {e}"),
        }
    }
    app.stop().await;
}

both_engines!(
    join_answers_readable_channels_once,
    community_sockets_are_capped_per_user
);
