//! Peer server for huddle-bench: the minimal idiomatic socketioxide 0.18 server
//! with the behaviour the scenarios need. Namespace `/`, default settings.
//!   join (ack)          -> joins room `bench`, acks {ok: true}
//!   broadcast (payload) -> io.to("bench").emit("broadcast", payload)
//!   echo (args, ack)    -> ack(args)

use std::convert::Infallible;

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

/// Registers the event handlers. It runs as connect middleware, which
/// socketioxide awaits before it sends the CONNECT reply: a plain connect
/// handler is spawned only after that reply, so an event a client sends as soon
/// as it is connected can arrive before `socket.on` ran and be dropped (seen
/// here as about one `join` in 400 going unanswered).
async fn register(socket: SocketRef) -> Result<(), Infallible> {
    socket.on("join", async |s: SocketRef, ack: AckSender| {
        s.join("bench");
        let _ = ack.send(&json!({ "ok": true }));
    });
    socket.on("broadcast", async |io: SocketIo, Data::<Value>(payload)| {
        let _ = io.to("bench").emit("broadcast", &payload).await;
    });
    socket.on("echo", async |Data::<Value>(args), ack: AckSender| {
        let _ = ack.send(&args);
    });
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", (async |_: SocketRef| {}).with(register));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
