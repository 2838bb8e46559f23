//! The Engine.IO and Socket.IO text path as a polling client reaches it,
//! through the public router: a handshake, then each part of the input
//! (split at 0xFF, a byte UTF-8 never holds) POSTed as a payload and followed
//! by a poll. Covers the payload split, Engine.IO packet types, the Socket.IO
//! decoder, CONNECT payloads, events and acks, with a handler that accepts,
//! refuses, echoes and acknowledges.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

use huddle_sio::{Config, Event, Handler, Reason, SioServer, Socket};

struct Echo;

impl Handler for Echo {
    fn connect(
        &self,
        socket: Arc<Socket>,
        auth: Option<Value>,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            if socket.ns().ends_with("refuse") || auth.as_ref().is_some_and(|a| a["refuse"] == true)
            {
                Err("refused".into())
            } else {
                Ok(())
            }
        })
    }

    fn event(&self, socket: Arc<Socket>, event: Event) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = match event.ack {
                Some(id) => socket.ack_args(id, &event.args),
                None => socket.emit(&event.name, event.data()),
            };
            if event.name == "leave" {
                socket.disconnect();
            }
        })
    }

    fn malformed(
        &self,
        socket: Arc<Socket>,
        ack: Option<u64>,
        error: &'static str,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = match ack {
                Some(id) => socket.ack(id, error),
                None => socket.emit("socket-api-error", error),
            };
        })
    }

    fn disconnect(&self, _socket: Arc<Socket>, _reason: Reason) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Vec<u8>,
) -> Option<(StatusCode, Vec<u8>)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .ok()?;
    let res = app.clone().oneshot(req).await.ok()?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24).await.ok()?;
    Some((status, bytes.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let cfg = Config {
            max_payload: 64 * 1024,
            outbound_queue_bytes: 16 * 1024,
            ..Config::default()
        };
        let server = SioServer::new(cfg, |ns| {
            (ns == "/" || ns.starts_with("/n")).then(|| Arc::new(Echo) as Arc<dyn Handler>)
        });
        let app: Router = server.router();
        let base = "/socket.io/?EIO=4&transport=polling";
        let Some((StatusCode::OK, open)) = call(&app, Method::GET, base, Vec::new()).await else {
            panic!("the polling handshake must succeed");
        };
        let open: Value = serde_json::from_slice(&open[1..]).expect("the open packet is JSON");
        let sid = open["sid"].as_str().expect("a sid").to_owned();
        let session = format!("{base}&sid={sid}");
        for part in data.split(|b| *b == 0xFF).take(4) {
            let Some((status, _)) = call(&app, Method::POST, &session, part.to_vec()).await else {
                return;
            };
            assert!(!status.is_server_error(), "a POST answered {status}");
            // Let the handlers run, then read what they queued: the poll is
            // polled once (a poll with nothing queued would wait a heartbeat).
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            let poll = call(&app, Method::GET, &session, Vec::new());
            match tokio::time::timeout(Duration::ZERO, poll).await {
                Ok(Some((status, _))) => {
                    assert!(!status.is_server_error(), "a poll answered {status}");
                    if status != StatusCode::OK {
                        break;
                    }
                }
                Ok(None) | Err(_) => {}
            }
        }
        // Shutdown disconnects every socket; nothing waits for a drain.
        server.close(Duration::ZERO).await;
    });
});
