//! The one place where errors become HTTP responses:
//! `{"error": {"code": "snake_case", "message": "human text"}}` with the right
//! status. Internal errors are logged here, once, and reach the client as a
//! generic message.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use huddle_core::Refusal;
use huddle_domain::DomainError;

/// Marks a response that answered a busy database (503), so that the metrics
/// middleware counts [`Refusal::DatabaseBusy`] once per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatabaseBusy;

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `not_found`, `validation_failed`.
    pub code: &'static str,
    pub message: String,
    /// The offending field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// Everything an HTTP handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    Domain(DomainError),
    /// The body is not the JSON the route expects (syntax, types, missing fields).
    BadRequest(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    RouteNotFound,
    MethodNotAllowed,
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Domain(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::BadRequest(r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::RouteNotFound
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut database_busy = false;
        let (status, code, message, field, retry_after) = match self {
            ApiError::Domain(e) => {
                let status = match &e {
                    DomainError::Validation { .. } => StatusCode::BAD_REQUEST,
                    DomainError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
                    DomainError::NotFound(_) => StatusCode::NOT_FOUND,
                    DomainError::Conflict(_) => StatusCode::CONFLICT,
                    DomainError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                    DomainError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let field = match &e {
                    DomainError::Validation { field, .. } => *field,
                    _ => None,
                };
                let retry = match &e {
                    DomainError::RateLimited { retry_after_secs }
                    | DomainError::Unavailable {
                        retry_after_secs, ..
                    } => Some(*retry_after_secs),
                    _ => None,
                };
                let message = match &e {
                    DomainError::Internal(detail) => {
                        tracing::error!(error = %detail, "internal error");
                        "internal server error".to_owned()
                    }
                    other => other.to_string(),
                };
                if let DomainError::Unavailable {
                    reason: Refusal::DatabaseBusy,
                    ..
                } = &e
                {
                    database_busy = true;
                }
                (status, e.code(), message, field, retry)
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid_body", m, None, None),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is too large".into(),
                None,
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json".into(),
                None,
                None,
            ),
            ApiError::RouteNotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route".into(),
                None,
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".into(),
                None,
                None,
            ),
        };
        let mut response = (
            status,
            axum::Json(ErrorEnvelope {
                error: ErrorBody {
                    code,
                    message,
                    field,
                },
            }),
        )
            .into_response();
        if database_busy {
            // Counted by `metrics::track`, which holds the node's counters.
            response.extensions_mut().insert(DatabaseBusy);
        }
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
