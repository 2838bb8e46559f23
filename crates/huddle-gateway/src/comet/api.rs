//! The comet backend API over HTTP JSON (the operations of the original's
//! CometQL tables), under `/api/comet/{devId}`, authenticated with
//! `Authorization: Bearer <comet.password>`. The same domain methods will
//! serve the MySQL-protocol CometQL listener.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::comet::valid_dev_id;
use huddle_domain::DomainError;

use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{Json, PathIds};
use crate::http::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish, history, clear_history))
        .routes(routes!(pipe_info))
        .routes(routes!(set_settings, get_settings, delete_settings))
        .routes(routes!(send_to_user, user_queue, clear_user_queue))
        .routes(routes!(set_auth, get_auth, delete_auth))
        .routes(routes!(set_data, get_data, delete_data))
        .routes(routes!(user_time))
        .routes(routes!(revoke, unrevoke))
}

/// The backend credential: the comet password.
pub struct Backend;

impl FromRequestParts<AppState> for Backend {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if state.domain.comet_check_password(presented) {
            Ok(Backend)
        } else {
            Err(DomainError::Unauthorized(
                "the comet API needs Authorization: Bearer <comet.password>",
            )
            .into())
        }
    }
}

fn dev(raw: &str) -> Result<&str, ApiError> {
    if valid_dev_id(raw) {
        Ok(raw)
    } else {
        Err(DomainError::invalid("devId", "devId is 1..64 of [A-Za-z0-9_-]").into())
    }
}

fn user(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|u| *u > 0)
        .ok_or_else(|| DomainError::invalid("userId", "userId is a positive integer").into())
}

#[derive(Deserialize, ToSchema)]
pub struct Publication {
    event: String,
    #[schema(value_type = Object)]
    message: Value,
}

#[derive(Serialize, ToSchema)]
pub struct Delivered {
    /// Connections on this node that received it.
    delivered: usize,
}

#[derive(Serialize, ToSchema)]
pub struct UserDelivery {
    delivered: usize,
    /// No connection was online: the message waits in the user's queue.
    queued: bool,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    event: String,
    #[schema(value_type = Object)]
    message: Value,
    #[serde(rename = "userId")]
    user_id: i64,
    time: i64,
}

