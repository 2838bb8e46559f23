//! Engine.IO v4 and Socket.IO v5 packet text: parsing what clients send and
//! encoding what the server sends. Pure functions, no I/O.

use std::fmt::Write;

/// Socket.IO packet types (the digit after Engine.IO's `4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A parsed Socket.IO packet; `data` is the JSON text after the header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SioPacket<'a> {
    pub kind: Kind,
    pub ns: &'a str,
    pub ack: Option<u64>,
    pub data: &'a str,
    /// Binary attachments announced by a binary packet.
    pub attachments: u32,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// Parses a Socket.IO packet (`text` without Engine.IO's leading `4`):
/// `<type>[<attachments>-][/<ns>,][<ack id>][<json>]`.
pub(crate) fn parse(text: &str) -> Result<SioPacket<'_>, Malformed> {
    let mut rest = text;
    let kind = match rest.as_bytes().first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err(Malformed("unknown Socket.IO packet type")),
    };
    rest = &rest[1..];
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || rest.as_bytes().get(digits) != Some(&b'-') {
            return Err(Malformed("binary packet without an attachment count"));
        }
        attachments = rest[..digits]
            .parse()
            .map_err(|_| Malformed("attachment count out of range"))?;
        rest = &rest[digits + 1..];
    }
    let mut ns = "/";
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => {
                ns = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                ns = rest;
                rest = "";
            }
        }
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 {
        let id = rest[..digits]
            .parse()
            .map_err(|_| Malformed("ack id out of range"))?;
        rest = &rest[digits..];
        Some(id)
    } else {
        None
    };
    Ok(SioPacket {
        kind,
        ns,
        ack,
        data: rest,
        attachments,
    })
}

/// Writes the header `4<type>[/<ns>,][<ack id>]` of a server packet.
fn header(out: &mut String, kind: char, ns: &str, ack: Option<u64>) {
    out.push('4');
    out.push(kind);
    if ns != "/" {
        out.push_str(ns);
        out.push(',');
    }
    if let Some(id) = ack {
        let _ = write!(out, "{id}");
    }
}

/// `42[/ns,]["<event>",<payload>]`: `payload` is JSON text written as it is.
pub(crate) fn event(ns: &str, event: &str, payload: &str) -> String {
    let mut out = String::with_capacity(ns.len() + event.len() + payload.len() + 16);
    header(&mut out, '2', ns, None);
    out.push('[');
    push_json_str(&mut out, event);
    out.push(',');
    out.push_str(payload);
    out.push(']');
    out
}

/// `43[/ns,]<id><args>`: `args` is a JSON array.
pub(crate) fn ack(ns: &str, id: u64, args: &str) -> String {
    let mut out = String::with_capacity(ns.len() + args.len() + 16);
    header(&mut out, '3', ns, Some(id));
    out.push_str(args);
    out
}

/// `40[/ns,]{"sid":"<sid>"}`: the namespace accepted the client.
pub(crate) fn connected(ns: &str, sid: &str) -> String {
    let mut out = String::with_capacity(ns.len() + sid.len() + 16);
    header(&mut out, '0', ns, None);
    out.push_str("{\"sid\":");
    push_json_str(&mut out, sid);
    out.push('}');
    out
}

/// `44[/ns,]{"message":"<message>"}`: the namespace refused the client.
pub(crate) fn connect_error(ns: &str, message: &str) -> String {
    let mut out = String::with_capacity(ns.len() + message.len() + 20);
    header(&mut out, '4', ns, None);
    out.push_str("{\"message\":");
    push_json_str(&mut out, message);
    out.push('}');
    out
}

/// `41[/ns,]`: the server disconnects the client from the namespace.
pub(crate) fn disconnect(ns: &str) -> String {
    let mut out = String::with_capacity(ns.len() + 3);
    header(&mut out, '1', ns, None);
    out
}

/// Engine.IO's open packet.
pub(crate) fn open(
    sid: &str,
    upgrades: bool,
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload: usize,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("0{\"sid\":");
    push_json_str(&mut out, sid);
    let upgrades = if upgrades { "[\"websocket\"]" } else { "[]" };
    let _ = write!(
        out,
        ",\"upgrades\":{upgrades},\"pingInterval\":{ping_interval_ms},\"pingTimeout\":{ping_timeout_ms},\"maxPayload\":{max_payload}}}"
    );
    out
}

fn push_json_str(out: &mut String, s: &str) {
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_socket_io_client_sends() {
        let p = parse("0").expect("connect");
        assert_eq!(
            (p.kind, p.ns, p.ack, p.data),
            (Kind::Connect, "/", None, "")
        );
        let p = parse("0/socket/commu-1,{\"token\":\"x\"}").expect("connect ns");
        assert_eq!((p.ns, p.data), ("/socket/commu-1", "{\"token\":\"x\"}"));
        let p = parse("2[\"auth\",{}]").expect("event");
        assert_eq!(
            (p.kind, p.ack, p.data),
            (Kind::Event, None, "[\"auth\",{}]")
        );
        let p = parse("2/chat,12[\"x\"]").expect("event ns ack");
        assert_eq!((p.ns, p.ack, p.data), ("/chat", Some(12), "[\"x\"]"));
        let p = parse("1/chat,").expect("disconnect ns");
        assert_eq!((p.kind, p.ns), (Kind::Disconnect, "/chat"));
        let p = parse("1/chat").expect("disconnect ns without comma");
        assert_eq!(p.ns, "/chat");
        let p = parse("52-[\"up\",{\"_placeholder\":true,\"num\":0}]").expect("binary");
        assert_eq!((p.kind, p.attachments), (Kind::BinaryEvent, 2));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for bad in [
            "",
            "9",
            "x",
            "5-[]",
            "5x-[]",
            "299999999999999999999999[\"a\"]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn encodes_what_socket_io_client_reads() {
        assert_eq!(event("/", "a\"b", "{\"x\":1}"), "42[\"a\\\"b\",{\"x\":1}]");
        assert_eq!(event("/n", "e", "null"), "42/n,[\"e\",null]");
        assert_eq!(ack("/", 7, "[{}]"), "437[{}]");
        assert_eq!(ack("/n", 7, "[1,2]"), "43/n,7[1,2]");
        assert_eq!(connected("/", "s1"), "40{\"sid\":\"s1\"}");
        assert_eq!(connect_error("/n", "No"), "44/n,{\"message\":\"No\"}");
        assert_eq!(disconnect("/"), "41");
        assert_eq!(disconnect("/n"), "41/n,");
        assert_eq!(
            open("abc", true, 25000, 20000, 65536),
            "0{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":65536}"
        );
    }
}
