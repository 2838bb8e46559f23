//! `/api/channels/{id}/chat*`: chat history and the REST twin of the community
//! socket's `chat` event (SPEC §4). Each change is broadcast to the channel room.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use huddle_domain::chat::{ChatInfo, ChatPage};
use huddle_domain::DomainError;

use super::error::{ApiError, ApiResult, ErrorEnvelope};
use super::extract::{Auth, Json, PathId, PathIds};
use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, post))
        .routes(routes!(modify, delete))
        .routes(routes!(last_read))
        .routes(routes!(unread))
}

#[derive(Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Chats with ids below this one (default: from the newest).
    before: Option<i64>,
    /// Page size, 1..100 (default 50).
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewChat {
    /// `TEXT` (the default); other types are the server's.
    #[serde(rename = "type")]
    kind: Option<String>,
    content: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChatEdit {
    content: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    /// The first unread chat, or -1.
    chat_id: i64,
}

fn chat_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::Domain(DomainError::NotFound("chat")))
}

/// History, newest first; pages are stable while new chats arrive.
#[utoipa::path(get, path = "/api/channels/{id}/chat", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path), HistoryQuery), responses((status = 200, body = ChatPage), (status = 404, body = ErrorEnvelope)))]
async fn history(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<ChatPage>> {
    let Query(q) = q?;
    Ok(axum::Json(
        s.domain
            .chat_history(&caller, &id, q.before, q.limit)
            .await?,
    ))
}

/// Post a chat; it is broadcast to the channel room as `new-chat`.
#[utoipa::path(post, path = "/api/channels/{id}/chat", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = NewChat,
    responses((status = 201, body = ChatInfo), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn post(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
    Json(input): Json<NewChat>,
) -> ApiResult<(StatusCode, axum::Json<ChatInfo>)> {
    s.domain.take_rest_chat_write(&caller)?;
    let chat = s
        .domain
        .post_chat(
            &caller,
            &id,
            None,
            input.kind.as_deref(),
            &input.content,
            None,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(chat)))
}

/// Edit your chat; broadcast as `modify-chat`.
#[utoipa::path(patch, path = "/api/channels/{id}/chats/{chatId}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path), ("chatId" = i64, Path)), request_body = ChatEdit,
    responses((status = 200, body = ChatInfo), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn modify(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, chat): PathIds,
    Json(input): Json<ChatEdit>,
) -> ApiResult<axum::Json<ChatInfo>> {
    s.domain.take_rest_chat_write(&caller)?;
    Ok(axum::Json(
        s.domain
            .modify_chat(&caller, &id, None, chat_id(&chat)?, &input.content, None)
            .await?,
    ))
}

/// Delete a chat (soft); broadcast as `delete-chat`.
#[utoipa::path(delete, path = "/api/channels/{id}/chats/{chatId}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path), ("chatId" = i64, Path)),
    responses((status = 200, body = ChatInfo), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathIds(id, chat): PathIds,
) -> ApiResult<axum::Json<ChatInfo>> {
    s.domain.take_rest_chat_write(&caller)?;
    Ok(axum::Json(
        s.domain
            .delete_chat(&caller, &id, None, chat_id(&chat)?, None)
            .await?,
    ))
}

/// Mark the channel read up to its newest chat.
#[utoipa::path(patch, path = "/api/channels/{id}/last-read", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn last_read(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    s.domain.mark_read(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The first unread chat id, or -1.
#[utoipa::path(get, path = "/api/channels/{id}/unread-chat", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Unread), (status = 404, body = ErrorEnvelope)))]
async fn unread(
    State(s): State<AppState>,
    Auth(caller): Auth,
    PathId(id): PathId,
) -> ApiResult<axum::Json<Unread>> {
    Ok(axum::Json(Unread {
        chat_id: s.domain.first_unread(&caller, &id).await?,
    }))
}
