//! `Application`: everything `main` and the tests start, built from a
//! [`Config`]. The caller decides when it stops by passing a shutdown future,
//! so tests bind port 0 and stop servers deterministically.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use huddle_core::{Bus, InProcessBus};
use huddle_domain::{Domain, DomainConfig, HashBound, HashCost, MediaConfig, RealtimeConfig};
use huddle_gateway::comet::{CometGateway, CometSettings};
use huddle_gateway::http::{self, AppState, HttpLimits, MetricsSource};
use huddle_gateway::socketio::{Realtime, SocketIoSettings};
use huddle_gateway::users_ws::{UsersSocket, UsersSocketSettings};
use huddle_store::{Db, DbOptions};

use crate::config::{self, Config};
use crate::serve::{self, Connections, Listener, ServeSettings};

/// How long shutdown waits for in-flight requests after clients were told.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Pending connections the kernel queues before `accept` (tokio's default, 128,
/// overflows under connection bursts and makes clients retry after a second).
const LISTEN_BACKLOG: u32 = 1024;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] huddle_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data directory: {0}")]
    DataDir(std::io::Error),
    #[error("{0}")]
    Domain(#[from] huddle_domain::DomainError),
}

/// A built, bound, not-yet-serving huddle.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    limits: HttpLimits,
    bus: Arc<InProcessBus>,
    realtime: Arc<Realtime>,
    comet: Arc<CometGateway>,
    /// The second, `/ws`-only listener of `comet.listen`, when enabled.
    comet_listener: Option<TcpListener>,
    users_socket: Arc<UsersSocket>,
    users_listener: Option<TcpListener>,
    session_sweep: std::time::Duration,
    /// Open connections of every listener, under their caps.
    connections: Arc<Connections>,
}