#[derive(Serialize, ToSchema)]
pub struct History {
    messages: Vec<HistoryEntry>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipeInfo {
    name: String,
    users: usize,
    authorized_users: Vec<i64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// History length, 0..99.
    length: i64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Hash {
    hash: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Data {
    #[schema(value_type = Object)]
    data: Value,
}

#[derive(Serialize, ToSchema)]
pub struct Time {
    /// 0: online now; -1: unknown; else unix seconds of the last disconnect.
    time: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct Token {
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Queue {
    messages: Vec<HistoryEntry>,
}

/// Publish to a pipe (to every subscriber of the tenant's pipe).
#[utoipa::path(post, path = "/api/comet/{devId}/pipes/{pipe}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), request_body = Publication,
    responses((status = 200, body = Delivered), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn publish(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
    Json(p): Json<Publication>,
) -> ApiResult<axum::Json<Delivered>> {
    let d = dev(&d)?;
    let delivered = s
        .comet
        .as_ref()
        .map_or(0, |g| g.hub.subscribers(&super::pipe_topic(d, &pipe)).len());
    s.domain
        .comet_publish(d, &pipe, &p.event, p.message, 0, None)
        .await?;
    Ok(axum::Json(Delivered { delivered }))
}

/// A pipe's stored history (when enabled), oldest first.
#[utoipa::path(get, path = "/api/comet/{devId}/pipes/{pipe}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), responses((status = 200, body = History), (status = 401, body = ErrorEnvelope)))]
async fn history(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
) -> ApiResult<axum::Json<History>> {
    let messages = s
        .domain
        .comet_history(dev(&d)?, &pipe)
        .into_iter()
        .map(|m| HistoryEntry {
            event: m.event,
            message: m.data,
            user_id: m.user_id,
            time: m.time,
        })
        .collect();
    Ok(axum::Json(History { messages }))
}

/// Clear a pipe's history.
#[utoipa::path(delete, path = "/api/comet/{devId}/pipes/{pipe}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn clear_history(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.comet_clear_history(dev(&d)?, &pipe);
    Ok(StatusCode::NO_CONTENT)
}

/// Subscriber count and authorised subscribers of a pipe (this node).
#[utoipa::path(get, path = "/api/comet/{devId}/pipes/{pipe}", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), responses((status = 200, body = PipeInfo), (status = 401, body = ErrorEnvelope)))]
async fn pipe_info(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
) -> ApiResult<axum::Json<PipeInfo>> {
    let d = dev(&d)?;
    let (users, authorized_users) = match &s.comet {
        Some(g) => {
            let mut ids: Vec<i64> = g
                .authorised_in(d, &pipe)
                .into_iter()
                .map(|(u, _)| u)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            (g.hub.subscribers(&super::pipe_topic(d, &pipe)).len(), ids)
        }
        None => (0, Vec::new()),
    };
    Ok(axum::Json(PipeInfo {
        name: pipe,
        users,
        authorized_users,
    }))
}

/// Enable (1..99) or disable (0) a pipe's history.
#[utoipa::path(put, path = "/api/comet/{devId}/pipes/{pipe}/settings", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), request_body = Settings,
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn set_settings(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
    Json(x): Json<Settings>,
) -> ApiResult<StatusCode> {
    s.domain
        .comet_set_history_length(dev(&d)?, &pipe, x.length)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A pipe's history length.
#[utoipa::path(get, path = "/api/comet/{devId}/pipes/{pipe}/settings", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), responses((status = 200, body = Settings), (status = 401, body = ErrorEnvelope)))]
async fn get_settings(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
) -> ApiResult<axum::Json<Settings>> {
    let length = i64::try_from(s.domain.comet_history_length(dev(&d)?, &pipe)).unwrap_or(0);
    Ok(axum::Json(Settings { length }))
}

/// Disable a pipe's history.
#[utoipa::path(delete, path = "/api/comet/{devId}/pipes/{pipe}/settings", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("pipe" = String, Path)), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn delete_settings(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, pipe): PathIds,
) -> ApiResult<StatusCode> {
    s.domain
        .comet_set_history_length(dev(&d)?, &pipe, 0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send to a user's private `msg` pipe: every live connection, or the queue.
#[utoipa::path(post, path = "/api/comet/{devId}/users/{userId}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), request_body = Publication,
    responses((status = 200, body = UserDelivery), (status = 409, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn send_to_user(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
    Json(p): Json<Publication>,
) -> ApiResult<axum::Json<UserDelivery>> {
    let (delivered, queued) = s
        .domain
        .comet_send_to_user(dev(&d)?, user(&u)?, &p.event, p.message)
        .await?;
    Ok(axum::Json(UserDelivery { delivered, queued }))
}

/// The user's queued private messages.
#[utoipa::path(get, path = "/api/comet/{devId}/users/{userId}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 200, body = Queue), (status = 401, body = ErrorEnvelope)))]
async fn user_queue(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<axum::Json<Queue>> {
    let messages = s
        .domain
        .comet_queue(dev(&d)?, user(&u)?)
        .await?
        .into_iter()
        .map(|m| HistoryEntry {
            event: m.event,
            message: serde_json::from_str(&m.message).unwrap_or(Value::String(m.message)),
            user_id: 0,
            time: m.created_at,
        })
        .collect();
    Ok(axum::Json(Queue { messages }))
}

/// Drop the user's queued private messages.
#[utoipa::path(delete, path = "/api/comet/{devId}/users/{userId}/messages", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn clear_user_queue(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.comet_clear_queue(dev(&d)?, user(&u)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the user's auth hash (the `sesion` key a client presents).
#[utoipa::path(put, path = "/api/comet/{devId}/users/{userId}/auth", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), request_body = Hash,
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn set_auth(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
    Json(h): Json<Hash>,
) -> ApiResult<StatusCode> {
    s.domain
        .comet_set_auth(dev(&d)?, user(&u)?, &h.hash)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's auth hash.
#[utoipa::path(get, path = "/api/comet/{devId}/users/{userId}/auth", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 200, body = Hash), (status = 404, body = ErrorEnvelope)))]
async fn get_auth(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<axum::Json<Hash>> {
    let hash = s
        .domain
        .comet_auth_hash(dev(&d)?, user(&u)?)
        .await?
        .ok_or(DomainError::NotFound("hash"))?;
    Ok(axum::Json(Hash { hash }))
}

/// Remove the user's auth hash.
#[utoipa::path(delete, path = "/api/comet/{devId}/users/{userId}/auth", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn delete_auth(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.comet_delete_auth(dev(&d)?, user(&u)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the user's data (readable by clients with `user_data`).
#[utoipa::path(put, path = "/api/comet/{devId}/users/{userId}/data", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), request_body = Data,
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn set_data(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
    Json(x): Json<Data>,
) -> ApiResult<StatusCode> {
    s.domain
        .comet_set_data(dev(&d)?, user(&u)?, &x.data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's data.
#[utoipa::path(get, path = "/api/comet/{devId}/users/{userId}/data", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 200, body = Data), (status = 404, body = ErrorEnvelope)))]
async fn get_data(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<axum::Json<Data>> {
    let data = s
        .domain
        .comet_data(dev(&d)?, user(&u)?)
        .await?
        .ok_or(DomainError::NotFound("data"))?;
    Ok(axum::Json(Data { data }))
}

/// Remove the user's data.
#[utoipa::path(delete, path = "/api/comet/{devId}/users/{userId}/data", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn delete_data(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<StatusCode> {
    s.domain.comet_delete_data(dev(&d)?, user(&u)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's last-online time.
#[utoipa::path(get, path = "/api/comet/{devId}/users/{userId}/time", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path), ("userId" = i64, Path)), responses((status = 200, body = Time), (status = 401, body = ErrorEnvelope)))]
async fn user_time(
    State(s): State<AppState>,
    _: Backend,
    PathIds(d, u): PathIds,
) -> ApiResult<axum::Json<Time>> {
    Ok(axum::Json(Time {
        time: s.domain.comet_user_time(dev(&d)?, user(&u)?).await?,
    }))
}

/// Revoke a JWT: it no longer authenticates.
#[utoipa::path(post, path = "/api/comet/{devId}/revoked-tokens", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path)), request_body = Token, responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn revoke(
    State(s): State<AppState>,
    _: Backend,
    crate::http::extract::PathId(d): crate::http::extract::PathId,
    Json(t): Json<Token>,
) -> ApiResult<StatusCode> {
    s.domain.comet_revoke(dev(&d)?, &t.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Un-revoke a JWT.
#[utoipa::path(delete, path = "/api/comet/{devId}/revoked-tokens", tag = "comet", security(("comet" = [])),
    params(("devId" = String, Path)), request_body = Token, responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn unrevoke(
    State(s): State<AppState>,
    _: Backend,
    crate::http::extract::PathId(d): crate::http::extract::PathId,
    Json(t): Json<Token>,
) -> ApiResult<StatusCode> {
    s.domain.comet_unrevoke(dev(&d)?, &t.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
