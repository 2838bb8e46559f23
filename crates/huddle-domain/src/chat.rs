//! Chat in channels (SPEC §4): store first, then publish; per-channel
//! sequential ids; only the sender modifies; the sender, the channel's manager
//! or a workspace admin/moderator deletes (soft delete); read positions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use huddle_store::{now_ms, ChatGate, ChatRecord};

use crate::channels::ChannelView;
use crate::model::time;
use crate::roles::{ChannelAccess, ChannelRole, WorkspaceRole};
use crate::{parse_id, Caller, Domain, DomainError, DomainEvent, DomainResult};

/// Most chats one history page returns.
pub const MAX_PAGE: i64 = 100;
/// History page size when none is asked.
pub const DEFAULT_PAGE: i64 = 50;

/// A chat as clients see it (seed 002's chatInfo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatInfo {
    pub id: i64,
    /// `TEXT` or `SYSTEM`.
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    pub sender_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub channel_id: String,
    /// The workspace (the seed's community).
    pub community_id: String,
}

/// A page of history, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage {
    pub chats: Vec<ChatInfo>,
    pub has_more: bool,
}

/// Which chat operation an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatAction {
    New,
    Modify,
    Delete,
}

impl ChatAction {
    /// The socket event: `new-chat`, `modify-chat`, `delete-chat`.
    pub fn event(self) -> &'static str {
        match self {
            ChatAction::New => "new-chat",
            ChatAction::Modify => "modify-chat",
            ChatAction::Delete => "delete-chat",
        }
    }
}

