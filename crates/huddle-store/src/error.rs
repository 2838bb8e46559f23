//! The store's one error type. Callers match on the variants; the text of
//! `Database` is for logs only and never reaches a client.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (duplicate email, member already present...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The configured database URL is unusable.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// Anything else the database or driver reported.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A part of the store has stopped (the runtime is shutting down).
    #[error("store unavailable: {0}")]
    Unavailable(&'static str),
    /// A stored value could not be decoded (corrupt row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database could not take this write (or hand out a connection) in
    /// time: SQLite busy or locked past its busy timeout, a PostgreSQL
    /// serialization failure or deadlock, or the pool's acquire timeout. The
    /// operation did not happen and may be retried; front doors answer 503
    /// with `Retry-After`, never 500.
    #[error("database busy: {0}")]
    Busy(String),
}

/// Whether a driver error means "busy, try again" rather than a fault:
/// SQLite `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with every extended code
/// (517 `SQLITE_BUSY_SNAPSHOT`, 261 `SQLITE_BUSY_RECOVERY`, 262 ...), and
/// PostgreSQL `40001` serialization failure, `40P01` deadlock, `55P03` lock not
/// available.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if let Ok(n) = code.parse::<i64>() {
        // SQLite: the primary code is the low byte of the extended one.
        return matches!(n & 0xff, 5 | 6);
    }
    matches!(code.as_ref(), "40001" | "40P01" | "55P03")
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            if is_busy(db.as_ref()) {
                return StoreError::Busy(db.message().to_owned());
            }
        }
        if matches!(e, sqlx::Error::PoolTimedOut) {
            return StoreError::Busy("no database connection free in time".into());
        }
        StoreError::Database(e)
    }
}
