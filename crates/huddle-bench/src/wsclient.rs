//! A minimal client websocket (RFC 6455) for the load generator, so that the
//! client is not the bottleneck: a message is handed over as a slice of the
//! read buffer (no allocation or copy per message, many messages per read
//! syscall), and the read and write halves are the socket's own halves (no
//! lock between them).
//!
//! Only what the scenarios need: text messages, fragmented messages
//! reassembled, pings answered (on an unsplit socket), close. No extensions,
//! no TLS.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Bytes read per syscall (the buffer grows for a larger message).
const READ_CHUNK: usize = 4096;
/// The largest message accepted.
const MAX_MESSAGE: usize = 16 << 20;
/// Client frames must be masked; the key need not be secret here.
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];

/// A message from the server, borrowed from the reader's buffer.
#[derive(Debug)]
pub enum Frame<'a> {
    Text(&'a str),
    Binary,
    /// A websocket-level ping (an unsplit [`Ws`] answers it).
    Ping,
    /// The server closed the connection (or the stream ended).
    Close,
}

/// The read half.
pub struct Reader {
    io: OwnedReadHalf,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A fragmented message being reassembled: is it text, and its bytes.
    partial: Option<(bool, Vec<u8>)>,
    /// The last message when it was reassembled (its bytes live here).
    whole: Vec<u8>,
    /// Where the current message is.
    last: Last,
}

/// The current message: positions in `buf` stay valid until the next read.
#[derive(Clone, Copy)]
enum Last {
    Text(usize, usize),
    /// Reassembled text, in `whole`.
    Whole,
    Binary,
    Ping(usize, usize),
    Close,
}

/// The write half.
pub struct Writer {
    io: OwnedWriteHalf,
    scratch: Vec<u8>,
}

/// Both halves.
pub struct Ws {
    reader: Reader,
    writer: Writer,
}

/// What one parsed frame header says.
struct Head {
    fin: bool,
    opcode: u8,
    /// Payload position in `buf`.
    from: usize,
    to: usize,
}

/// Opens a websocket on a connected stream: `url` is `ws://host:port/path`.
pub async fn handshake(stream: TcpStream, url: &str) -> Result<Ws, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// url: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (rd, mut wr) = stream.into_split();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    wr.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut reader = Reader {
        io: rd,
        buf: vec![0; READ_CHUNK],
        start: 0,
        end: 0,
        partial: None,
        whole: Vec::new(),
        last: Last::Close,
    };
    let head_end = loop {
        if let Some(i) = find(&reader.buf[..reader.end], b"\r\n\r\n") {
            break i + 4;
        }
        if reader.end > 16 * 1024 {
            return Err("handshake: the response headers are too long".into());
        }
        if !reader.fill().await? {
            return Err("handshake: the server closed the connection".into());
        }
    };
    let head = String::from_utf8_lossy(&reader.buf[..head_end]);
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("websocket upgrade refused: {status}"));
    }
    // Whatever followed the headers is the first frames.
    reader.start = head_end;
    Ok(Ws {
        reader,
        writer: Writer {
            io: wr,
            scratch: Vec::new(),
        },
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Ws {
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.writer.send_text(text).await
    }

    /// The next message; pings are answered on the way.
    pub async fn next(&mut self) -> Result<Frame<'_>, String> {
        loop {
            self.reader.advance().await?;
            let Last::Ping(from, to) = self.reader.last else {
                break;
            };
            let pong = self.reader.buf[from..to].to_vec();
            self.writer.send(0xA, &pong).await?;
        }
        Ok(self.reader.current())
    }

    /// The read and write halves, for a task that reads while another writes.
    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }
}

impl Writer {
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(0x1, text.as_bytes()).await
    }

    /// One masked, final frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let s = &mut self.scratch;
        s.clear();
        s.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => s.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                s.push(0x80 | 126);
                s.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                s.push(0x80 | 127);
                s.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        s.extend_from_slice(&MASK);
        s.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
        self.io
            .write_all(s)
            .await
            .map_err(|e| format!("write: {e}"))
    }
}

