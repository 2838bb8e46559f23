//! `/api/channels/{id}*`. A channel the caller cannot see answers 404 on every route.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::{ChannelForUser, ChannelMember};
use huddle_domain::roles::ChannelRole;
use huddle_domain::ChannelUpdate;

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json, PathId, PathIds};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get, update, delete))
        .routes(routes!(members, add_members, remove_members))
        .routes(routes!(remove_member, set_role))
}

#[derive(Serialize, ToSchema)]
pub struct ChannelMemberList {
    members: Vec<ChannelMember>,
}

#[derive(Deserialize, ToSchema)]
pub struct UserIds {
    users: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ChannelRoleChange {
    role: ChannelRole,
}

/// A channel the caller can see.
#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ChannelForUser), (status = 404, body = ErrorEnvelope)))]
async fn get(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ChannelForUser>> {
    Ok(axum::Json(s.domain.get_channel(&caller, &id).await?))
}

/// Rename or describe; emits `channel-updated` to channel members.
#[utoipa::path(patch, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ChannelUpdate,
    responses((status = 200, body = ChannelForUser), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn update(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<ChannelUpdate>,
) -> ApiResult<axum::Json<ChannelForUser>> {
    Ok(axum::Json(
        s.domain.update_channel(&caller, &id, input).await?,
    ))
}

/// Delete; emits `channel-deleted`.
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    s.domain.delete_channel(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Explicit members and their channel roles.
#[utoipa::path(get, path = "/api/channels/{id}/members", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ChannelMemberList), (status = 404, body = ErrorEnvelope)))]
async fn members(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ChannelMemberList>> {
    Ok(axum::Json(ChannelMemberList {
        members: s.domain.channel_members(&caller, &id).await?,
    }))
}

/// Add workspace members (the channel's manager).
#[utoipa::path(post, path = "/api/channels/{id}/members", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UserIds,
    responses((status = 200, body = ChannelMemberList), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn add_members(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<UserIds>,
) -> ApiResult<axum::Json<ChannelMemberList>> {
    Ok(axum::Json(ChannelMemberList {
        members: s
            .domain
            .add_channel_members(&caller, &id, &input.users)
            .await?,
    }))
}

/// Remove several members (the channel's manager; anyone may remove themself).
#[utoipa::path(delete, path = "/api/channels/{id}/members", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UserIds,
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn remove_members(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<UserIds>,
) -> ApiResult<StatusCode> {
    for user in &input.users {
        s.domain.remove_channel_member(&caller, &id, user).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Remove one member (the channel's manager; anyone may remove themself).
#[utoipa::path(delete, path = "/api/channels/{id}/members/{userId}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path), ("userId" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn remove_member(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, user): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.remove_channel_member(&caller, &id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a member's channel role (the channel's manager).
#[utoipa::path(patch, path = "/api/channels/{id}/members/{userId}", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path), ("userId" = String, Path)), request_body = ChannelRoleChange,
    responses((status = 200, body = ChannelMemberList), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn set_role(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, user): PathIds,
    Json(input): Json<ChannelRoleChange>,
) -> ApiResult<axum::Json<ChannelMemberList>> {
    Ok(axum::Json(ChannelMemberList {
        members: s
            .domain
            .set_channel_role(&caller, &id, &user, input.role)
            .await?,
    }))
}
