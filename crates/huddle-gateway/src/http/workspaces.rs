//! `/api/workspaces*` and `/api/join/{code}`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::model::{ChannelForUser, Invite, Member, WorkspaceForUser, WorkspaceState};
use huddle_domain::roles::WorkspaceRole;
use huddle_domain::{NewChannel, WorkspaceUpdate};

use super::error::{ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json, PathId, PathIds};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(state, update, delete))
        .routes(routes!(create_invite))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members))
        .routes(routes!(kick, set_role))
        .routes(routes!(list_channels, create_channel))
}

#[derive(Deserialize, ToSchema)]
pub struct NewWorkspace {
    name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    role: WorkspaceRole,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceList {
    workspaces: Vec<WorkspaceForUser>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    members: Vec<Member>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelList {
    channels: Vec<ChannelForUser>,
}

/// The caller's workspaces.
#[utoipa::path(get, path = "/api/workspaces", tag = "workspaces", security(("bearer" = [])),
    responses((status = 200, body = WorkspaceList)))]
async fn list(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> ApiResult<axum::Json<WorkspaceList>> {
    Ok(axum::Json(WorkspaceList {
        workspaces: s.domain.my_workspaces(&caller).await?,
    }))
}

/// Create a workspace; the caller becomes its admin.
#[utoipa::path(post, path = "/api/workspaces", tag = "workspaces", security(("bearer" = [])), request_body = NewWorkspace,
    responses((status = 201, body = WorkspaceForUser), (status = 400, body = ErrorEnvelope)))]
async fn create(
    State(s): State<AppState>,
    Auth(caller): Auth,
    Json(input): Json<NewWorkspace>,
) -> ApiResult<(StatusCode, axum::Json<WorkspaceForUser>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.domain.create_workspace(&caller, &input.name).await?),
    ))
}

/// Full state: the workspace, the channels visible to the caller, the members.
#[utoipa::path(get, path = "/api/workspaces/{id}", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = WorkspaceState), (status = 404, body = ErrorEnvelope)))]
async fn state(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<WorkspaceState>> {
    Ok(axum::Json(s.domain.workspace_state(&caller, &id).await?))
}

/// Rename or re-configure (admin/moderator); emits `workspace-updated`.
#[utoipa::path(patch, path = "/api/workspaces/{id}", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = WorkspaceUpdate,
    responses((status = 200, body = WorkspaceForUser), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn update(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<WorkspaceUpdate>,
) -> ApiResult<axum::Json<WorkspaceForUser>> {
    Ok(axum::Json(
        s.domain.update_workspace(&caller, &id, input).await?,
    ))
}

/// Delete the workspace and everything in it (admin).
#[utoipa::path(delete, path = "/api/workspaces/{id}", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    s.domain.delete_workspace(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an invite code (admin/moderator, or user when `canUsersInvite`).
#[utoipa::path(post, path = "/api/workspaces/{id}/invites", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 201, body = Invite), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn create_invite(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<(StatusCode, axum::Json<Invite>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.domain.create_invite(&caller, &id).await?),
    ))
}

/// Join a workspace with an invite code; emits `user-joined` and `workspace-added`.
#[utoipa::path(post, path = "/api/join/{code}", tag = "workspaces", security(("bearer" = [])),
    params(("code" = String, Path)), responses((status = 200, body = WorkspaceForUser), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn join(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(code): PathId,
) -> ApiResult<axum::Json<WorkspaceForUser>> {
    Ok(axum::Json(s.domain.join(&caller, &code).await?))
}

/// Leave a workspace; emits `user-leaved-workspace`.
#[utoipa::path(post, path = "/api/workspaces/{id}/leave", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn leave(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    s.domain.leave_workspace(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members with role and online status.
#[utoipa::path(get, path = "/api/workspaces/{id}/members", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = MemberList), (status = 404, body = ErrorEnvelope)))]
async fn members(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<MemberList>> {
    Ok(axum::Json(MemberList {
        members: s.domain.workspace_members(&caller, &id).await?,
    }))
}

/// Kick a member; emits `kicked-from-workspace` and `user-leaved-workspace`.
#[utoipa::path(delete, path = "/api/workspaces/{id}/members/{userId}", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path), ("userId" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn kick(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, user): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.kick(&caller, &id, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a member's role (admin).
#[utoipa::path(patch, path = "/api/workspaces/{id}/members/{userId}", tag = "workspaces", security(("bearer" = [])),
    params(("id" = String, Path), ("userId" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = Member), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn set_role(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, user): PathIds,
    Json(input): Json<RoleChange>,
) -> ApiResult<axum::Json<Member>> {
    Ok(axum::Json(
        s.domain
            .set_member_role(&caller, &id, &user, input.role)
            .await?,
    ))
}

/// Channels of the workspace visible to the caller.
#[utoipa::path(get, path = "/api/workspaces/{id}/channels", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ChannelList), (status = 404, body = ErrorEnvelope)))]
async fn list_channels(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<ChannelList>> {
    Ok(axum::Json(ChannelList {
        channels: s.domain.list_channels(&caller, &id).await?,
    }))
}

/// Create a channel (not guests); emits `channel-created` to those who can see it.
#[utoipa::path(post, path = "/api/workspaces/{id}/channels", tag = "channels", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NewChannel,
    responses((status = 201, body = ChannelForUser), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn create_channel(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<NewChannel>,
) -> ApiResult<(StatusCode, axum::Json<ChannelForUser>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.domain.create_channel(&caller, &id, input).await?),
    ))
}