impl Reader {
    /// Reads more bytes after `end`; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_MESSAGE + 14 {
                return Err("a message from the server is too large".into());
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .io
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        self.end += n;
        Ok(n > 0)
    }

    /// The header of the frame at `start`, if it is all in the buffer.
    fn head(&self) -> Result<Option<Head>, String> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[1] & 0x80 != 0 {
            return Err("the server sent a masked frame".into());
        }
        let (len, size) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                let len = usize::try_from(u64::from_be_bytes(l)).unwrap_or(usize::MAX);
                (len, 10)
            }
            126 | 127 => return Ok(None),
            n => (usize::from(n), 2),
        };
        if len > MAX_MESSAGE {
            return Err("a message from the server is too large".into());
        }
        if b.len() < size + len {
            return Ok(None);
        }
        let from = self.start + size;
        Ok(Some(Head {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0f,
            from,
            to: from + len,
        }))
    }

    /// The next message (pings are handed over, not answered: this half
    /// cannot write).
    pub async fn next(&mut self) -> Result<Frame<'_>, String> {
        self.advance().await?;
        Ok(self.current())
    }

    /// Reads to the next message and makes it the current one.
    async fn advance(&mut self) -> Result<(), String> {
        loop {
            let Some(h) = self.head()? else {
                if !self.fill().await? {
                    self.last = Last::Close;
                    return Ok(());
                }
                continue;
            };
            self.start = h.to;
            self.last = match (h.opcode, h.fin) {
                (0x8, _) => Last::Close,
                (0x9, _) => Last::Ping(h.from, h.to),
                (0xA, _) => continue,
                (0x1, true) => Last::Text(h.from, h.to),
                (0x2, true) => Last::Binary,
                (0x1 | 0x2, false) => {
                    self.partial = Some((h.opcode == 0x1, self.buf[h.from..h.to].to_vec()));
                    continue;
                }
                (0x0, fin) => {
                    let Some((text, mut data)) = self.partial.take() else {
                        return Err("a continuation of nothing".into());
                    };
                    if data.len() + (h.to - h.from) > MAX_MESSAGE {
                        return Err("a message from the server is too large".into());
                    }
                    data.extend_from_slice(&self.buf[h.from..h.to]);
                    if !fin {
                        self.partial = Some((text, data));
                        continue;
                    }
                    self.whole = data;
                    if text {
                        Last::Whole
                    } else {
                        Last::Binary
                    }
                }
                (other, _) => return Err(format!("unknown opcode {other}")),
            };
            return Ok(());
        }
    }

    /// The message [`Reader::advance`] stopped at.
    fn current(&self) -> Frame<'_> {
        match self.last {
            Last::Close => Frame::Close,
            Last::Binary => Frame::Binary,
            Last::Ping(..) => Frame::Ping,
            Last::Text(from, to) => match std::str::from_utf8(&self.buf[from..to]) {
                Ok(t) => Frame::Text(t),
                Err(_) => Frame::Binary,
            },
            Last::Whole => match std::str::from_utf8(&self.whole) {
                Ok(t) => Frame::Text(t),
                Err(_) => Frame::Binary,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// An unmasked server frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn reads_what_a_server_sends_and_answers_pings() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let long = "x".repeat(300);
        let server = {
            let long = long.clone();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut b).await.expect("read");
                    req.extend_from_slice(&b[..n]);
                }
                // The answer and the first frames in one write, a message
                // split across fragments with a ping between them, then a
                // message written byte by byte.
                let mut out = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
                out.extend(frame(true, 1, b"first"));
                out.extend(frame(false, 1, b"hel"));
                out.extend(frame(true, 9, b"pp"));
                out.extend(frame(true, 0, b"lo"));
                s.write_all(&out).await.expect("write");
                for byte in frame(true, 1, long.as_bytes()) {
                    s.write_all(&[byte]).await.expect("write");
                }
                s.write_all(&frame(true, 8, &[])).await.expect("write");
                // The client's pong: masked, payload "pp".
                let mut pong = [0u8; 8];
                s.read_exact(&mut pong).await.expect("pong");
                pong
            })
        };
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut ws = handshake(stream, &format!("ws://{addr}/x"))
            .await
            .expect("handshake");
        let mut got = Vec::new();
        loop {
            match ws.next().await.expect("next") {
                Frame::Text(t) => got.push(t.to_owned()),
                Frame::Close => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, vec!["first".to_owned(), "hello".to_owned(), long]);
        let pong = server.await.expect("server");
        assert_eq!(pong[0], 0x8A, "a final pong");
        assert_eq!(pong[1], 0x82, "masked, 2 bytes");
        let key = [pong[2], pong[3], pong[4], pong[5]];
        assert_eq!([pong[6] ^ key[0], pong[7] ^ key[1]], *b"pp");
    }
}
