//! RFC 6455 framing, server side: the opening handshake's accept key, the
//! headers of the frames we send (unmasked), and the reading of the frames a
//! client sends (masked). No extensions are negotiated, so every reserved bit
//! must be clear.

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub(crate) const OP_CONTINUATION: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Close codes sent by this layer (and for callers' own closes).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The longest frame header we send: 2 bytes and a 64-bit length.
pub(crate) const MAX_HEADER: usize = 10;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Writes the header of an unmasked, final frame of `len` payload bytes into
/// `out`; returns its length.
pub(crate) fn header(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends a whole unmasked frame to `out` (control frames and the probe).
pub(crate) fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut h = [0u8; MAX_HEADER];
    let n = header(opcode, payload.len(), &mut h);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// Why a client's frame was refused, with the close code it earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Reserved bits, unknown opcode, unmasked frame, bad control frame,
    /// continuation out of place.
    Protocol(&'static str),
    /// A frame or message past the size limit.
    TooBig,
    /// A text message that is not UTF-8, or a bad close payload.
    InvalidData,
}

impl FrameError {
    pub(crate) fn close_code(self) -> u16 {
        match self {
            FrameError::Protocol(_) => CLOSE_PROTOCOL,
            FrameError::TooBig => CLOSE_TOO_BIG,
            FrameError::InvalidData => CLOSE_INVALID_DATA,
        }
    }
}

/// A client frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub mask: [u8; 4],
    /// Payload length.
    pub len: usize,
    /// Header length, mask included.
    pub size: usize,
}

/// Reads the header at the start of `buf`. `Ok(None)`: more bytes are needed.
/// Frames longer than `max` are refused before their payload is read.
pub(crate) fn parse_header(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let control = match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => false,
        OP_CLOSE | OP_PING | OP_PONG => true,
        _ => return Err(FrameError::Protocol("unknown opcode")),
    };
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                (u64::from_be_bytes(n), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(FrameError::Protocol("the length's high bit must be clear"));
    }
    if control && (!fin || len > 125) {
        return Err(FrameError::Protocol(
            "control frames must be final and at most 125 bytes",
        ));
    }
    let len = match usize::try_from(len) {
        Ok(len) if len <= max => len,
        _ => return Err(FrameError::TooBig),
    };
    let Some(m) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [m[0], m[1], m[2], m[3]],
        len,
        size: at + 4,
    }))
}

/// Unmasks a payload in place.
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Checks a close frame's payload: empty, or a code and a UTF-8 reason.
pub(crate) fn check_close(payload: &[u8]) -> Result<(), FrameError> {
    match payload {
        [] => Ok(()),
        [_] => Err(FrameError::Protocol("a close payload needs a 2-byte code")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(FrameError::Protocol("invalid close code"));
            }
            std::str::from_utf8(reason)
                .map(drop)
                .map_err(|_| FrameError::InvalidData)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADER];
        let n = header(opcode, payload.len(), &mut h);
        let mut v = h[..n].to_vec();
        if !fin {
            v[0] &= 0x7F;
        }
        v[1] |= 0x80;
        v.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        unmask(&mut p, mask);
        v.extend_from_slice(&p);
        v
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        let mut h = [0u8; MAX_HEADER];
        assert_eq!(header(OP_TEXT, 125, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(header(OP_TEXT, 126, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0, 126]);
        assert_eq!(header(OP_TEXT, 70_000, &mut h), 10);
        assert_eq!(&h[..2], &[0x81, 127]);
        assert_eq!(
            u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            70_000
        );
    }

    #[test]
    fn reads_masked_frames_of_every_length_form() {
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let frame = masked(OP_TEXT, true, &payload, [1, 2, 3, 4]);
            let h = parse_header(&frame, 1 << 20)
                .expect("valid")
                .expect("whole");
            assert_eq!((h.fin, h.opcode, h.len), (true, OP_TEXT, len));
            let mut body = frame[h.size..].to_vec();
            unmask(&mut body, h.mask);
            assert_eq!(body, payload);
            // Any shorter prefix of the header asks for more bytes.
            for cut in 0..h.size {
                assert_eq!(
                    parse_header(&frame[..cut], 1 << 20),
                    Ok(None),
                    "{len} {cut}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let ok = masked(OP_TEXT, true, b"hi", [9, 9, 9, 9]);
        let mut rsv = ok.clone();
        rsv[0] |= 0x40;
        assert!(matches!(
            parse_header(&rsv, 100),
            Err(FrameError::Protocol(_))
        ));
        let mut unmasked = ok.clone();
        unmasked[1] &= 0x7F;
        assert!(matches!(
            parse_header(&unmasked, 100),
            Err(FrameError::Protocol(_))
        ));
        let mut opcode = ok.clone();
        opcode[0] = 0x83;
        assert!(matches!(
            parse_header(&opcode, 100),
            Err(FrameError::Protocol(_))
        ));
        let ping = masked(OP_PING, false, b"x", [0; 4]);
        assert!(matches!(
            parse_header(&ping, 100),
            Err(FrameError::Protocol(_))
        ));
        let big_ping = masked(OP_PING, true, &[0; 126], [0; 4]);
        assert!(matches!(
            parse_header(&big_ping, 1000),
            Err(FrameError::Protocol(_))
        ));
        assert_eq!(parse_header(&ok, 1), Err(FrameError::TooBig));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            parse_header(&huge, usize::MAX),
            Err(FrameError::Protocol(_))
        ));
        let mut long = vec![0x82, 0xFF];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(parse_header(&long, 1 << 20), Err(FrameError::TooBig));
    }

    #[test]
    fn unmask_handles_every_alignment() {
        for len in 0..12 {
            let data: Vec<u8> = (0..len).collect();
            let mut x = data.clone();
            unmask(&mut x, [0xA, 0xB, 0xC, 0xD]);
            let expect: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [0xA, 0xB, 0xC, 0xD][i % 4])
                .collect();
            assert_eq!(x, expect);
        }
    }

    #[test]
    fn close_payloads() {
        assert_eq!(check_close(&[]), Ok(()));
        assert!(check_close(&[3]).is_err());
        assert_eq!(check_close(&[0x03, 0xE8, b'o', b'k']), Ok(()));
        assert!(check_close(&[0x03, 0xED]).is_err(), "1005 is never sent");
        assert_eq!(
            check_close(&[0x03, 0xE8, 0xFF]),
            Err(FrameError::InvalidData)
        );
    }
}
