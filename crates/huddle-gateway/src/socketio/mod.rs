//! The Socket.IO front door (socketioxide, on the HTTP server's port).
//!
//! socketioxide stays inside this module, behind the core's small interface:
//! a socket is a [`Connection`](huddle_core::Connection) that the core
//! [`Hub`] delivers already-encoded frames to; topics and fan-out belong to the
//! hub, audiences to [`delivery`], rules to the domain. Replacing the transport
//! touches only this module.
//!
//! Topics a workspace socket subscribes to: `workspace:{ws}`, `public:{ws}`
//! (non-guests: those who see public channels), `member:{ws}:{user}`,
//! `user:{user}`, `session:{sid}`, `channel:{id}` for each channel it can see,
//! and `conversation:{id}` while its device is in a call there.

mod community_ns;
mod conn;
mod delivery;
mod workspace_ns;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;

use huddle_core::{ConnId, Hub, TokenBucket, Topic};
use huddle_domain::roles::WorkspaceRole;
use huddle_domain::Domain;

/// Transport settings of the Socket.IO server.
#[derive(Debug, Clone, Copy)]
pub struct SocketIoSettings {
    /// Largest inbound packet in bytes (64 KiB); larger closes the connection.
    pub max_payload: u64,
    /// Outbound queue per socket, in packets; when full the socket is
    /// disconnected as a slow consumer (counted in `huddle_slow_consumer_disconnects_total`).
    pub outbound_queue: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Inbound events per second per socket (50)...
    pub rate_per_sec: u32,
    /// ...with bursts of this many (100). Past it, events are refused with `socket-api-error`.
    pub rate_burst: u32,
}

/// What an authenticated socket is.
#[derive(Debug, Clone)]
pub(crate) struct SocketCtx {
    pub user_id: String,
    pub workspace_id: String,
    pub role: WorkspaceRole,
}

/// The real-time front door's shared state.
pub struct Realtime {
    pub(crate) domain: Arc<Domain>,
    pub(crate) hub: Arc<Hub>,
    /// Authenticated sockets. Std `Mutex`, never held across `.await`.
    sockets: Mutex<HashMap<ConnId, SocketCtx>>,
    /// Authenticated community-namespace sockets.
    commu: Mutex<HashMap<ConnId, community_ns::CommuCtx>>,
    /// Inbound rate limit per socket (connected, authenticated or not).
    buckets: Mutex<HashMap<ConnId, TokenBucket>>,
    settings: SocketIoSettings,
    inbound: AtomicU64,
    refused: AtomicU64,
    io: SocketIo,
}

pub(crate) fn topic_workspace(ws: &str) -> Topic {
    Topic::new("workspace", ws)
}
pub(crate) fn topic_public(ws: &str) -> Topic {
    Topic::new("public", ws)
}
pub(crate) fn topic_member(ws: &str, user: &str) -> Topic {
    Topic::new("member", format_args!("{ws}:{user}"))
}
pub(crate) fn topic_user(user: &str) -> Topic {
    Topic::new("user", user)
}
pub(crate) fn topic_session(sid: &str) -> Topic {
    Topic::new("session", sid)
}
pub(crate) fn topic_channel(ch: &str) -> Topic {
    Topic::new("channel", ch)
}
pub(crate) fn topic_conversation(ch: &str) -> Topic {
    Topic::new("conversation", ch)
}

impl Realtime {
    /// Builds the Socket.IO layer and registers namespace `/`.
    pub fn new(domain: Arc<Domain>, settings: SocketIoSettings) -> (SocketIoLayer, Arc<Realtime>) {
        let (layer, io) = SocketIo::builder()
            .max_payload(settings.max_payload)
            .ws_max_message_size(usize::try_from(settings.max_payload).unwrap_or(usize::MAX))
            .ws_max_frame_size(usize::try_from(settings.max_payload).unwrap_or(usize::MAX))
            .max_buffer_size(settings.outbound_queue)
            .ping_interval(settings.ping_interval)
            .ping_timeout(settings.ping_timeout)
            .build_layer();
        let rt = Arc::new(Realtime {
            domain,
            hub: Arc::new(Hub::new()),
            sockets: Mutex::default(),
            commu: Mutex::default(),
            buckets: Mutex::default(),
            settings,
            inbound: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            io,
        });
        workspace_ns::register(&rt);
        community_ns::register(&rt);
        (layer, rt)
    }

    /// Counts an inbound event and applies the socket's rate limit.
    pub(crate) fn admit(&self, id: &str) -> bool {
        self.inbound.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let ok = buckets
            .entry(id.into())
            .or_insert_with(|| {
                TokenBucket::new(self.settings.rate_per_sec, self.settings.rate_burst, now)
            })
            .take(now);
        if !ok {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Forgets a closed socket's rate limit.
    pub(crate) fn forget_bucket(&self, id: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub(crate) fn commu(&self, id: &str) -> Option<community_ns::CommuCtx> {
        self.commu
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub(crate) fn set_commu(&self, id: ConnId, ctx: community_ns::CommuCtx) {
        self.commu
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, ctx);
    }

    pub(crate) fn take_commu(&self, id: &str) -> Option<community_ns::CommuCtx> {
        self.commu
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    pub(crate) fn ctx(&self, id: &str) -> Option<SocketCtx> {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub(crate) fn set_ctx(&self, id: ConnId, ctx: SocketCtx) {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, ctx);
    }

    pub(crate) fn take_ctx(&self, id: &str) -> Option<SocketCtx> {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    pub(crate) fn set_role(&self, ws: &str, user: &str, role: WorkspaceRole) {
        for ctx in self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
        {
            if ctx.workspace_id == ws && ctx.user_id == user {
                ctx.role = role;
            }
        }
    }

    /// The hub (tests and metrics).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Number of authenticated sockets.
    pub fn authenticated(&self) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Starts the delivery task (bus → sockets) and the presence sweeper.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let sweeper = {
            let rt = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    if let Err(e) = rt.domain.expire_presence().await {
                        tracing::error!(error = %e, "presence expiry failed");
                    }
                }
            })
        };
        vec![delivery::spawn(self.clone()), sweeper]
    }

    /// Graceful shutdown: every socket gets a Socket.IO disconnect packet
    /// (clients see `io server disconnect`, not a transport error), then, once
    /// they are gone or after two seconds, the transports are closed.
    pub async fn close(&self) {
        for socket in self.io.sockets() {
            let _already_closed = socket.disconnect();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.io.sockets().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.io.close().await;
    }

    /// Prometheus text for the Socket.IO front door.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let stats = self.hub.stats();
        out.push_str("# HELP huddle_connections Live authenticated connections by protocol.\n# TYPE huddle_connections gauge\n");
        let _ = writeln!(
            out,
            "huddle_connections{{protocol=\"socketio\"}} {}",
            self.authenticated()
        );
        out.push_str("# HELP huddle_deliveries_total Frames queued to connections (every protocol: one hub).\n# TYPE huddle_deliveries_total counter\n");
        let _ = writeln!(out, "huddle_deliveries_total {}", stats.deliveries);
        out.push_str("# HELP huddle_slow_consumer_disconnects_total Connections closed because their outbound queue was full.\n# TYPE huddle_slow_consumer_disconnects_total counter\n");
        let _ = writeln!(
            out,
            "huddle_slow_consumer_disconnects_total {}",
            stats.slow_disconnects
        );
        out.push_str("# HELP huddle_presence_devices Devices in the presence registry (including those in their grace period).\n# TYPE huddle_presence_devices gauge\n");
        let _ = writeln!(
            out,
            "huddle_presence_devices {}",
            self.domain.presence().len()
        );
    }
}
