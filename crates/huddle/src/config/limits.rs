//! `[limits]`: what one client may cost the server (README "Limits and
//! abuse"). Each field's doc states its default; validation is in the parent
//! module's `Config::validate`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `limits` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest HTTP request body in bytes; larger is 413. Default 65536 (64 KiB).
    pub max_body_bytes: usize,
    /// Failed sign-ins allowed per (account, client address) per
    /// `signin_account_window`; past it that address is locked out of that
    /// account (429). Default 10.
    pub signin_account_failures: u32,
    /// Failed sign-ins allowed per account from all addresses together per
    /// `signin_account_window`: the ceiling of a distributed guesser, which
    /// locks the account for everyone. Default 100.
    pub signin_account_total_failures: u32,
    /// Default `15m`.
    #[serde(with = "super::duration")]
    pub signin_account_window: Duration,
    /// Sign-in attempts allowed per client address per `signin_ip_window`. Default 60.
    pub signin_ip_attempts: u32,
    /// Default `1m`.
    #[serde(with = "super::duration")]
    pub signin_ip_window: Duration,
    /// Sign-ups allowed per client address per `signup_ip_window` (429 past it). Default 10.
    pub signup_ip_attempts: u32,
    /// Default `10m`.
    #[serde(with = "super::duration")]
    pub signup_ip_window: Duration,
    /// REST chat writes (post, edit, delete) per second per user (429 past
    /// it). Default 10.
    pub chat_per_sec: u32,
    /// Burst of REST chat writes per user. Default 20.
    pub chat_burst: u32,
    /// Authenticated REST writes (POST, PUT, PATCH, DELETE) per second per
    /// user (429 past it). Default 20.
    pub rest_writes_per_sec: u32,
    /// Burst of authenticated REST writes per user. Default 60.
    pub rest_writes_burst: u32,
    /// Failed comet authorisations per client address per
    /// `comet_auth_window`; past it connections from there are anonymous
    /// without their key being checked. Default 20.
    pub comet_auth_ip_failures: u32,
    /// Failed comet authorisations per (dev id, user id) from all addresses
    /// per `comet_auth_window`. Default 1000: high enough that a handful of
    /// addresses cannot make a user's right key go unchecked, low enough
    /// that guessing from many addresses stays hopeless.
    pub comet_auth_user_failures: u32,
    /// Default `1m`.
    #[serde(with = "super::duration")]
    pub comet_auth_window: Duration,
    /// Largest inbound socket message in bytes; larger closes the connection. Default 65536.
    pub max_message_bytes: u64,
    /// Live socket connections per user and protocol: Socket.IO namespace `/`
    /// (workspace sockets) and the community namespaces (all together) are
    /// counted separately; comet has `comet.max_connections_per_user`. Default 16.
    pub max_connections_per_user: usize,
    /// Channel ids one community `join` may name; a larger `join` is refused
    /// whole (at most 500). Default 100.
    pub max_join_channels: usize,
    /// Outbound queue per socket, in bytes of queued messages (as Centrifugo's
    /// `client_queue_max_size`); a full queue disconnects the client as a slow
    /// consumer. Default 1 MiB.
    pub outbound_queue_bytes: usize,
    /// Inbound socket events per second per connection. Default 50.
    pub socket_events_per_sec: u32,
    /// Burst of inbound socket events per connection. Default 100.
    pub socket_events_burst: u32,
    /// Longest chat message in characters. Default 4000.
    pub chat_content_chars: usize,
    /// Open TCP connections per client address (IPv6: per /64), every
    /// listener together; past it a connection is closed at once. Leaves
    /// room for an office behind one NAT. Default 512.
    pub connections_per_address: usize,
    /// Open TCP connections of the node, every listener together. Default 0:
    /// the open-file limit (raised to its hard limit at start) less 256 kept
    /// for the database and files, at least 64.
    pub max_connections: usize,
    /// Engine.IO sessions (websocket or polling) per client address (IPv6:
    /// per /64); past it a handshake is refused with 429. Default 512.
    pub sessions_per_address: usize,
    /// Engine.IO sessions of the node; past it a handshake is refused with
    /// 503. Default 100000.
    pub max_sessions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 * 1024,
            signin_account_failures: 10,
            signin_account_total_failures: 100,
            signin_account_window: Duration::from_secs(15 * 60),
            signin_ip_attempts: 60,
            signin_ip_window: Duration::from_secs(60),
            signup_ip_attempts: 10,
            signup_ip_window: Duration::from_secs(10 * 60),
            chat_per_sec: 10,
            chat_burst: 20,
            rest_writes_per_sec: 20,
            rest_writes_burst: 60,
            comet_auth_ip_failures: 20,
            comet_auth_user_failures: 1000,
            comet_auth_window: Duration::from_secs(60),
            max_message_bytes: 64 * 1024,
            max_connections_per_user: 16,
            max_join_channels: 100,
            outbound_queue_bytes: 1 << 20,
            socket_events_per_sec: 50,
            socket_events_burst: 100,
            chat_content_chars: 4000,
            connections_per_address: 512,
            max_connections: 0,
            sessions_per_address: 512,
            max_sessions: 100_000,
        }
    }
}
