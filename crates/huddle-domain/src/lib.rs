//! huddle's domain: accounts, workspaces and channels — the rules and the
//! authorization. It holds no SQL (that is `huddle-store`) and knows nothing of
//! HTTP or sockets (those are `huddle-gateway`). Every state change publishes a
//! typed [`DomainEvent`] on the core bus.

mod accounts;
mod admin;
mod channels;
pub mod chat;
pub mod comet;
mod error;
pub mod events;
mod invites;
pub mod model;
mod passwords;
pub mod ratelimit;
pub mod roles;
pub mod tokens;
pub mod validate;
mod views;
mod voice;
mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use huddle_core::Bus;
use huddle_store::Db;

pub use accounts::{ProfileUpdate, SignupInput};
pub use channels::{ChannelSelection, ChannelUpdate, NewChannel};
pub use error::{DomainError, DomainResult};
pub use events::DomainEvent;
pub use model::OnlineStatus;
pub use passwords::{HashBound, HashCost, HashStats};
pub use voice::{MediaInput, SocketAuth, SocketAuthInput};
pub use workspaces::WorkspaceUpdate;

use ratelimit::RateLimiter;

/// Settings the domain needs; the binary fills them from configuration.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// HS256 secret for access tokens.
    pub jwt_secret: Vec<u8>,
    /// Access-token lifetime (default 1 h).
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime (default 31 d).
    pub refresh_token_ttl: Duration,
    /// Workspace invite-code lifetime (default 7 d).
    pub invite_ttl: Duration,
    pub hash_cost: HashCost,
    /// How many password hashes run at once, and how many callers may wait.
    pub hash_bound: HashBound,
    /// Failed sign-ins allowed per (account, client address) within
    /// `signin_account_window` (10 / 15 min): one address cannot lock the
    /// owner out from everywhere.
    pub signin_account_failures: u32,
    /// Failed sign-ins allowed per account from all addresses together within
    /// `signin_account_window` (100 / 15 min): the ceiling a distributed guesser hits.
    pub signin_account_total_failures: u32,
    pub signin_account_window: Duration,
    /// Sign-ups allowed per client address within `signup_ip_window` (10 / 10 min).
    pub signup_ip_attempts: u32,
    pub signup_ip_window: Duration,
    /// REST chat writes (post, edit, delete) per second per user (10), and
    /// their burst (20).
    pub chat_per_sec: u32,
    pub chat_burst: u32,
    /// Authenticated REST writes (any POST, PUT, PATCH or DELETE) per second
    /// per user (20), and their burst (60).
    pub rest_writes_per_sec: u32,
    pub rest_writes_burst: u32,
    /// Failed comet authorisations allowed per client address within
    /// `comet_auth_window` (20 / 1 min); past it a connection is anonymous
    /// without its hash being checked.
    pub comet_auth_ip_failures: u32,
    /// Failed comet authorisations allowed per (dev id, user id) from all
    /// addresses within `comet_auth_window` (1000 / 1 min).
    pub comet_auth_user_failures: u32,
    pub comet_auth_window: Duration,
    /// Sign-in attempts allowed per client address within `signin_ip_window` (60 / 1 min).
    pub signin_ip_attempts: u32,
    pub signin_ip_window: Duration,
    pub realtime: RealtimeConfig,
    pub media: MediaConfig,
    /// Longest chat message, in characters (4000).
    pub chat_content_chars: usize,
    pub comet: comet::CometConfig,
    /// New accounts cannot sign in until an admin activates them (false).
    pub require_activation: bool,
    /// Bearer token of the admin API (`/api/admin/...`); unset disables it.
    pub admin_token: Option<String>,
}

