//! `DomainError`: the shared vocabulary of failures. Every front door maps it to
//! its wire in one place; the `Internal` text is for logs, never for clients.

use huddle_store::StoreError;

/// Why a domain operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed; `field` names the offending field when there is one.
    #[error("{message}")]
    Validation {
        field: Option<&'static str>,
        message: String,
    },
    /// No credentials, or credentials that are invalid, expired or revoked.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, visible, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Does not exist, or exists but is not visible to the caller (so ids leak nothing).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with the current state (duplicate, last admin...).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The server cannot take this now (password hashing at its bound, the
    /// database busy); nothing happened, retry after this many seconds (503).
    /// `reason` says which bound; the domain has already counted it in
    /// [`huddle_core::Refusals`] unless it is `DatabaseBusy`, which the store
    /// decides and the front door answering it counts.
    #[error("the server is busy, retry in {retry_after_secs} s")]
    Unavailable {
        retry_after_secs: u64,
        reason: huddle_core::Refusal,
    },
    /// A fault on our side (database down, bug). Logged; clients see a generic text.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// A validation error on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> DomainError {
        DomainError::Validation {
            field: Some(field),
            message: message.into(),
        }
    }

    /// A short, stable, snake_case code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Validation { .. } => "validation_failed",
            DomainError::Unauthorized(_) => "unauthorized",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::NotFound(_) => "not_found",
            DomainError::Conflict(_) => "conflict",
            DomainError::RateLimited { .. } => "rate_limited",
            DomainError::Unavailable { .. } => "unavailable",
            DomainError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => DomainError::Conflict("already exists".into()),
            StoreError::Busy(detail) => {
                tracing::warn!(error = %detail, "database busy; answered retry later");
                DomainError::Unavailable {
                    retry_after_secs: 1,
                    reason: huddle_core::Refusal::DatabaseBusy,
                }
            }
            other => DomainError::Internal(other.to_string()),
        }
    }
}

/// Result alias for domain operations.
pub type DomainResult<T> = Result<T, DomainError>;
