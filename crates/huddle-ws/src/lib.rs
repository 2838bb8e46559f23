//! A server websocket (RFC 6455) for many idle connections and shared frames.
//!
//! It does the opening handshake, the framing (pings answered, closes echoed,
//! protocol errors closed with their RFC code) and the writing of shared
//! messages, and leaves the connection's life to the caller: each front door
//! (Engine.IO, comet, the users socket) drives a [`WebSocket`] from a future
//! of its own, so an idle connection costs its fields and nothing else: no
//! buffer is held while idle and nothing is copied per receiver.

mod frame;
mod websocket;

pub use frame::{CLOSE_INVALID_DATA, CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_TOO_BIG};
pub use websocket::{
    handshake, ConnectionSlot, End, Flow, Msg, OnUpgrade, Payload, Stream, Upgraded, WebSocket,
};
