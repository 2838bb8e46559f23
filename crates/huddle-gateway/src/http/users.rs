//! `/api/users/{id}`: public profiles.

use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::User;

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::{Auth, PathId};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_user))
}

/// A user's public profile; 404 unless the caller shares a workspace with them.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 404, body = ErrorEnvelope)))]
async fn get_user(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(s.domain.user_profile(&caller, &id).await?))
}
