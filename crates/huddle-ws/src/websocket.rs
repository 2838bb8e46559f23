//! A server websocket (RFC 6455) built for many idle connections and shared
//! frames, driven by the caller's hand-written future:
//!
//! - the opening handshake is answered here and the connection's task owns the
//!   bare `TcpStream` afterwards (no extra boxing, no per-connection
//!   buffered-stream layers);
//! - nothing is buffered while idle: bytes are read into a stack chunk, and
//!   only a partial frame is copied to the heap (freed once it completes);
//! - outbound packets are written straight from their shared bytes with
//!   vectored writes (a header and the packet per frame, many frames per
//!   syscall): nothing is copied per receiver;
//! - pings are answered, close frames echoed, and protocol errors closed
//!   with their RFC code (1002, 1007, 1009) before the connection ends.
//!
//! No extensions (permessage-deflate) are negotiated.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ws::Utf8Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::value::RawValue;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::frame::{self as wsframe, FrameError, MAX_HEADER};

/// Bytes read per syscall, into a buffer on the stack.
const READ_CHUNK: usize = 4096;
/// Reads done in one go before the task yields to others.
const READ_BUDGET: usize = 64;
/// Frames gathered into one vectored write.
const FRAMES_PER_WRITE: usize = 32;

/// A value the server attached to a request for the connection's whole life
/// (its place under the listener's connection caps): the handshake takes it
/// from the request's extensions and the websocket holds it until it ends, so
/// an upgraded connection keeps counting while it lives without wrapping the
/// `TcpStream` in another IO type.
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<dyn std::any::Any + Send + Sync>);

/// The connection's upgrade (hyper's), with the request's [`ConnectionSlot`].
pub struct OnUpgrade {
    upgrade: hyper::upgrade::OnUpgrade,
    slot: Option<ConnectionSlot>,
}

impl Future for OnUpgrade {
    type Output = hyper::Result<Upgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        Pin::new(&mut me.upgrade).poll(cx).map_ok(|io| Upgraded {
            io,
            slot: me.slot.take(),
        })
    }
}

/// An upgraded connection and its [`ConnectionSlot`]; see [`Stream::from_upgraded`].
pub struct Upgraded {
    io: hyper::upgrade::Upgraded,
    slot: Option<ConnectionSlot>,
}

/// Checks a websocket opening handshake and takes the connection's upgrade.
/// `Ok`: the `101` answer and the upgrade that resolves once it is sent.
/// `Err`: the answer refusing it.
pub fn handshake(req: &mut Request) -> Result<(Response, OnUpgrade), Box<Response>> {
    let h = req.headers();
    if !has_token(h, header::UPGRADE, "websocket") || !has_token(h, header::CONNECTION, "upgrade") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a websocket needs `Connection: upgrade` and `Upgrade: websocket`",
        ));
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = refuse(StatusCode::UPGRADE_REQUIRED, "websocket version 13 only");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(r);
    }
    let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is missing",
        ));
    };
    let accept = wsframe::accept_key(key.as_bytes());
    let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        ));
    };
    let upgrade = OnUpgrade {
        upgrade,
        slot: req.extensions_mut().remove::<ConnectionSlot>(),
    };
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = r.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok((r, upgrade))
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn refuse(status: StatusCode, message: &'static str) -> Box<Response> {
    Box::new((status, message).into_response())
}

/// The upgraded connection: the bare TCP stream when the server is
/// huddle's own accept loop or axum's, otherwise hyper's boxed stream; and the
/// request's [`ConnectionSlot`], released when the stream is dropped.
pub struct Stream {
    io: Io,
    _slot: Option<ConnectionSlot>,
}

enum Io {
    Tcp(TcpStream),
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
}

impl From<TcpStream> for Stream {
    /// A bare TCP stream that holds no connection slot (a client of our own,
    /// tests, fuzzing).
    fn from(tcp: TcpStream) -> Stream {
        Stream {
            io: Io::Tcp(tcp),
            _slot: None,
        }
    }
}

