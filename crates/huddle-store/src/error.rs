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
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
        }
        StoreError::Database(e)
    }
}