/// Timings and bounds of the real-time features.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// A socket must authenticate within this (10 s).
    pub auth_timeout: Duration,
    /// A disconnected device keeps its place this long (5 s)...
    pub grace_period: Duration,
    /// ...or this long when it was in a call (60 s).
    pub grace_period_in_call: Duration,
    /// An invite needing a response gets `no-response` after this (40 s).
    pub invite_timeout: Duration,
    /// Live connections per user and protocol (16): workspace sockets of
    /// namespace `/` (devices, those in their grace period included) and
    /// community sockets (all community namespaces together) are counted
    /// separately.
    pub max_connections_per_user: usize,
    /// Channel ids one community `join` may name (100); more is refused whole.
    pub max_join_channels: usize,
    /// Pending invites kept in memory (10,000); more are refused.
    pub max_pending_invites: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            auth_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(5),
            grace_period_in_call: Duration::from_secs(60),
            invite_timeout: Duration::from_secs(40),
            max_connections_per_user: 16,
            max_join_channels: 100,
            max_pending_invites: 10_000,
        }
    }
}

/// The media server (Janus) a client connects to after selecting a channel.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    pub janus_server_url: Option<String>,
    pub janus_ws_server_url: Option<String>,
    pub janus_auth_token: Option<String>,
    /// Lifetime of `channelAuthToken` (default 1 h... set by the binary).
    pub channel_token_ttl: Duration,
}

impl DomainConfig {
    /// Defaults of SPEC §1/§7 with the given secret.
    pub fn with_secret(secret: Vec<u8>) -> DomainConfig {
        DomainConfig {
            jwt_secret: secret,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(31 * 24 * 3600),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            hash_cost: HashCost::default(),
            hash_bound: HashBound::default(),
            signin_account_failures: 10,
            signin_account_total_failures: 100,
            signin_account_window: Duration::from_secs(15 * 60),
            signup_ip_attempts: 10,
            signup_ip_window: Duration::from_secs(10 * 60),
            chat_per_sec: 10,
            chat_burst: 20,
            rest_writes_per_sec: 20,
            rest_writes_burst: 60,
            comet_auth_ip_failures: 20,
            comet_auth_user_failures: 1000,
            comet_auth_window: Duration::from_secs(60),
            signin_ip_attempts: 60,
            signin_ip_window: Duration::from_secs(60),
            realtime: RealtimeConfig::default(),
            chat_content_chars: 4000,
            comet: comet::CometConfig::default(),
            require_activation: false,
            admin_token: None,
            media: MediaConfig {
                channel_token_ttl: Duration::from_secs(3600),
                ..Default::default()
            },
        }
    }
}

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
}

/// The domain service: one per process, shared by every front door.
pub struct Domain {
    db: Db,
    bus: Arc<dyn Bus>,
    cfg: DomainConfig,
    pub(crate) keys: tokens::TokenKeys,
    passwords: passwords::Passwords,
    /// Failed sign-ins per `account\naddress`.
    signin_by_account_address: RateLimiter,
    /// Failed sign-ins per account, from every address.
    signin_by_account: RateLimiter,
    signin_by_ip: RateLimiter,
    signup_by_ip: RateLimiter,
    /// REST chat writes per user.
    chat_by_user: ratelimit::KeyedBuckets,
    writes_by_user: ratelimit::KeyedBuckets,
    /// Failed comet authorisations per client address, and per `dev\nuser`.
    comet_auth_by_ip: RateLimiter,
    comet_auth_by_user: RateLimiter,
    presence: Arc<huddle_core::Presence>,
    invites: invites::Invites,
    comet: comet::CometState,
    refusals: Arc<huddle_core::Refusals>,
}

/// Most keys each sign-in limiter tracks (memory bound).
const LIMITER_MAX_KEYS: usize = 100_000;

