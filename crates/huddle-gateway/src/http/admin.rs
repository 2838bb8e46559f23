//! `/api/admin/*`: operator actions, authorised by `auth.admin_token`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::PathId;
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(activate))
}

/// Activate an account (with `auth.require_activation`); the users socket announces it.
#[utoipa::path(post, path = "/api/admin/users/{id}/activate", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn activate(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    s.domain.activate_account(token, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
