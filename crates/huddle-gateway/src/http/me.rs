//! `/api/me*`: the signed-in account.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::Me;
use huddle_domain::ProfileUpdate;

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, patch_me, delete_me))
        .routes(routes!(change_password))
        .routes(routes!(app_settings))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    old_password: String,
    new_password: String,
}

/// The signed-in user with confidential fields.
#[utoipa::path(get, path = "/api/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorEnvelope)))]
async fn get_me(State(s): State<AppState>, Auth(caller): Auth) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(s.domain.me(&caller).await?))
}

/// Update name, avatar or lang; emits `user-updated` and `me-updated`.
#[utoipa::path(patch, path = "/api/me", tag = "me", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = Me), (status = 400, body = ErrorEnvelope)))]
async fn patch_me(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(s.domain.update_me(&caller, update).await?))
}

/// Delete the account. 409 while the caller is the last admin of a shared workspace.
#[utoipa::path(delete, path = "/api/me", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 409, body = ErrorEnvelope)))]
async fn delete_me(State(s): State<AppState>, Auth(caller): Auth) -> ApiResult<StatusCode> {
    s.domain.delete_account(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password; every other session is revoked.
#[utoipa::path(post, path = "/api/me/password", tag = "me", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn change_password(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Json(input): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    s.domain
        .change_password(&caller, input.old_password, input.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the app settings (any JSON object); emits `me-updated {whatWasUpdated:'app-settings'}`.
#[utoipa::path(post, path = "/api/me/app-settings", tag = "me", security(("bearer" = [])), request_body = Object,
    responses((status = 200, body = Me), (status = 400, body = ErrorEnvelope)))]
async fn app_settings(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Json(settings): Json<serde_json::Value>,
) -> ApiResult<axum::Json<Me>> {
    Ok(axum::Json(
        s.domain.set_app_settings(&caller, settings).await?,
    ))
}
