//! Configuration: one typed struct, layered as built-in defaults < file
//! (`huddle.toml`, or `--config FILE`, TOML or the seed-004 JSON shape) <
//! `HUDDLE_*` environment (`HUDDLE_HTTP__LISTEN`...) < command-line flags.
//! Every field's doc states its default. Unknown keys are errors, so a typo
//! fails at start instead of being silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Json, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod limits;
pub use limits::LimitsConfig;

/// A secret value: never printed by `Debug`, masked by [`Config::masked`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    /// Directory for the SQLite database and the generated JWT secret. Default `./data`.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub bus: BusConfig,
    pub realtime: RealtimeConfig,
    pub media: MediaConfig,
    pub comet: CometConfig,
    pub users_socket: UsersSocketConfig,
}

/// The users event socket (seed 004): a websocket listener of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSocketConfig {
    /// Port of the listener on `host`. Default 8080; 0 disables it.
    pub port: u16,
    /// Interface of the listener. Default `127.0.0.1`.
    pub host: String,
    /// A full address that overrides host and port (e.g. `127.0.0.1:0` for an
    /// OS-chosen port). Default empty.
    pub listen: String,
    /// Regular expressions; an upgrade's `Origin` must match one (403 otherwise).
    /// Default: `http(s)://localhost` and `http(s)://127.0.0.1`, any port.
    pub approved_socket_domains: Vec<String>,
    /// Accept upgrades without an `Origin` (non-browser clients). Default false.
    pub allow_missing_origin: bool,
    /// The `users-api-key` header value that unlocks MetaRequest (9). Default unset: refused.
    pub api_key: Option<Secret>,
}

impl Default for UsersSocketConfig {
    fn default() -> Self {
        UsersSocketConfig {
            port: 8080,
            host: "127.0.0.1".into(),
            listen: String::new(),
            approved_socket_domains: vec![
                r"^https?://localhost(:[0-9]+)?$".into(),
                r"^https?://127\.0\.0\.1(:[0-9]+)?$".into(),
            ],
            allow_missing_origin: false,
            api_key: None,
        }
    }
}

impl UsersSocketConfig {
    /// The address to listen on, or `None` when disabled.
    pub fn address(&self) -> Option<String> {
        if !self.listen.is_empty() {
            Some(self.listen.clone())
        } else if self.port == 0 {
            None
        } else {
            Some(format!("{}:{}", self.host, self.port))
        }
    }
}

/// The comet pipes front door (seed 003).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CometConfig {
    /// A second listener for `/ws/...` only (the main port serves it too).
    /// Default `127.0.0.1:8087`; empty disables it.
    pub listen: String,
    /// The server password: backend API credential and, with the dev id, the
    /// clients' JWT secret. Default: generated once into `{data_dir}/comet_password`.
    pub password: Option<Secret>,
    /// Regular expressions an `Origin` must match to connect; empty: any. Default empty.
    pub origins: Vec<String>,
    /// Per dev id, its own list of allowed origins (replacing `origins` for that
    /// tenant), e.g. `[comet.dev_origins] 15 = ["^https://app\\.example$"]`. Default empty.
    pub dev_origins: std::collections::BTreeMap<String, Vec<String>>,
    /// Private messages queued per offline user; past it sends are refused (409). Default 1000.
    pub queue_max: i64,
    /// Live connections per user and dev id. Default 16.
    pub max_connections_per_user: usize,
}