fn rfc3339(ms: i64) -> String {
    time(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn info(c: &ChatRecord, workspace_id: &str) -> ChatInfo {
    ChatInfo {
        id: c.id,
        kind: c.kind.clone(),
        content: c.content.clone(),
        sender_id: c.sender_id.clone(),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        deleted_at: c.deleted_at.map(rfc3339),
        channel_id: c.channel_id.clone(),
        community_id: workspace_id.into(),
    }
}

impl Domain {
    fn check_content(&self, content: &str) -> DomainResult<()> {
        let n = content.chars().count();
        if content.trim().is_empty() {
            return Err(DomainError::invalid("content", "content must not be empty"));
        }
        if n > self.cfg.chat_content_chars {
            return Err(DomainError::invalid(
                "content",
                format!(
                    "content must be at most {} characters",
                    self.cfg.chat_content_chars
                ),
            ));
        }
        if content.contains('\0') {
            return Err(DomainError::invalid(
                "content",
                "content must not contain NUL",
            ));
        }
        Ok(())
    }

    async fn publish_chat(
        &self,
        workspace_id: &str,
        action: ChatAction,
        chat: ChatInfo,
        origin: Option<String>,
    ) {
        self.emit(DomainEvent::Chat {
            workspace_id: workspace_id.into(),
            action,
            chat,
            origin,
        })
        .await;
    }

    /// Posts a chat in a channel the caller can see (and, with `within`, that
    /// belongs to that workspace). `origin` is the sending socket, which the
    /// broadcast skips.
    pub async fn post_chat(
        &self,
        caller: &Caller,
        channel_id: &str,
        within: Option<&str>,
        kind: Option<&str>,
        content: &str,
        origin: Option<String>,
    ) -> DomainResult<ChatInfo> {
        let channel_id = parse_id(channel_id, "channel")?;
        if !matches!(kind, None | Some("TEXT")) {
            return Err(DomainError::invalid("type", "type must be TEXT"));
        }
        self.check_content(content)?;
        // Access is checked by the chat writer, in the transaction that stores
        // the chat (one query per batch instead of one per chat).
        let gate = ChatGate {
            within: within.map(str::to_owned),
            allow: ChannelAccess::may_post,
        };
        let stored = self
            .db
            .insert_chat(
                &channel_id,
                "TEXT",
                content,
                &caller.user_id,
                now_ms(),
                Some(gate),
            )
            .await?
            .ok_or(DomainError::NotFound("channel"))?;
        let chat = info(&stored.record, &stored.workspace_id);
        self.publish_chat(&stored.workspace_id, ChatAction::New, chat.clone(), origin)
            .await;
        Ok(chat)
    }

    /// A chat of a channel the caller can see (404 otherwise).
    async fn visible_chat(
        &self,
        caller: &Caller,
        channel_id: &str,
        within: Option<&str>,
        chat_id: i64,
    ) -> DomainResult<(ChannelView, ChatRecord)> {
        let v = self.channel_view_in(caller, channel_id, within).await?;
        let chat = self
            .db
            .chat(&v.channel.id, chat_id)
            .await?
            .ok_or(DomainError::NotFound("chat"))?;
        Ok((v, chat))
    }

    /// Edits a chat; only its sender may.
    pub async fn modify_chat(
        &self,
        caller: &Caller,
        channel_id: &str,
        within: Option<&str>,
        chat_id: i64,
        content: &str,
        origin: Option<String>,
    ) -> DomainResult<ChatInfo> {
        let (v, chat) = self
            .visible_chat(caller, channel_id, within, chat_id)
            .await?;
        if chat.sender_id != caller.user_id {
            return Err(DomainError::Forbidden("only the sender can modify a chat"));
        }
        if chat.deleted_at.is_some() {
            return Err(DomainError::Conflict("the chat was deleted".into()));
        }
        self.check_content(content)?;
        let chat = self
            .db
            .update_chat(&v.channel.id, chat_id, content, now_ms())
            .await?
            .ok_or(DomainError::NotFound("chat"))?;
        let chat = info(&chat, &v.channel.workspace_id);
        self.publish_chat(
            &v.channel.workspace_id,
            ChatAction::Modify,
            chat.clone(),
            origin,
        )
        .await;
        Ok(chat)
    }

    /// Soft-deletes a chat: its sender, the channel's manager, or a workspace
    /// admin or moderator.
    pub async fn delete_chat(
        &self,
        caller: &Caller,
        channel_id: &str,
        within: Option<&str>,
        chat_id: i64,
        origin: Option<String>,
    ) -> DomainResult<ChatInfo> {
        let (v, chat) = self
            .visible_chat(caller, channel_id, within, chat_id)
            .await?;
        let allowed = chat.sender_id == caller.user_id
            || v.access.channel_role == Some(ChannelRole::Admin)
            || matches!(
                v.access.workspace_role,
                WorkspaceRole::Admin | WorkspaceRole::Moderator
            );
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the sender, the channel manager or a workspace admin can delete a chat",
            ));
        }
        if chat.deleted_at.is_some() {
            return Err(DomainError::Conflict("the chat was already deleted".into()));
        }
        let chat = self
            .db
            .delete_chat(&v.channel.id, chat_id, now_ms())
            .await?
            .ok_or(DomainError::NotFound("chat"))?;
        let chat = info(&chat, &v.channel.workspace_id);
        self.publish_chat(
            &v.channel.workspace_id,
            ChatAction::Delete,
            chat.clone(),
            origin,
        )
        .await;
        Ok(chat)
    }

    /// History, newest first: chats with id below `before` (default: from the
    /// newest). Ids never change, so pages stay stable while new chats arrive.
    pub async fn chat_history(
        &self,
        caller: &Caller,
        channel_id: &str,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> DomainResult<ChatPage> {
        let v = self.channel_view(caller, channel_id).await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("limit must be 1..{MAX_PAGE}"),
            ));
        }
        let mut rows = self
            .db
            .chats_before(&v.channel.id, before.unwrap_or(i64::MAX), limit + 1)
            .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(ChatPage {
            chats: rows
                .iter()
                .map(|c| info(c, &v.channel.workspace_id))
                .collect(),
            has_more,
        })
    }

    /// Marks everything in the channel read for the caller.
    pub async fn mark_read(&self, caller: &Caller, channel_id: &str) -> DomainResult<()> {
        let v = self.channel_view(caller, channel_id).await?;
        self.db.mark_read(&v.channel.id, &caller.user_id).await?;
        Ok(())
    }

    /// The first chat the caller has not read, or -1.
    pub async fn first_unread(&self, caller: &Caller, channel_id: &str) -> DomainResult<i64> {
        let v = self.channel_view(caller, channel_id).await?;
        Ok(self
            .db
            .first_unread(&v.channel.id, &caller.user_id)
            .await?
            .unwrap_or(-1))
    }
}