/// Connects to the database (creating the SQLite directory), runs migrations.
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        crate::datadir::ensure_private_dir(&config.data_dir).map_err(StartupError::DataDir)?;
        crate::datadir::prepare_sqlite(&url).map_err(StartupError::DataDir)?;
    }
    let db = Db::connect(
        &url,
        &DbOptions {
            max_connections: config.database.max_connections,
            chat_writers: config.database.chat_writers,
            ..Default::default()
        },
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

/// The domain settings that the configuration determines.
pub fn domain_config(config: &Config) -> Result<DomainConfig, StartupError> {
    let mut d =
        DomainConfig::with_secret(config::jwt_secret(config).map_err(StartupError::DataDir)?);
    d.access_token_ttl = config.auth.access_token_ttl;
    d.refresh_token_ttl = config.auth.refresh_token_ttl;
    d.invite_ttl = config.auth.invite_ttl;
    d.hash_cost = HashCost {
        memory_kib: config.auth.argon2_memory_kib,
        iterations: config.auth.argon2_iterations,
    };
    d.hash_bound = hash_bound(config);
    d.signin_account_failures = config.limits.signin_account_failures;
    d.signin_account_total_failures = config.limits.signin_account_total_failures;
    d.signin_account_window = config.limits.signin_account_window;
    d.signin_ip_attempts = config.limits.signin_ip_attempts;
    d.signin_ip_window = config.limits.signin_ip_window;
    d.signup_ip_attempts = config.limits.signup_ip_attempts;
    d.signup_ip_window = config.limits.signup_ip_window;
    d.chat_per_sec = config.limits.chat_per_sec;
    d.chat_burst = config.limits.chat_burst;
    d.rest_writes_per_sec = config.limits.rest_writes_per_sec;
    d.rest_writes_burst = config.limits.rest_writes_burst;
    d.comet_auth_ip_failures = config.limits.comet_auth_ip_failures;
    d.comet_auth_user_failures = config.limits.comet_auth_user_failures;
    d.comet_auth_window = config.limits.comet_auth_window;
    d.realtime = RealtimeConfig {
        auth_timeout: config.realtime.auth_timeout,
        grace_period: config.realtime.grace_period,
        grace_period_in_call: config.realtime.grace_period_in_call,
        invite_timeout: config.realtime.invite_timeout,
        max_connections_per_user: config.limits.max_connections_per_user,
        max_join_channels: config.limits.max_join_channels,
        ..RealtimeConfig::default()
    };
    d.chat_content_chars = config.limits.chat_content_chars;
    d.require_activation = config.auth.require_activation;
    d.admin_token = config.auth.admin_token.as_ref().map(|t| t.0.clone());
    d.comet = huddle_domain::comet::CometConfig {
        password: config::comet_password(config).map_err(StartupError::DataDir)?,
        max_connections_per_user: config.comet.max_connections_per_user,
        queue_max: config.comet.queue_max,
    };
    d.media = MediaConfig {
        janus_server_url: config.media.janus_server_url.clone(),
        janus_ws_server_url: config.media.janus_ws_server_url.clone(),
        janus_auth_token: config.media.janus_auth_token.as_ref().map(|s| s.0.clone()),
        channel_token_ttl: config.auth.access_token_ttl,
    };
    Ok(d)
}

/// `auth.hash_*`, with 0 meaning "the number of CPUs" (concurrency) and
/// "twice the concurrency" (queue).
fn hash_bound(config: &Config) -> HashBound {
    let defaults = HashBound::default();
    let concurrency = match config.auth.hash_concurrency {
        0 => defaults.concurrency,
        n => n,
    };
    HashBound {
        concurrency,
        queue: match config.auth.hash_queue {
            0 => 2 * concurrency,
            n => n,
        },
        max_wait: config.auth.hash_queue_wait,
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

struct BusMetrics(Arc<InProcessBus>);

impl MetricsSource for BusMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP huddle_bus_published_total Publications accepted by the bus.\n# TYPE huddle_bus_published_total counter\n");
        let _ = writeln!(out, "huddle_bus_published_total {}", self.0.published());
        out.push_str("# HELP huddle_bus_lost_total Publications lost by lagging bus subscribers.\n# TYPE huddle_bus_lost_total counter\n");
        let _ = writeln!(out, "huddle_bus_lost_total {}", self.0.lost());
        out.push_str("# HELP huddle_bus_publish_waits_total Publishers that waited for a lagging bus subscriber.\n# TYPE huddle_bus_publish_waits_total counter\n");
        let _ = writeln!(out, "huddle_bus_publish_waits_total {}", self.0.waits());
        out.push_str("# HELP huddle_bus_publish_overruns_total Publishers that waited the whole bus.publish_wait and published anyway.\n# TYPE huddle_bus_publish_overruns_total counter\n");
        let _ = writeln!(
            out,
            "huddle_bus_publish_overruns_total {}",
            self.0.overruns()
        );
    }
}

/// Ends expired sessions periodically (each announced as a Logout).
fn spawn_session_sweeper(
    domain: Arc<Domain>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = domain.expire_sessions().await {
                tracing::error!(error = %e, "session expiry failed");
            }
        }
    })
}

struct RefusalMetrics(Arc<huddle_core::Refusals>);

impl MetricsSource for RefusalMetrics {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

struct UsersSocketMetrics(Arc<UsersSocket>);

impl MetricsSource for UsersSocketMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP huddle_users_socket_connections Live users-socket connections.\n# TYPE huddle_users_socket_connections gauge\n");
        let _ = writeln!(
            out,
            "huddle_users_socket_connections {}",
            self.0.connections()
        );
        out.push_str("# HELP huddle_users_socket_refused_total Upgrades refused for their Origin.\n# TYPE huddle_users_socket_refused_total counter\n");
        let _ = writeln!(
            out,
            "huddle_users_socket_refused_total {}",
            self.0.refused()
        );
    }
}

struct CometMetrics(Arc<CometGateway>);

impl MetricsSource for CometMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP huddle_comet_connections Live comet websocket connections.\n# TYPE huddle_comet_connections gauge\n");
        let _ = writeln!(out, "huddle_comet_connections {}", self.0.connections());
    }
}

struct RealtimeMetrics(Arc<Realtime>);