impl Stream {
    /// Unwraps an upgrade, with the bytes the HTTP layer read past the request.
    pub fn from_upgraded(upgraded: Upgraded) -> (Stream, Bytes) {
        let Upgraded { io, slot } = upgraded;
        let (io, read) =
            match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(io) {
                Ok(parts) => {
                    let tcp = parts.io.into_inner();
                    // Frames go out at once: a small write must not wait for the
                    // previous one's ACK (Nagle and a delayed ACK hold it ~40 ms).
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    (Io::Tcp(tcp), parts.read_buf)
                }
                Err(upgraded) => (Io::Upgraded(TokioIo::new(upgraded)), Bytes::new()),
            };
        (Stream { io, _slot: slot }, read)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A whole message from the client.
pub enum Msg<'a> {
    Text(&'a str),
    /// A binary message (Socket.IO's attachments).
    Binary(&'a [u8]),
}

/// What the message handler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Hand over the next message, if one has arrived.
    Continue,
    /// Stop here: [`WebSocket::poll_read`] returns [`End::Paused`] and the
    /// next call goes on with the following message (nothing is lost). For a
    /// handler that must do asynchronous work before the next message.
    Pause,
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum End<E> {
    /// The handler asked for a pause ([`Flow::Pause`]); reading can go on.
    Paused,
    /// The client closed: a close frame or the end of the stream. The echo
    /// of a close frame is queued, not sent: the caller finishes with the
    /// connection first (leaves its rooms), then [`WebSocket::flush_close`]
    /// sends it, so a client that has its echo is gone from the server.
    Closed,
    /// An I/O error, or a protocol error (answered with its close code).
    Failed,
    /// The message handler asked to stop.
    Handler(E),
}

/// One websocket's framing state around its stream.
pub struct WebSocket {
    io: Stream,
    /// Bytes read that do not make a whole frame yet; unallocated while idle.
    rbuf: Vec<u8>,
    /// `rbuf` holds bytes not looked at yet (read with the upgrade).
    unread: bool,
    /// A fragmented message being assembled: its opcode and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
    /// Bytes of the first outbound frame (header included) already written.
    written: usize,
    /// Our own encoded frames (pongs, close), written between data frames.
    ctrl: Vec<u8>,
    max_message: usize,
    close_sent: bool,
    /// The handler asked for a pause during the current read.
    paused: bool,
}

impl WebSocket {
    /// `max_message`: the largest frame or reassembled message accepted (1009 past it).
    pub fn new(io: Stream, read: Bytes, max_message: usize) -> WebSocket {
        WebSocket {
            io,
            unread: !read.is_empty(),
            rbuf: read.to_vec(),
            partial: None,
            written: 0,
            ctrl: Vec::new(),
            max_message,
            close_sent: false,
            paused: false,
        }
    }

    /// Reads what has arrived and hands each whole message to `on_msg`.
    /// `Pending`: nothing more to read now (the task is woken when there is,
    /// or at once after a full budget).
    pub fn poll_read<E>(
        &mut self,
        cx: &mut Context<'_>,
        mut on_msg: impl FnMut(Msg<'_>) -> Result<Flow, E>,
    ) -> Poll<End<E>> {
        if self.unread {
            self.unread = false;
            if let Err(end) = self.absorb(cx, &mut [], &mut on_msg) {
                return Poll::Ready(end);
            }
            if std::mem::take(&mut self.paused) {
                return Poll::Ready(End::Paused);
            }
        }
        let mut chunk = [0u8; READ_CHUNK];
        for _ in 0..READ_BUDGET {
            let n = {
                let mut rb = ReadBuf::new(&mut chunk);
                match self.io.poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(End::Failed),
                    Poll::Ready(Ok(())) => rb.filled().len(),
                }
            };
            if n == 0 {
                return Poll::Ready(End::Closed);
            }
            if let Err(end) = self.absorb(cx, &mut chunk[..n], &mut on_msg) {
                return Poll::Ready(end);
            }
            if std::mem::take(&mut self.paused) {
                return Poll::Ready(End::Paused);
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn absorb<E>(
        &mut self,
        cx: &mut Context<'_>,
        fresh: &mut [u8],
        on_msg: &mut impl FnMut(Msg<'_>) -> Result<Flow, E>,
    ) -> Result<(), End<E>> {
        if self.rbuf.is_empty() {
            let used = self.frames(cx, fresh, on_msg)?;
            self.rbuf.extend_from_slice(&fresh[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.extend_from_slice(fresh);
            let used = self.frames(cx, &mut buf, on_msg)?;
            if used < buf.len() {
                buf.drain(..used);
                self.rbuf = buf;
            }
        }
        // After a pause, what follows is handled on the next call first.
        self.unread = self.paused && !self.rbuf.is_empty();
        Ok(())
    }

    /// Handles the whole frames at the start of `buf`; returns the bytes used.
    fn frames<E>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        on_msg: &mut impl FnMut(Msg<'_>) -> Result<Flow, E>,
    ) -> Result<usize, End<E>> {
        let mut pos = 0;
        loop {
            let h = match wsframe::parse_header(&buf[pos..], self.max_message) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(pos),
                Err(e) => return Err(self.fail(cx, e)),
            };
            let end = pos + h.size + h.len;
            if buf.len() < end {
                return Ok(pos);
            }
            let payload = &mut buf[pos + h.size..end];
            wsframe::unmask(payload, h.mask);
            let flow = self.frame(cx, h, payload, on_msg)?;
            pos = end;
            if flow == Flow::Pause {
                self.paused = true;
                return Ok(pos);
            }
        }
    }

    fn frame<E>(
        &mut self,
        cx: &mut Context<'_>,
        h: wsframe::Header,
        payload: &[u8],
        on_msg: &mut impl FnMut(Msg<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, End<E>> {
        match h.opcode {
            wsframe::OP_PING => {
                wsframe::encode(wsframe::OP_PONG, payload, &mut self.ctrl);
                Ok(Flow::Continue)
            }
            wsframe::OP_PONG => Ok(Flow::Continue),
            wsframe::OP_CLOSE => match wsframe::check_close(payload) {
                Ok(()) => {
                    // Echo the code (an empty close is answered empty), once
                    // the caller is done: see `End::Closed`.
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    self.queue_close(code, "");
                    Err(End::Closed)
                }
                Err(e) => Err(self.fail(cx, e)),
            },
            wsframe::OP_TEXT | wsframe::OP_BINARY if self.partial.is_some() => Err(self.fail(
                cx,
                FrameError::Protocol("a message began inside a fragmented one"),
            )),
            wsframe::OP_TEXT | wsframe::OP_BINARY if h.fin => {
                self.message(cx, h.opcode, payload, on_msg)
            }
            wsframe::OP_TEXT | wsframe::OP_BINARY => {
                self.partial = Some((h.opcode, payload.to_vec()));
                Ok(Flow::Continue)
            }
            _ => {
                let Some((opcode, mut data)) = self.partial.take() else {
                    return Err(self.fail(cx, FrameError::Protocol("a continuation of nothing")));
                };
                if data.len() + payload.len() > self.max_message {
                    return Err(self.fail(cx, FrameError::TooBig));
                }
                data.extend_from_slice(payload);
                if h.fin {
                    self.message(cx, opcode, &data, on_msg)
                } else {
                    self.partial = Some((opcode, data));
                    Ok(Flow::Continue)
                }
            }
        }
    }

    fn message<E>(
        &mut self,
        cx: &mut Context<'_>,
        opcode: u8,
        data: &[u8],
        on_msg: &mut impl FnMut(Msg<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, End<E>> {
        let msg = if opcode == wsframe::OP_TEXT {
            match std::str::from_utf8(data) {
                Ok(text) => Msg::Text(text),
                Err(_) => return Err(self.fail(cx, FrameError::InvalidData)),
            }
        } else {
            Msg::Binary(data)
        };
        on_msg(msg).map_err(End::Handler)
    }

    fn fail<E>(&mut self, cx: &mut Context<'_>, e: FrameError) -> End<E> {
        tracing::debug!(error = ?e, "websocket protocol error");
        self.send_close(cx, Some(e.close_code()), "");
        End::Failed
    }

    /// Queues a text frame of our own (written before the next data frame).
    /// The caller bounds these: see [`WebSocket::backlog`].
    pub fn queue_text(&mut self, text: &str) {
        wsframe::encode(wsframe::OP_TEXT, text.as_bytes(), &mut self.ctrl);
    }

    /// Bytes of our own frames not written yet (replies queued with
    /// [`WebSocket::queue_text`], pongs): a caller that answers requests stops
    /// reading while this is large, so a client that does not read cannot
    /// make it grow.
    pub fn backlog(&self) -> usize {
        self.ctrl.len()
    }

    /// Sends a close frame (or the echo already queued), best effort: the
    /// connection is ending, so a client that does not read does not hold it.
    /// Only the first close frame counts. `reason` is cut to the 123 bytes a
    /// close frame can carry.
    pub fn send_close(&mut self, cx: &mut Context<'_>, code: Option<u16>, reason: &str) {
        self.queue_close(code, reason);
        self.flush_close(cx);
    }

    /// Sends the close frame already queued (the echo of the client's), if
    /// any, best effort, and ends the write side.
    pub fn flush_close(&mut self, cx: &mut Context<'_>) {
        if self.close_sent {
            if let Poll::Ready(Ok(())) = self.poll_ctrl(cx) {
                let _ = self.io.poll_shutdown(cx);
            }
        }
    }

    /// Queues our close frame, once; none while a data frame is half written
    /// (no frame can follow it).
    fn queue_close(&mut self, code: Option<u16>, reason: &str) {
        if self.close_sent || self.written > 0 {
            return;
        }
        self.close_sent = true;
        let mut payload = [0u8; 125];
        let mut len = 0;
        if let Some(code) = code {
            payload[..2].copy_from_slice(&code.to_be_bytes());
            len = 2;
            let mut cut = reason.len().min(123);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
            len += cut;
        }
        wsframe::encode(wsframe::OP_CLOSE, &payload[..len], &mut self.ctrl);
    }

    /// Writes our own frames, if any and if no data frame is half written.
    pub fn poll_ctrl(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.written > 0 {
            return Poll::Ready(Ok(()));
        }
        while !self.ctrl.is_empty() {
            match self.io.poll_write(cx, &self.ctrl) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.ctrl.drain(..n);
                }
            }
        }
        self.ctrl = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Writes every packet of `out` as a text frame (a binary one where
    /// [`Payload::binary`] says so), popping each once
    /// written, our own frames in between. `Pending`: the socket is full.
    pub fn poll_write<P: Payload>(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut VecDeque<P>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.poll_ctrl(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            if out.is_empty() {
                return self.io.poll_flush(cx);
            }
            // Until a pending frame of our own can go, write one frame at a time.
            let limit = if self.ctrl.is_empty() {
                FRAMES_PER_WRITE
            } else {
                1
            };
            let mut heads = [[0u8; MAX_HEADER]; FRAMES_PER_WRITE];
            let mut lens = [0usize; FRAMES_PER_WRITE];
            let frames = out.len().min(limit);
            for (i, p) in out.iter().take(frames).enumerate() {
                let op = if p.binary() {
                    wsframe::OP_BINARY
                } else {
                    wsframe::OP_TEXT
                };
                lens[i] = wsframe::header(op, p.bytes().len(), &mut heads[i]);
            }
            let mut iov = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
            let mut n = 0;
            for (i, p) in out.iter().take(frames).enumerate() {
                let body = p.bytes();
                let skip = if i == 0 { self.written } else { 0 };
                if skip < lens[i] {
                    iov[n] = IoSlice::new(&heads[i][skip..lens[i]]);
                    n += 1;
                }
                let from = skip.saturating_sub(lens[i]);
                if from < body.len() {
                    iov[n] = IoSlice::new(&body[from..]);
                    n += 1;
                }
            }
            let sent = match self.io.poll_write_vectored(cx, &iov[..n]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(sent)) => sent,
            };
            self.consume(out, sent);
        }
    }

    fn consume<P: Payload>(&mut self, out: &mut VecDeque<P>, mut sent: usize) {
        while sent > 0 {
            let Some(p) = out.front() else { return };
            let len = p.bytes().len();
            let left = frame_len(len) - self.written;
            if sent >= left {
                sent -= left;
                self.written = 0;
                out.pop_front();
            } else {
                self.written += sent;
                return;
            }
        }
    }
}

fn frame_len(payload: usize) -> usize {
    let head = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    head + payload
}

/// An outbound message, shared by every connection it goes to: written
/// from its own bytes, never copied per connection. A text message (the
/// default) must be UTF-8.
pub trait Payload {
    fn bytes(&self) -> &[u8];

    /// Whether it goes out as a binary frame rather than a text frame.
    fn binary(&self) -> bool {
        false
    }
}

impl Payload for Utf8Bytes {
    fn bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

/// A JSON value encoded once (what the hub fans out).
impl Payload for Arc<RawValue> {
    fn bytes(&self) -> &[u8] {
        self.get().as_bytes()
    }
}
