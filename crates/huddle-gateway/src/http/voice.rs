//! The REST calls that drive the workspace socket (SPEC §3). Each names the
//! caller's device with `?socketId=`: an authenticated socket of the caller.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::{ActiveUser, Selection};
use huddle_domain::{DomainError, MediaInput, OnlineStatus};

use super::error::{ApiError, ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json, PathId};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(select))
        .routes(routes!(unselect))
        .routes(routes!(active_users))
        .routes(routes!(media_state))
        .routes(routes!(online_status))
        .routes(routes!(mute_for_all))
        .routes(routes!(send_invite))
        .routes(routes!(respond_invite))
        .routes(routes!(cancel_invite))
}

/// `?socketId=`: the caller's authenticated socket (device).
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct SocketQuery {
    socket_id: Option<String>,
}

impl SocketQuery {
    fn id(&self) -> Result<&str, ApiError> {
        self.socket_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                DomainError::invalid("socketId", "socketId query parameter is required").into()
            })
    }
}

/// Query rejections speak the envelope.
pub struct Socket(SocketQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Socket {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<SocketQuery>::from_request_parts(parts, state).await?;
        Ok(Socket(q))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusInput {
    #[schema(value_type = String, example = "idle")]
    online_status: OnlineStatus,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteInput {
    user_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteInput {
    user_id: String,
    channel_id: String,
    /// Must be the channel's workspace.
    workspace_id: String,
    #[serde(default)]
    is_response_needed: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    message: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCreated {
    invite_id: String,
}

#[derive(Deserialize, ToSchema)]
pub struct InviteResponse {
    #[schema(value_type = Object)]
    response: serde_json::Value,
}

/// Join the channel's call from this device; returns the media-server options.
#[utoipa::path(post, path = "/api/channels/{id}/select", tag = "voice", security(("bearer" = [])),
    params(("id" = String, Path), SocketQuery), request_body = MediaInput,
    responses((status = 200, body = Selection), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn select(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Socket(q): Socket,
    Json(media): Json<MediaInput>,
) -> ApiResult<axum::Json<Selection>> {
    Ok(axum::Json(
        s.domain
            .select_channel(&caller, q.id()?, &id, media)
            .await?,
    ))
}

/// Leave the channel's call on this device.
#[utoipa::path(post, path = "/api/channels/{id}/unselect", tag = "voice", security(("bearer" = [])),
    params(("id" = String, Path), SocketQuery), responses((status = 204), (status = 400, body = ErrorEnvelope)))]
async fn unselect(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Socket(q): Socket,
) -> ApiResult<StatusCode> {
    s.domain.unselect_channel(&caller, q.id()?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Devices in the channel's call, with their media state.
#[utoipa::path(get, path = "/api/channels/{id}/active-users", tag = "voice", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Vec<ActiveUser>), (status = 404, body = ErrorEnvelope)))]
async fn active_users(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Vec<ActiveUser>>> {
    Ok(axum::Json(s.domain.active_users(&caller, &id).await?))
}

/// Update this device's microphone/camera/screen/speaking state.
#[utoipa::path(post, path = "/api/me/media-state", tag = "voice", security(("bearer" = [])),
    params(SocketQuery), request_body = MediaInput, responses((status = 204), (status = 400, body = ErrorEnvelope)))]
async fn media_state(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Socket(q): Socket,
    Json(media): Json<MediaInput>,
) -> ApiResult<StatusCode> {
    s.domain.update_media_state(&caller, q.id()?, media).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set this device's online status by hand.
#[utoipa::path(post, path = "/api/me/online-status", tag = "voice", security(("bearer" = [])),
    params(SocketQuery), request_body = StatusInput, responses((status = 204), (status = 400, body = ErrorEnvelope)))]
async fn online_status(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Socket(q): Socket,
    Json(input): Json<StatusInput>,
) -> ApiResult<StatusCode> {
    s.domain
        .set_online_status(&caller, q.id()?, input.online_status)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask a participant of the caller's call to mute.
#[utoipa::path(post, path = "/api/mute-for-all", tag = "voice", security(("bearer" = [])),
    params(SocketQuery), request_body = MuteInput, responses((status = 204), (status = 400, body = ErrorEnvelope)))]
async fn mute_for_all(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Socket(q): Socket,
    Json(input): Json<MuteInput>,
) -> ApiResult<StatusCode> {
    s.domain
        .mute_for_all(&caller, q.id()?, &input.user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite a workspace member into a channel's call.
#[utoipa::path(post, path = "/api/invites", tag = "voice", security(("bearer" = [])),
    params(SocketQuery), request_body = InviteInput, responses((status = 200, body = InviteCreated), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn send_invite(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Socket(q): Socket,
    Json(input): Json<InviteInput>,
) -> ApiResult<axum::Json<InviteCreated>> {
    s.domain.require_device(&caller, q.id()?)?;
    let channel = s.domain.get_channel(&caller, &input.channel_id).await?;
    if channel.channel.workspace_id != input.workspace_id {
        return Err(
            DomainError::invalid("workspaceId", "the channel is not in this workspace").into(),
        );
    }
    let invite_id = s
        .domain
        .send_invite(
            &caller,
            &input.user_id,
            &input.channel_id,
            input.is_response_needed,
            input.message,
        )
        .await?;
    Ok(axum::Json(InviteCreated { invite_id }))
}

/// Answer an invite addressed to you.
#[utoipa::path(post, path = "/api/invites/{id}/response", tag = "voice", security(("bearer" = [])),
    params(("id" = String, Path), SocketQuery), request_body = InviteResponse, responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn respond_invite(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Socket(q): Socket,
    Json(input): Json<InviteResponse>,
) -> ApiResult<StatusCode> {
    s.domain.require_device(&caller, q.id()?)?;
    s.domain
        .respond_invite(&caller, &id, input.response)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Withdraw an invite you sent.
#[utoipa::path(post, path = "/api/invites/{id}/cancel", tag = "voice", security(("bearer" = [])),
    params(("id" = String, Path), SocketQuery), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn cancel_invite(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Socket(q): Socket,
) -> ApiResult<StatusCode> {
    s.domain.require_device(&caller, q.id()?)?;
    s.domain.cancel_invite(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