impl Domain {
    pub fn new(db: Db, bus: Arc<dyn Bus>, cfg: DomainConfig) -> DomainResult<Domain> {
        let refusals: Arc<huddle_core::Refusals> = Arc::default();
        Ok(Domain {
            keys: tokens::TokenKeys::new(&cfg.jwt_secret),
            passwords: passwords::Passwords::new(cfg.hash_cost, cfg.hash_bound, refusals.clone())?,
            signin_by_account_address: RateLimiter::new(
                cfg.signin_account_failures,
                cfg.signin_account_window,
                LIMITER_MAX_KEYS,
            ),
            signin_by_account: RateLimiter::new(
                cfg.signin_account_total_failures,
                cfg.signin_account_window,
                LIMITER_MAX_KEYS,
            ),
            signup_by_ip: RateLimiter::new(
                cfg.signup_ip_attempts,
                cfg.signup_ip_window,
                LIMITER_MAX_KEYS,
            ),
            chat_by_user: ratelimit::KeyedBuckets::new(
                cfg.chat_per_sec,
                cfg.chat_burst,
                LIMITER_MAX_KEYS,
            ),
            writes_by_user: ratelimit::KeyedBuckets::new(
                cfg.rest_writes_per_sec,
                cfg.rest_writes_burst,
                LIMITER_MAX_KEYS,
            ),
            comet_auth_by_ip: RateLimiter::new(
                cfg.comet_auth_ip_failures,
                cfg.comet_auth_window,
                LIMITER_MAX_KEYS,
            ),
            comet_auth_by_user: RateLimiter::new(
                cfg.comet_auth_user_failures,
                cfg.comet_auth_window,
                LIMITER_MAX_KEYS,
            ),
            signin_by_ip: RateLimiter::new(
                cfg.signin_ip_attempts,
                cfg.signin_ip_window,
                LIMITER_MAX_KEYS,
            ),
            presence: Arc::new(huddle_core::Presence::new(
                cfg.realtime.max_connections_per_user,
            )),
            invites: invites::Invites::new(cfg.realtime.max_pending_invites),
            comet: comet::CometState::default(),
            refusals,
            db,
            bus,
            cfg,
        })
    }

    /// Who is connected, from which device, in which call.
    pub fn presence(&self) -> &Arc<huddle_core::Presence> {
        &self.presence
    }

    /// The node's refusal counters, shared by every front door
    /// (`huddle_refused_total{reason}`).
    pub fn refusals(&self) -> &Arc<huddle_core::Refusals> {
        &self.refusals
    }

    /// The gauges of the password-hashing bound (`/metrics`).
    pub fn hash_stats(&self) -> HashStats {
        self.passwords.stats()
    }

    /// A refusal for `reason`, counted: 429 with `Retry-After`.
    pub(crate) fn limited(
        &self,
        reason: huddle_core::Refusal,
        retry_after: Duration,
    ) -> DomainError {
        self.refusals.count(reason);
        DomainError::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        }
    }

    /// Takes one REST chat write (post, edit, delete) from `caller`'s budget
    /// (`limits.chat_per_sec`, burst `limits.chat_burst`); past it, 429.
    /// The socket's `chat` events are bounded by the per-connection event rate
    /// instead.
    pub fn take_rest_chat_write(&self, caller: &Caller) -> DomainResult<()> {
        self.chat_by_user
            .take(&caller.user_id)
            .map_err(|d| self.limited(huddle_core::Refusal::ChatRate, d))
    }

    /// Takes one authenticated REST write from `caller`'s budget
    /// (`limits.rest_writes_per_sec`, burst `limits.rest_writes_burst`); past
    /// it, 429. One user cannot keep the database's writer busy for everyone.
    pub fn take_rest_write(&self, caller: &Caller) -> DomainResult<()> {
        self.writes_by_user
            .take(&caller.user_id)
            .map_err(|d| self.limited(huddle_core::Refusal::RestWrites, d))
    }

    /// The real-time settings.
    pub fn realtime(&self) -> &RealtimeConfig {
        &self.cfg.realtime
    }

    /// The database handle (readiness checks, metrics).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The bus events are published on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Publishes an event, encoded once. A bus failure is logged and counted by
    /// the bus; the state change it reports has already been committed.
    /// It waits for room on the bus first (see [`Bus::room`]), so that a burst of
    /// changes slows its callers down rather than overrunning the delivery.
    async fn emit(&self, event: DomainEvent) {
        self.bus.room().await;
        let publication = event.to_publication();
        if let Err(e) = self.bus.publish(publication) {
            tracing::error!(event = event.name(), error = %e, "event not published");
        }
    }
}

/// Parses a path id as a UUID; anything else is simply not found.
pub(crate) fn parse_id(raw: &str, what: &'static str) -> DomainResult<String> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| DomainError::NotFound(what))
}

/// A fresh random id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