impl Default for CometConfig {
    fn default() -> Self {
        CometConfig {
            listen: "127.0.0.1:8087".into(),
            password: None,
            origins: Vec::new(),
            dev_origins: Default::default(),
            queue_max: 1000,
            max_connections_per_user: 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// A socket must send `auth` within this, or its connection is closed. Default `10s`.
    #[serde(with = "duration")]
    pub auth_timeout: Duration,
    /// A Socket.IO connection must join a namespace within this, or it is
    /// closed (socket.io's `connectTimeout`). Default `45s`.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// A disconnected device keeps its place this long. Default `5s`.
    #[serde(with = "duration")]
    pub grace_period: Duration,
    /// ...or this long when it was in a call. Default `60s` (printed `1m`).
    #[serde(with = "duration")]
    pub grace_period_in_call: Duration,
    /// An invite needing a response gets `no-response` after this. Default `40s`.
    #[serde(with = "duration")]
    pub invite_timeout: Duration,
    /// Engine.IO ping interval. Default `25s`.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// Engine.IO ping timeout. Default `20s`.
    #[serde(with = "duration")]
    pub ping_timeout: Duration,
}

/// The media server (Janus) handed to clients in `connectionOptions` when they
/// select a channel. huddle carries no audio or video itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Janus HTTP URL. Default unset (null in `connectionOptions`).
    pub janus_server_url: Option<String>,
    /// Janus websocket URL. Default unset.
    pub janus_ws_server_url: Option<String>,
    /// A static Janus API token passed through to clients. Default unset.
    pub janus_auth_token: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP server (REST, ops, and later the sockets). Default `127.0.0.1:3000`.
    pub listen: SocketAddr,
    /// Longest a new connection (on any listener) may take to send its first
    /// request's headers before it is closed (Slowloris). Default `10s`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait between requests, until the
    /// next request's headers are complete. Default `60s`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Longest a request body may take to arrive in full, from its headers;
    /// past it the request fails and the connection is closed (slow POST).
    /// Default `30s`.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`. Default `sqlite://{data_dir}/huddle.db`.
    pub url: Option<String>,
    /// Pool size. Default 10.
    pub max_connections: u32,
    /// Group-commit writer tasks for new chats; 0 picks 1 on SQLite, 4 on
    /// PostgreSQL. Default 0.
    pub chat_writers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for access tokens. Default: generated on first start and kept in `{data_dir}/jwt_secret`.
    pub jwt_secret: Option<Secret>,
    /// Access-token lifetime. Default `1h`.
    #[serde(with = "duration")]
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime. Default `31d`.
    #[serde(with = "duration")]
    pub refresh_token_ttl: Duration,
    /// Workspace invite-code lifetime. Default `7d`.
    #[serde(with = "duration")]
    pub invite_ttl: Duration,
    /// argon2id memory per hash in KiB. Default 19456 (19 MiB).
    pub argon2_memory_kib: u32,
    /// argon2id passes. Default 2.
    pub argon2_iterations: u32,
    /// New accounts cannot sign in until activated through the admin API. Default false.
    pub require_activation: bool,
    /// Bearer token of the admin API (`/api/admin/...`, ≥ 16 characters). Default unset: disabled.
    pub admin_token: Option<Secret>,
    /// How often expired sessions are ended (and announced as Logout). Default `60s` (`1m`).
    #[serde(with = "duration")]
    pub session_sweep_interval: Duration,
    /// Password hashes (sign-up, sign-in, password change) running at once;
    /// each holds `argon2_memory_kib`. Default 0: the number of CPUs.
    pub hash_concurrency: usize,
    /// Callers that may wait for a hash slot; past it they get 503 with
    /// `Retry-After`. Default 0: twice `hash_concurrency`.
    pub hash_queue: usize,
    /// Longest a caller waits for a hash slot before 503. Default `2s`.
    #[serde(with = "duration")]
    pub hash_queue_wait: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Publications a subscriber may fall behind before it is told it lagged. Default 4096.
    pub capacity: usize,
    /// Longest a publisher waits for a subscriber more than half `capacity`
    /// behind to catch up before publishing anyway. Default `5s`.
    #[serde(with = "duration")]
    pub publish_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: HttpConfig::default(),
            data_dir: PathBuf::from("./data"),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            bus: BusConfig::default(),
            realtime: RealtimeConfig::default(),
            media: MediaConfig::default(),
            comet: CometConfig::default(),
            users_socket: UsersSocketConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 10,
            chat_writers: 0,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(31 * 86_400),
            invite_ttl: Duration::from_secs(7 * 86_400),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            require_activation: false,
            admin_token: None,
            session_sweep_interval: Duration::from_secs(60),
            hash_concurrency: 0,
            hash_queue: 0,
            hash_queue_wait: Duration::from_secs(2),
        }
    }
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            auth_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(45),
            grace_period: Duration::from_secs(5),
            grace_period_in_call: Duration::from_secs(60),
            invite_timeout: Duration::from_secs(40),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            capacity: 4096,
            publish_wait: Duration::from_secs(5),
        }
    }
}

/// A JSON file of seed 004's shape (`{"websocket": {"port", "approvedSocketDomains"}}`)
/// becomes the `users_socket` section; the file's other keys (the original
/// server's) are not huddle's and are ignored. `None`: not that shape.
fn seed_004_shape(path: &Path) -> Result<Option<serde_json::Value>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|_| ConfigError::MissingFile(path.to_path_buf()))?;
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    let Some(ws) = v.get("websocket") else {
        return Ok(None);
    };
    let mut section = serde_json::Map::new();
    if let Some(port) = ws.get("port") {
        section.insert("port".into(), port.clone());
    }
    if let Some(domains) = ws.get("approvedSocketDomains") {
        section.insert("approved_socket_domains".into(), domains.clone());
    }
    Ok(Some(serde_json::json!({ "users_socket": section })))
}

/// The top-level keys of [`Config`].
const SECTIONS: [&str; 10] = [
    "http",
    "data_dir",
    "database",
    "auth",
    "limits",
    "bus",
    "realtime",
    "media",
    "comet",
    "users_socket",
];

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", describe(.0))]
    Load(Box<figment::Error>),
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

