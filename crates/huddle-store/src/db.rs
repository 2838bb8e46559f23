//! Connecting, configuring and migrating the database.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::chat_writer::ChatWriter;
use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which SQL engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Begins a transaction that is going to write.
///
/// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken first, waiting
/// its turn behind other writers for up to the busy timeout. A deferred
/// transaction that reads and then writes cannot wait: when another writer
/// commits between its read and its write, SQLite fails it at once with
/// `SQLITE_BUSY_SNAPSHOT` (517), which no busy timeout cures. Past the busy
/// timeout the error is [`StoreError::Busy`] (a 503), never a fault.
/// PostgreSQL takes row locks as it goes and needs nothing of the kind.
pub(crate) async fn begin_write(
    pool: &AnyPool,
    engine: Engine,
) -> Result<Transaction<'static, Any>, StoreError> {
    Ok(match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => pool.begin().await?,
    })
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Group-commit writer tasks for new chats (0: 1 on SQLite, which has one
    /// writer at a time anyway, 4 on PostgreSQL). A channel always uses the same one.
    pub chat_writers: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            chat_writers: 0,
        }
    }
}

/// A handle to the database; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) pool: AnyPool,
    engine: Engine,
    pub(crate) chats: ChatWriter,
}

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://...`) and starts the
    /// chat writer tasks (so it must run inside a Tokio runtime). A SQLite file is
    /// created if missing and switched to WAL; foreign keys are enforced on both.
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(StoreError::InvalidUrl(
                "database.url must start with sqlite: or postgres://".into(),
            ));
        };
        let url = match engine {
            Engine::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let connect: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::InvalidUrl(e.to_string()))?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout);
        if engine == Engine::Sqlite {
            // Per-connection pragmas: sqlx already enables foreign keys and a 5 s
            // busy timeout; NORMAL sync is durable under WAL except on power loss.
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(connect).await?;
        if engine == Engine::Sqlite {
            // journal_mode is a property of the file; setting it once persists it.
            pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        let lanes = match (opts.chat_writers, engine) {
            (0, Engine::Sqlite) => 1,
            (0, Engine::Postgres) => 4,
            (n, _) => n,
        };
        let chats = ChatWriter::start(&pool, engine, lanes);
        Ok(Db {
            pool,
            engine,
            chats,
        })
    }

    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Begins a transaction that is going to write (see [`begin_write`]).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        begin_write(&self.pool, self.engine).await
    }

    /// Applies every pending migration of this engine. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Round-trips a trivial query: the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Pool gauges for metrics: (open connections, idle connections, max).
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        (
            self.pool.size(),
            self.pool.num_idle() as u32,
            self.pool.options().get_max_connections(),
        )
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs a raw statement. For tests and tooling (schema set-up), not for
    /// request paths.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        self.pool.execute(sql).await?;
        Ok(())
    }
}
