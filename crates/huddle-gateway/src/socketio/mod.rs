//! The Socket.IO front door (our own Engine.IO/Socket.IO transport,
//! [`huddle_sio`], on the HTTP server's port).
//!
//! A socket is a [`Connection`](huddle_core::Connection) that the core
//! [`Hub`] delivers already-encoded frames to; topics and fan-out belong to the
//! hub, audiences to [`delivery`], rules to the domain, and this module only
//! maps client events to domain calls.
//!
//! Topics a workspace socket subscribes to: `workspace:{ws}`, `public:{ws}`
//! (non-guests: those who see public channels), `member:{ws}:{user}`,
//! `user:{user}`, `session:{sid}`, `channel:{id}` for each channel it can see,
//! and `conversation:{id}` while its device is in a call there.

mod community_ns;
mod delivery;
mod workspace_ns;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use huddle_sio::{Handler, SioServer, Socket};

use huddle_core::{ConnId, Hub, Refusal, Topic};
use huddle_domain::roles::WorkspaceRole;
use huddle_domain::Domain;

/// Transport settings of the Socket.IO server.
#[derive(Debug, Clone, Copy)]
pub struct SocketIoSettings {
    /// Largest inbound packet in bytes (64 KiB); larger closes the connection.
    pub max_payload: u64,
    /// Outbound queue per socket, in bytes; when full the socket is
    /// disconnected as a slow consumer (counted in `huddle_slow_consumer_disconnects_total`).
    pub outbound_queue_bytes: usize,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Inbound events per second per socket (50)...
    pub rate_per_sec: u32,
    /// ...with bursts of this many (100). Past it, events are refused with
    /// `socket-api-error`. The bucket is the Engine.IO session's (every
    /// namespace, CONNECTs included).
    pub rate_burst: u32,
    /// A connection that joins no namespace within this is closed (45 s).
    pub connect_timeout: Duration,
    /// Engine.IO sessions per client address; past it a handshake gets 429.
    pub sessions_per_address: usize,
    /// Engine.IO sessions of the node; past it a handshake gets 503.
    pub max_sessions: usize,
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
    /// Authenticated community-namespace sockets, counted per user.
    commu: community_ns::CommuSockets,
    /// Sockets of namespace `/` not yet authenticated, with their deadline.
    unauthenticated: Mutex<HashMap<ConnId, (Instant, Arc<Socket>)>>,
    sio: SioServer,
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
    /// Builds the Socket.IO server: namespace `/` (workspace events) and
    /// `/socket/{name}` (community chat; only `commu-{id}` names are accepted).
    pub fn new(domain: Arc<Domain>, settings: SocketIoSettings) -> Arc<Realtime> {
        Arc::new_cyclic(|me: &Weak<Realtime>| {
            let root: Arc<dyn Handler> = Arc::new(workspace_ns::WorkspaceNs(me.clone()));
            let community: Arc<dyn Handler> = Arc::new(community_ns::CommunityNs(me.clone()));
            let config = huddle_sio::Config {
                ping_interval: settings.ping_interval,
                ping_timeout: settings.ping_timeout,
                max_payload: usize::try_from(settings.max_payload).unwrap_or(usize::MAX),
                outbound_queue_bytes: settings.outbound_queue_bytes,
                keep_headers: community_ns::HANDSHAKE_HEADERS.to_vec(),
                connect_timeout: settings.connect_timeout,
                events_per_sec: settings.rate_per_sec,
                events_burst: settings.rate_burst,
                sessions_per_address: settings.sessions_per_address,
                max_sessions: settings.max_sessions,
                refusals: domain.refusals().clone(),
                ..huddle_sio::Config::default()
            };
            let sio = SioServer::new(config, move |ns| {
                if ns == "/" {
                    Some(root.clone())
                } else if ns.starts_with("/socket/") {
                    Some(community.clone())
                } else {
                    None
                }
            });
            Realtime {
                domain,
                hub: Arc::new(Hub::new()),
                sockets: Mutex::default(),
                commu: community_ns::CommuSockets::default(),
                unauthenticated: Mutex::default(),
                sio,
            }
        })
    }

    /// The routes of `/socket.io/`, to merge into the HTTP router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        self.sio.router()
    }

    /// Starts the auth timeout of a socket of namespace `/`.
    pub(crate) fn await_auth(&self, socket: Arc<Socket>) {
        let deadline = Instant::now() + self.domain.realtime().auth_timeout;
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(socket.id().clone(), (deadline, socket));
    }

    /// The socket authenticated or left: its auth timeout no longer applies.
    pub(crate) fn auth_settled(&self, id: &str) {
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Closes the connections of sockets whose auth timeout has passed: the
    /// whole connection, so re-sending CONNECT does not buy a new timeout.
    fn expire_unauthenticated(&self) {
        let now = Instant::now();
        let expired: Vec<Arc<Socket>> = {
            let mut pending = self
                .unauthenticated
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let ids: Vec<ConnId> = pending
                .iter()
                .filter(|(_, (deadline, _))| *deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter()
                .filter_map(|id| pending.remove(id).map(|(_, s)| s))
                .collect()
        };
        for s in expired {
            if self.ctx(s.id()).is_none() {
                tracing::info!(socket = %s.id(), reason = "auth_timeout", "closing connection");
                self.domain.refusals().count(Refusal::AuthTimeout);
                s.close_connection();
            }
        }
    }

    /// Applies the connection's rate limit to an inbound event (the Engine.IO
    /// session's bucket, counted as `socket_events` when refused).
    pub(crate) fn admit(&self, socket: &Socket) -> bool {
        socket.admit()
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
                    rt.expire_unauthenticated();
                    if let Err(e) = rt.domain.expire_presence().await {
                        tracing::error!(error = %e, "presence expiry failed");
                    }
                }
            })
        };
        vec![delivery::spawn(self.clone()), sweeper]
    }

    /// Graceful shutdown: every socket gets a Socket.IO disconnect packet
    /// (clients see `io server disconnect`, not a transport error), then the
    /// transports close once that is written (at most two seconds).
    pub async fn close(&self) {
        self.sio.close(Duration::from_secs(2)).await;
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
        let _ = writeln!(
            out,
            "huddle_connections{{protocol=\"socketio_community\"}} {}",
            self.commu.len()
        );
        out.push_str("# HELP huddle_socketio_sessions Live Engine.IO sessions (websocket or polling), authenticated or not.\n# TYPE huddle_socketio_sessions gauge\n");
        let _ = writeln!(out, "huddle_socketio_sessions {}", self.sio.sessions());
        out.push_str("# HELP huddle_deliveries_total Frames queued to connections (every protocol: one hub).\n# TYPE huddle_deliveries_total counter\n");
        let _ = writeln!(out, "huddle_deliveries_total {}", stats.deliveries);
        out.push_str("# HELP huddle_slow_consumer_disconnects_total Connections closed because their outbound queue was full.\n# TYPE huddle_slow_consumer_disconnects_total counter\n");
        let _ = writeln!(
            out,
            "huddle_slow_consumer_disconnects_total {}",
            stats.slow_disconnects + self.sio.slow_consumers()
        );
        out.push_str("# HELP huddle_presence_devices Devices in the presence registry (including those in their grace period).\n# TYPE huddle_presence_devices gauge\n");
        let _ = writeln!(
            out,
            "huddle_presence_devices {}",
            self.domain.presence().len()
        );
    }
}
