//! An Engine.IO v4 / Socket.IO v5 server transport, written for memory and
//! fan-out: one task per websocket connection, one bounded outbound queue per
//! connection that holds nothing while idle, and frames encoded once per
//! publication and shared by every receiver (see [`huddle_core::Frame::wire`]).
//!
//! It knows protocols, not business rules: a namespace is served by a
//! [`Handler`] that accepts or refuses clients and handles their events.
//!
//! Supported: websocket and long-polling transports with the websocket
//! upgrade, heartbeats, namespaces (several per connection), acknowledgements
//! of client events, connect errors, binary attachments in both directions
//! (binary events and acks: binary websocket frames after their packet, or
//! `b<base64>` polling packets; placeholders are kept in the JSON and the
//! attachments carried alongside, see [`Event::attachments`]). Not
//! supported: server-to-client acknowledgements, JSONP polling.

mod engine;
mod packet;
mod polling;
mod server;
mod socket;
mod ws;

pub use server::{Config, SioServer};
pub use socket::{Event, Handler, Reason, Socket};

/// Entry points for the fuzz targets in `fuzz/` (not an API). The whole
/// Engine.IO path is fuzzed through [`SioServer::router`]; this is the packet
/// decoder on its own.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a Socket.IO packet (the text after Engine.IO's `4`) as the
    /// engine does; whether it reads.
    pub fn socket_io_packet(text: &str) -> bool {
        crate::packet::parse(text).is_ok()
    }
}
