//! The websocket frame reader ([`huddle_ws::WebSocket::poll_read`]) over a
//! real loopback socket: what a client sends after the handshake, split
//! between the bytes read with the upgrade and the bytes read from the
//! socket, so frames straddle reads. Replies are written between reads, and
//! the handler sometimes pauses, as the connection tasks do.
#![no_main]

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::OnceLock;
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use huddle_ws::{End, Flow, Msg, Stream, WebSocket};

struct Env {
    rt: tokio::runtime::Runtime,
    listener: TcpListener,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("loopback listener");
        Env { rt, listener }
    })
}

fuzz_target!(|data: &[u8]| {
    let [split, flags, rest @ ..] = data else {
        return;
    };
    let split = usize::from(*split).min(rest.len());
    let (upgrade_bytes, socket_bytes) = rest.split_at(split);
    // A small limit sometimes, so that "too big" is reached too.
    let max_message = if flags & 1 == 0 { 1 << 16 } else { 200 };
    let pause = flags & 2 != 0;
    let reply = flags & 4 != 0;
    let env = env();
    env.rt.block_on(async {
        let addr = env.listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), env.listener.accept());
        let (Ok(mut client), Ok((server, _))) = (client, accepted) else {
            return;
        };
        // The client's bytes, then its end of the stream.
        if client.write_all(socket_bytes).await.is_err() || client.shutdown().await.is_err() {
            return;
        }
        let mut ws = WebSocket::new(
            Stream::from(server),
            Bytes::copy_from_slice(upgrade_bytes),
            max_message,
        );
        let mut out: VecDeque<Utf8Bytes> = VecDeque::new();
        let mut messages = 0usize;
        // Bounded: each round reads at least one frame or ends.
        for _ in 0..=data.len() + 4 {
            let end = poll_fn(|cx| {
                let read = ws.poll_read(cx, |msg| {
                    messages += 1;
                    if let Msg::Text(t) = msg {
                        assert!(std::str::from_utf8(t.as_bytes()).is_ok());
                    }
                    Ok::<_, ()>(if pause { Flow::Pause } else { Flow::Continue })
                });
                match read {
                    Poll::Ready(end) => Poll::Ready(end),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match end {
                End::Paused => {
                    if reply {
                        ws.queue_text("{\"ok\":true}");
                        out.push_back(Utf8Bytes::from_static("shared"));
                        let _ = poll_fn(|cx| Poll::Ready(ws.poll_write(cx, &mut out))).await;
                    }
                }
                End::Closed => {
                    poll_fn(|cx| {
                        ws.flush_close(cx);
                        Poll::Ready(())
                    })
                    .await;
                    break;
                }
                End::Failed | End::Handler(()) => break,
            }
        }
        let _ = messages;
    });
});