impl Config {
    /// Loads the layered configuration and validates it.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let file = match &o.config_file {
            Some(f) if !f.exists() => return Err(ConfigError::MissingFile(f.clone())),
            Some(f) => Some(f.clone()),
            None => Some(PathBuf::from("huddle.toml")).filter(|p| p.exists()),
        };
        if let Some(f) = file {
            fig = if f.extension().is_some_and(|e| e == "json") {
                match seed_004_shape(&f)? {
                    Some(translated) => fig.merge(Serialized::defaults(translated)),
                    None => fig.merge(Json::file(f)),
                }
            } else {
                fig.merge(Toml::file(f))
            };
        }
        // Only variables under a known section are configuration (a typo inside
        // a section, `HUDDLE_HTTP__LISTN`, is still an error); other `HUDDLE_*`
        // variables (`HUDDLE_TEST_DATABASE_URL`, `HUDDLE_BIN`...) belong to tools.
        fig = fig.merge(Env::prefixed("HUDDLE_").split("__").filter(|k| {
            // figment filters the raw key (`REALTIME__AUTH_TIMEOUT`): before it
            // splits on `__` and before it lower-cases.
            let top = k
                .as_str()
                .split("__")
                .next()
                .unwrap_or("")
                .split('.')
                .next()
                .unwrap_or("");
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(top))
        }));
        if let Some(v) = &o.listen {
            fig = fig.merge(Serialized::default("http.listen", v));
        }
        if let Some(v) = &o.data_dir {
            fig = fig.merge(Serialized::default("data_dir", v));
        }
        if let Some(v) = &o.database_url {
            fig = fig.merge(Serialized::default("database.url", v));
        }
        let config: Config = fig.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration file's TOML text over the defaults, validated, as
    /// [`Config::load`] reads a file (no environment, no overrides): the
    /// loader's entry point for the fuzz targets and for tests.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if let Some(url) = &self.database.url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return invalid("database.url", "must start with sqlite: or postgres://");
            }
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self
            .auth
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.0.len() < 32)
        {
            return invalid("auth.jwt_secret", "must be at least 32 characters");
        }
        if self.auth.access_token_ttl < Duration::from_secs(1) {
            return invalid("auth.access_token_ttl", "must be at least 1s");
        }
        if self.auth.refresh_token_ttl < self.auth.access_token_ttl {
            return invalid(
                "auth.refresh_token_ttl",
                "must not be shorter than auth.access_token_ttl",
            );
        }
        if self.auth.argon2_memory_kib < 8 {
            return invalid("auth.argon2_memory_kib", "must be at least 8");
        }
        if self.auth.argon2_iterations == 0 {
            return invalid("auth.argon2_iterations", "must be at least 1");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.signin_account_failures == 0
            || self.limits.signin_account_total_failures == 0
            || self.limits.signin_ip_attempts == 0
            || self.limits.signup_ip_attempts == 0
        {
            return invalid(
                "limits.signin_*",
                "sign-in and sign-up limits must be at least 1",
            );
        }
        if self.limits.chat_per_sec == 0 || self.limits.chat_burst == 0 {
            return invalid("limits.chat_*", "chat limits must be at least 1");
        }
        if self.limits.rest_writes_per_sec == 0 || self.limits.rest_writes_burst == 0 {
            return invalid("limits.rest_writes_*", "write limits must be at least 1");
        }
        if self.limits.comet_auth_ip_failures == 0 || self.limits.comet_auth_user_failures == 0 {
            return invalid("limits.comet_auth_*", "comet limits must be at least 1");
        }
        if self.limits.max_message_bytes < 1024 {
            return invalid("limits.max_message_bytes", "must be at least 1024");
        }
        if self.limits.max_connections_per_user == 0 {
            return invalid("limits.max_connections_per_user", "must be at least 1");
        }
        if !(1..=500).contains(&self.limits.max_join_channels) {
            return invalid("limits.max_join_channels", "must be between 1 and 500");
        }
        if self.limits.chat_content_chars == 0 {
            return invalid("limits.chat_content_chars", "must be at least 1");
        }
        if self.limits.outbound_queue_bytes == 0 {
            return invalid("limits.outbound_queue_bytes", "must be at least 1");
        }
        if self.limits.connections_per_address == 0
            || self.limits.sessions_per_address == 0
            || self.limits.max_sessions == 0
        {
            return invalid(
                "limits.connections_per_address / sessions_*",
                "must be at least 1",
            );
        }
        if self.http.header_read_timeout.is_zero() || self.http.idle_timeout.is_zero() {
            return invalid(
                "http.header_read_timeout / idle_timeout",
                "must be positive",
            );
        }
        if self.realtime.auth_timeout.is_zero()
            || self.realtime.connect_timeout.is_zero()
            || self.realtime.ping_interval.is_zero()
            || self.realtime.ping_timeout.is_zero()
        {
            return invalid("realtime.*", "timeouts must be positive");
        }
        if !self.comet.listen.is_empty() && self.comet.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "comet.listen",
                "must be an address like 127.0.0.1:8087, or empty to disable",
            );
        }
        if self.comet.password.as_ref().is_some_and(|s| s.0.len() < 8) {
            return invalid("comet.password", "must be at least 8 characters");
        }
        for (i, re) in self
            .comet
            .origins
            .iter()
            .chain(self.comet.dev_origins.values().flatten())
            .enumerate()
        {
            if let Err(e) = regex_lite::Regex::new(re) {
                return Err(ConfigError::Invalid {
                    key: "comet.origins",
                    message: format!("entry {i} ({re:?}) is not a valid regular expression: {e}"),
                });
            }
        }
        if self.comet.queue_max < 1 || self.comet.max_connections_per_user == 0 {
            return invalid(
                "comet.*",
                "queue_max and max_connections_per_user must be at least 1",
            );
        }
        if let Some(addr) = self.users_socket.address() {
            if addr.parse::<SocketAddr>().is_err() {
                return invalid(
                    "users_socket.listen",
                    "users_socket host/port (or listen) must form an address like 127.0.0.1:8080",
                );
            }
        }
        for (i, re) in self.users_socket.approved_socket_domains.iter().enumerate() {
            if let Err(e) = regex_lite::Regex::new(re) {
                return Err(ConfigError::Invalid {
                    key: "users_socket.approved_socket_domains",
                    message: format!("entry {i} ({re:?}) is not a valid regular expression: {e}"),
                });
            }
        }
        if self
            .auth
            .admin_token
            .as_ref()
            .is_some_and(|s| s.0.len() < 16)
        {
            return invalid("auth.admin_token", "must be at least 16 characters");
        }
        if self.auth.session_sweep_interval.is_zero() {
            return invalid("auth.session_sweep_interval", "must be positive");
        }
        if self.bus.capacity == 0 {
            return invalid("bus.capacity", "must be at least 1");
        }
        Ok(())
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("huddle.db").display()))
    }

    /// A copy with every secret replaced by `********` (for `huddle config` and logs).
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        c.auth.jwt_secret = c.auth.jwt_secret.map(|_| Secret("********".into()));
        c.media.janus_auth_token = c.media.janus_auth_token.map(|_| Secret("********".into()));
        c.comet.password = Some(Secret("********".into()));
        c.users_socket.api_key = c.users_socket.api_key.map(|_| Secret("********".into()));
        c.auth.admin_token = c.auth.admin_token.map(|_| Secret("********".into()));
        if let Some(url) = &c.database.url {
            c.database.url = Some(mask_url_password(url));
        }
        c
    }
}

