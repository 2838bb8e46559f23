//! Engine.IO v4 and Socket.IO v5 packet text: parsing what clients send and
//! encoding what the server sends. Pure functions, no I/O.

use std::fmt::Write;

use serde_json::Value;

/// Binary attachments one packet may announce; more is a protocol error
/// (socket.io clients send one per `Buffer`/`ArrayBuffer` in an emit).
pub(crate) const MAX_ATTACHMENTS: u32 = 10;

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
            .ok()
            .filter(|n| *n <= MAX_ATTACHMENTS)
            .ok_or(Malformed("too many attachments"))?;
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

/// Checks the placeholders of a binary packet's data against the count it
/// announced: every object with `"_placeholder": true` must name an
/// attachment (`"num"`: `0..count`), each exactly once, so the receiver's
/// reconstruction (socket.io-parser's) finds every one and no other.
pub(crate) fn check_placeholders(data: &Value, count: u32) -> Result<(), Malformed> {
    fn walk(v: &Value, count: u32, seen: &mut u64) -> Result<(), Malformed> {
        match v {
            Value::Array(items) => items.iter().try_for_each(|i| walk(i, count, seen)),
            Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
                let num = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .filter(|n| *n < u64::from(count))
                    .ok_or(Malformed("a placeholder names no attachment"))?;
                let bit = 1u64 << num;
                if *seen & bit != 0 {
                    return Err(Malformed("an attachment is named twice"));
                }
                *seen |= bit;
                Ok(())
            }
            Value::Object(map) => map.values().try_for_each(|i| walk(i, count, seen)),
            _ => Ok(()),
        }
    }
    // MAX_ATTACHMENTS fits the 64 bits of `seen`.
    let mut seen = 0u64;
    walk(data, count.min(MAX_ATTACHMENTS), &mut seen)?;
    if seen.count_ones() != count {
        return Err(Malformed("placeholders do not match the attachment count"));
    }
    Ok(())
}

/// Writes the header `4<type>[<attachments>-][/<ns>,][<ack id>]` of a
/// server packet; a binary packet (`5`, `6`) announces its attachments.
fn header(out: &mut String, kind: char, ns: &str, ack: Option<u64>) {
    header_binary(out, kind, None, ns, ack);
}

fn header_binary(
    out: &mut String,
    kind: char,
    attachments: Option<usize>,
    ns: &str,
    ack: Option<u64>,
) {
    out.push('4');
    out.push(kind);
    if let Some(n) = attachments {
        let _ = write!(out, "{n}-");
    }
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
    event_with(ns, event, payload, 0)
}

/// [`event`], or with `attachments > 0` the binary event
/// `45<n>-[/ns,]["<event>",<payload>]` whose attachments follow it.
pub(crate) fn event_with(ns: &str, event: &str, payload: &str, attachments: usize) -> String {
    let mut out = String::with_capacity(ns.len() + event.len() + payload.len() + 20);
    if attachments > 0 {
        header_binary(&mut out, '5', Some(attachments), ns, None);
    } else {
        header(&mut out, '2', ns, None);
    }
    out.push('[');
    push_json_str(&mut out, event);
    out.push(',');
    out.push_str(payload);
    out.push(']');
    out
}

/// `43[/ns,]<id><args>` (`args` is a JSON array), or with `attachments > 0`
/// the binary ack `46<n>-[/ns,]<id><args>` whose attachments follow it.
pub(crate) fn ack_with(ns: &str, id: u64, args: &str, attachments: usize) -> String {
    let mut out = String::with_capacity(ns.len() + args.len() + 20);
    if attachments > 0 {
        header_binary(&mut out, '6', Some(attachments), ns, Some(id));
    } else {
        header(&mut out, '3', ns, Some(id));
    }
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
        let p = parse("61-/n,5[{\"_placeholder\":true,\"num\":0}]").expect("binary ack");
        assert_eq!(
            (p.kind, p.attachments, p.ns, p.ack),
            (Kind::BinaryAck, 1, "/n", Some(5))
        );
        let p = parse("510-[\"x\"]").expect("the most attachments");
        assert_eq!(p.attachments, MAX_ATTACHMENTS);
    }

    #[test]
    fn placeholders_must_match_the_announced_count() {
        let ph = |n: u64| serde_json::json!({"_placeholder": true, "num": n});
        let ok = serde_json::json!(["up", ph(1), {"a": [ph(0)], "b": 2}]);
        assert_eq!(check_placeholders(&ok, 2), Ok(()));
        assert_eq!(check_placeholders(&serde_json::json!(["x"]), 0), Ok(()));
        for (bad, n) in [
            (serde_json::json!(["up", ph(0)]), 2), // fewer than announced
            (serde_json::json!(["up", ph(0), ph(1)]), 1), // more than announced
            (serde_json::json!(["up", ph(0), ph(0)]), 2), // one named twice
            (serde_json::json!(["up", {"_placeholder": true}]), 1), // no num
            (
                serde_json::json!(["up", {"_placeholder": true, "num": "0"}]),
                1,
            ),
            (serde_json::json!(["up", ph(3)]), 1), // out of range
            (serde_json::json!(["up"]), 1),
        ] {
            assert!(
                check_placeholders(&bad, n).is_err(),
                "{bad} with {n} must be refused"
            );
        }
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for bad in [
            "",
            "9",
            "x",
            "5-[]",
            "5x-[]",
            "511-[]",
            "599999999999-[]",
            "299999999999999999999999[\"a\"]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn encodes_what_socket_io_client_reads() {
        assert_eq!(event("/", "a\"b", "{\"x\":1}"), "42[\"a\\\"b\",{\"x\":1}]");
        assert_eq!(event("/n", "e", "null"), "42/n,[\"e\",null]");
        assert_eq!(ack_with("/", 7, "[{}]", 0), "437[{}]");
        assert_eq!(ack_with("/n", 7, "[1,2]", 0), "43/n,7[1,2]");
        assert_eq!(connected("/", "s1"), "40{\"sid\":\"s1\"}");
        assert_eq!(connect_error("/n", "No"), "44/n,{\"message\":\"No\"}");
        assert_eq!(
            event_with("/", "e", "{\"_placeholder\":true,\"num\":0}", 1),
            "451-[\"e\",{\"_placeholder\":true,\"num\":0}]"
        );
        assert_eq!(event_with("/n", "e", "1", 0), "42/n,[\"e\",1]");
        assert_eq!(ack_with("/", 3, "[{}]", 2), "462-3[{}]");
        assert_eq!(ack_with("/n", 3, "[{}]", 2), "462-/n,3[{}]");
        assert_eq!(disconnect("/"), "41");
        assert_eq!(disconnect("/n"), "41/n,");
        assert_eq!(
            open("abc", true, 25000, 20000, 65536),
            "0{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":65536}"
        );
    }
}
