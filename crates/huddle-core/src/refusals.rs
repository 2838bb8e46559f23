//! Every bound a client can run into, counted by reason: one table, so an
//! operator reads in `/metrics` (`huddle_refused_total{reason="..."}`) which
//! limit refused what, and a test can assert that a flood was refused for the
//! reason it expects.
//!
//! Guarantees: counting is one relaxed atomic add (no lock, no allocation),
//! safe on any hot path; every reason is exported, at 0 until it happens, so
//! dashboards and alerts can name a reason before it first fires.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! refusals {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Why a client was refused, disconnected or slowed down by a limit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Refusal {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Refusal {
            /// Every reason, in the order they are exported.
            pub const ALL: &'static [Refusal] = &[$(Refusal::$variant,)*];

            /// The `reason` label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Refusal::$variant => $name,)*
                }
            }
        }
    };
}

refusals! {
    /// A TCP connection past the per-address cap (all listeners together).
    ConnectionsPerAddress => "connections_per_address",
    /// A TCP connection past the node's total cap (all listeners together).
    ConnectionsTotal => "connections_total",
    /// A request whose headers did not arrive within the header-read timeout.
    HeaderTimeout => "header_timeout",
    /// A keep-alive connection idle past its timeout.
    IdleTimeout => "idle_timeout",
    /// A request body not complete within the body-read timeout (slow POST).
    BodyTimeout => "body_timeout",
    /// An Engine.IO session past the per-address cap.
    SessionsPerAddress => "sessions_per_address",
    /// An Engine.IO session past the server's total cap.
    SessionsTotal => "sessions_total",
    /// A Socket.IO connection that joined no namespace within the connect timeout.
    ConnectTimeout => "connect_timeout",
    /// A workspace socket that did not authenticate within the auth timeout.
    AuthTimeout => "auth_timeout",
    /// A packet that breaks the protocol (the connection is closed).
    ProtocolError => "protocol_error",
    /// A socket event (or CONNECT) past the per-connection rate.
    SocketEvents => "socket_events",
    /// Handlers of one connection already running at their bound.
    HandlersInFlight => "handlers_in_flight",
    /// A community `join` naming more channels than allowed.
    JoinTooLarge => "join_too_large",
    /// A socket past `limits.max_connections_per_user`.
    ConnectionsPerUser => "connections_per_user",
    /// A password hash refused because the hashing pool and its queue were full.
    HashBusy => "hash_busy",
    /// A sign-up past the per-address rate.
    SignupRate => "signup_rate",
    /// A sign-in past the per-address rate.
    SigninRate => "signin_rate",
    /// A sign-in to an account locked by failures (for this address).
    SigninLocked => "signin_locked",
    /// A REST chat write past the per-user rate.
    ChatRate => "chat_rate",
    /// A REST write (POST, PUT, PATCH, DELETE) past the per-user rate.
    RestWrites => "rest_writes",
    /// A comet connection whose session hash guesses exceeded the rate.
    CometAuthRate => "comet_auth_rate",
    /// A write that could not get the database in time (503).
    DatabaseBusy => "database_busy",
}

/// The counters, one per [`Refusal`]. Shared by every front door of a node.
#[derive(Debug)]
pub struct Refusals {
    counts: Vec<AtomicU64>,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals {
            counts: Refusal::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, reason: Refusal) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many times `reason` was counted.
    pub fn get(&self, reason: Refusal) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }

    /// Prometheus text: `huddle_refused_total{reason="..."}` for every reason.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP huddle_refused_total Clients refused, disconnected or slowed by a limit, by reason.\n# TYPE huddle_refused_total counter\n");
        for r in Refusal::ALL {
            let _ = writeln!(
                out,
                "huddle_refused_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.get(*r)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_exports_every_reason() {
        let r = Refusals::default();
        r.count(Refusal::HashBusy);
        r.count(Refusal::HashBusy);
        r.count(Refusal::SignupRate);
        assert_eq!(r.get(Refusal::HashBusy), 2);
        assert_eq!(r.get(Refusal::SignupRate), 1);
        assert_eq!(r.get(Refusal::ChatRate), 0);
        let mut text = String::new();
        r.render(&mut text);
        assert!(text.contains("huddle_refused_total{reason=\"hash_busy\"} 2\n"));
        assert!(text.contains("huddle_refused_total{reason=\"chat_rate\"} 0\n"));
        assert_eq!(
            text.matches("huddle_refused_total{").count(),
            Refusal::ALL.len()
        );
    }
}
