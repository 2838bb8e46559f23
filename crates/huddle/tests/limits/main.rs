//! What one client can cost the server at the transport: the real
//! `Application` on port 0 (SQLite), raw TCP clients bound to chosen loopback
//! addresses (all of 127/8 is loopback on Linux) so that "another client" is
//! another address. Connection caps and timeouts on every listener
//! (`connections`), Engine.IO session caps (`sessions`).

#[path = "../api/common.rs"]
mod common;

mod binary;
mod connections;
mod harness;
mod sessions;