impl MetricsSource for RealtimeMetrics {
    fn render(&self, out: &mut String) {
        self.0.render_metrics(out);
    }
}

impl Application {
    /// Opens storage, builds the services and binds the HTTP listener.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let db = open_database(&config).await?;
        let bus = Arc::new(InProcessBus::with_max_wait(
            config.bus.capacity,
            config.bus.publish_wait,
        ));
        let domain = Arc::new(Domain::new(
            db,
            bus.clone() as Arc<dyn Bus>,
            domain_config(&config)?,
        )?);
        let realtime = Realtime::new(
            domain.clone(),
            SocketIoSettings {
                max_payload: config.limits.max_message_bytes,
                outbound_queue_bytes: config.limits.outbound_queue_bytes,
                ping_interval: config.realtime.ping_interval,
                ping_timeout: config.realtime.ping_timeout,
                rate_per_sec: config.limits.socket_events_per_sec,
                rate_burst: config.limits.socket_events_burst,
                connect_timeout: config.realtime.connect_timeout,
                sessions_per_address: config.limits.sessions_per_address,
                max_sessions: config.limits.max_sessions,
            },
        );
        let listener = bind(config.http.listen).map_err(|source| StartupError::Bind {
            addr: config.http.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.http.listen,
            source,
        })?;
        domain.comet_load_settings().await?;
        let origins = config
            .comet
            .origins
            .iter()
            .filter_map(|re| regex_lite::Regex::new(re).ok())
            .collect();
        let comet = CometGateway::new(
            domain.clone(),
            realtime.hub().clone(),
            CometSettings {
                max_frame: usize::try_from(config.limits.max_message_bytes).unwrap_or(usize::MAX),
                outbound_queue_bytes: config.limits.outbound_queue_bytes,
                rate_per_sec: config.limits.socket_events_per_sec,
                rate_burst: config.limits.socket_events_burst,
                origins,
                dev_origins: config
                    .comet
                    .dev_origins
                    .iter()
                    .map(|(dev, list)| {
                        (
                            dev.clone(),
                            list.iter()
                                .filter_map(|re| regex_lite::Regex::new(re).ok())
                                .collect(),
                        )
                    })
                    .collect(),
            },
        );
        let comet_listener = match config.comet.listen.as_str() {
            "" => None,
            addr => {
                let addr: SocketAddr = addr.parse().map_err(|_| StartupError::Bind {
                    addr: config.http.listen,
                    source: std::io::Error::other("comet.listen is not an address"),
                })?;
                Some(bind(addr).map_err(|source| StartupError::Bind { addr, source })?)
            }
        };
        let users_socket = UsersSocket::new(
            domain.clone(),
            realtime.hub().clone(),
            UsersSocketSettings {
                approved: config
                    .users_socket
                    .approved_socket_domains
                    .iter()
                    .filter_map(|re| regex_lite::Regex::new(re).ok())
                    .collect(),
                allow_missing_origin: config.users_socket.allow_missing_origin,
                api_key: config.users_socket.api_key.as_ref().map(|k| k.0.clone()),
                max_frame: usize::try_from(config.limits.max_message_bytes).unwrap_or(usize::MAX),
                outbound_queue_bytes: config.limits.outbound_queue_bytes,
                rate_per_sec: config.limits.socket_events_per_sec,
                rate_burst: config.limits.socket_events_burst,
            },
        );
        let users_listener = match config.users_socket.address() {
            None => None,
            Some(addr) => {
                let addr: SocketAddr = addr.parse().map_err(|_| StartupError::Bind {
                    addr: config.http.listen,
                    source: std::io::Error::other("users_socket address is invalid"),
                })?;
                Some(bind(addr).map_err(|source| StartupError::Bind { addr, source })?)
            }
        };
        let refusals = domain.refusals().clone();
        let connections = Connections::new(
            ServeSettings {
                header_read_timeout: config.http.header_read_timeout,
                idle_timeout: config.http.idle_timeout,
                body_read_timeout: config.http.body_read_timeout,
                connections_per_address: config.limits.connections_per_address,
                max_connections: match config.limits.max_connections {
                    0 => serve::default_max_connections(),
                    n => n,
                },
            },
            refusals.clone(),
        );
        let state = AppState {
            domain,
            metrics: Arc::default(),
            extra_metrics: Arc::new(vec![
                Arc::new(BusMetrics(bus.clone())) as Arc<dyn MetricsSource>,
                Arc::new(RealtimeMetrics(realtime.clone())),
                Arc::new(CometMetrics(comet.clone())),
                Arc::new(UsersSocketMetrics(users_socket.clone())),
                Arc::new(RefusalMetrics(refusals)),
                connections.clone(),
            ]),
            comet: Some(comet.clone()),
        };
        Ok(Application {
            listener,
            local_addr,
            state,
            limits: HttpLimits {
                max_body_bytes: config.limits.max_body_bytes,
            },
            bus,
            realtime,
            comet,
            comet_listener,
            users_socket,
            users_listener,
            session_sweep: config.auth.session_sweep_interval,
            connections,
        })
    }

    /// The address of the users socket listener, when enabled.
    pub fn users_socket_addr(&self) -> Option<SocketAddr> {
        self.users_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The address of the `comet.listen` listener, when enabled.
    pub fn comet_addr(&self) -> Option<SocketAddr> {
        self.comet_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The bound address (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The domain service (tests use it to observe events and state).
    pub fn domain(&self) -> Arc<Domain> {
        self.state.domain.clone()
    }

    /// The bus (tests subscribe to it to observe domain events).
    pub fn bus(&self) -> Arc<InProcessBus> {
        self.bus.clone()
    }

    /// Serves until `shutdown` completes: then every socket client is told
    /// (Socket.IO disconnect) so no upgraded connection holds the shutdown open,
    /// in-flight requests finish, and the database is closed (SQLite
    /// checkpoints its WAL).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let db = self.state.domain.db().clone();
        let mut background = self.realtime.spawn_background();
        background.push(self.comet.spawn_delivery());
        background.push(self.users_socket.spawn_delivery());
        background.push(spawn_session_sweeper(
            self.state.domain.clone(),
            self.session_sweep,
        ));
        let (realtime, comet, users) = (
            self.realtime.clone(),
            self.comet.clone(),
            self.users_socket.clone(),
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut drain_deadline = stop_rx.clone();
        let shutdown = async move {
            shutdown.await;
            // Tell every client first: Socket.IO disconnect, websocket close 1001.
            comet.close_all(huddle_core::DisconnectReason::Shutdown);
            users.close_all();
            realtime.close().await;
            let _every_listener_stopping = stop_tx.send(true);
        };
        if let Some(listener) = self.users_listener {
            background.push(tokio::spawn(serve::serve(
                listener,
                Listener::UsersSocket,
                self.users_socket.router(),
                self.connections.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(listener) = self.comet_listener {
            let app = huddle_gateway::comet::ws_router(self.comet.clone());
            background.push(tokio::spawn(serve::serve(
                listener,
                Listener::Comet,
                app,
                self.connections.clone(),
                stop_rx.clone(),
            )));
        }
        let app = http::router(self.state, self.limits, Some(&self.realtime))
            .merge(huddle_gateway::comet::ws_router(self.comet));
        let serve = serve::serve(
            self.listener,
            Listener::Http,
            app,
            self.connections,
            stop_rx,
        );
        // Graceful, but bounded: a long-poll request the transport never answers
        // must not hold the process for a ping interval.
        tokio::select! {
            ((), ()) = async { tokio::join!(shutdown, serve) } => {}
            () = async move {
                let _ = drain_deadline.wait_for(|s| *s).await;
                tokio::time::sleep(SHUTDOWN_DRAIN).await;
            } => {
                tracing::warn!("connections still open after the shutdown drain period; closing them");
            }
        };
        for task in background {
            task.abort();
        }
        db.close().await;
        Ok(())
    }

    /// The Socket.IO front door (tests inspect its hub and presence).
    pub fn realtime(&self) -> Arc<Realtime> {
        self.realtime.clone()
    }
}
