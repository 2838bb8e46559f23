//! A socketioxide socket as a core [`Connection`].

use huddle_core::{ConnId, Connection, DisconnectReason, Frame, QueueFull};
use socketioxide::extract::SocketRef;

/// Wraps a socket; `send` queues into socketioxide's bounded per-socket buffer.
pub(crate) struct SioConn {
    id: ConnId,
    socket: SocketRef,
}

impl SioConn {
    pub fn new(socket: SocketRef) -> SioConn {
        SioConn {
            id: socket.id.to_string().into(),
            socket,
        }
    }
}

impl Connection for SioConn {
    fn id(&self) -> &ConnId {
        &self.id
    }

    fn send(&self, frame: &Frame) -> Result<(), QueueFull> {
        // The payload was encoded once per publication; `RawValue` is written
        // into the packet as it is.
        self.socket
            .emit(&*frame.event, &*frame.payload)
            .map_err(|_| QueueFull)
    }

    fn close(&self, reason: DisconnectReason) {
        tracing::info!(socket = %self.id, reason = reason.as_str(), "closing socket");
        // Already closed is fine: closing is idempotent.
        let _already_closed = self.socket.clone().disconnect();
    }
}