/// Renders figment errors with the key as operators write it (`http.listen`),
/// whichever source (file, environment, flag) it came from.
fn describe(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|one| {
            let key = one
                .path
                .iter()
                .map(|p| p.to_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            let source = one
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_else(|| "configuration".into());
            if key.is_empty() {
                format!("{} (in {source})", one.kind)
            } else {
                format!("invalid value for `{key}`: {} (in {source})", one.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Durations as operators write them: `90s`, `15m`, `1h`, `31d` (anything
/// `humantime` parses is accepted); printed in the largest unit that is exact.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let ms = d.as_millis();
        let text = if !ms.is_multiple_of(1000) {
            format!("{ms}ms")
        } else {
            let secs = d.as_secs();
            match secs {
                0 => "0s".to_owned(),
                s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
                s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
                s if s.is_multiple_of(60) => format!("{}m", s / 60),
                s => format!("{s}s"),
            }
        };
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like 90s, 15m, 1h or 31d ({e})"
            ))
        })
    }
}

/// Masks the password of `scheme://user:password@host/...`.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
        None => url.to_owned(),
    }
}

pub use crate::datadir::{comet_password, jwt_secret};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            mask_url_password("postgres://u:pw@h/db"),
            "postgres://u:********@h/db"
        );
        assert_eq!(mask_url_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_url_password("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn durations_round_trip_in_the_largest_exact_unit() {
        #[derive(Serialize, Deserialize)]
        struct D(#[serde(with = "duration")] Duration);
        for (secs, text) in [
            (31 * 86_400, "31d"),
            (3600, "1h"),
            (900, "15m"),
            (90, "90s"),
            (0, "0s"),
        ] {
            let json = serde_json::to_string(&D(Duration::from_secs(secs))).expect("encode");
            assert_eq!(json, format!("\"{text}\""));
            let back: D = serde_json::from_str(&json).expect("decode");
            assert_eq!(back.0, Duration::from_secs(secs));
        }
        assert!(serde_json::from_str::<D>("\"forever\"").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }
}
