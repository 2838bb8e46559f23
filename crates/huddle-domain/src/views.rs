//! Reads for the delivery of events: the current shape of a user, workspace or
//! channel, fetched once per publication by the socket front doors.

use crate::model::{Channel, Me, User, Workspace, WorkspaceForUser, WorkspaceRelation};
use crate::roles::WorkspaceRole;
use crate::{Domain, DomainResult};

impl Domain {
    pub async fn user_view(&self, user_id: &str) -> DomainResult<Option<User>> {
        Ok(self.db.user_by_id(user_id).await?.as_ref().map(User::from))
    }

    pub async fn me_view(&self, user_id: &str) -> DomainResult<Option<Me>> {
        Ok(self.db.user_by_id(user_id).await?.as_ref().map(Me::from))
    }

    pub async fn workspace_view(&self, workspace_id: &str) -> DomainResult<Option<Workspace>> {
        Ok(self
            .db
            .workspace_by_id(workspace_id)
            .await?
            .as_ref()
            .map(Workspace::from))
    }

    /// The workspace as `user_id` sees it (with their role), if they are a member.
    pub async fn workspace_for(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> DomainResult<Option<WorkspaceForUser>> {
        let (Some(w), Some(m)) = (
            self.db.workspace_by_id(workspace_id).await?,
            self.db.membership(workspace_id, user_id).await?,
        ) else {
            return Ok(None);
        };
        Ok(Some(WorkspaceForUser {
            workspace: Workspace::from(&w),
            user_relation: WorkspaceRelation {
                role: WorkspaceRole::parse(&m.role)?,
            },
        }))
    }

    pub async fn channel_view_by_id(&self, channel_id: &str) -> DomainResult<Option<Channel>> {
        Ok(self
            .db
            .channel_by_id(channel_id)
            .await?
            .as_ref()
            .map(Channel::from))
    }

    /// Ids of the channels of a workspace `user_id` can see now.
    pub async fn visible_channel_ids(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> DomainResult<Vec<String>> {
        let Some(role) = self.workspace_role(workspace_id, user_id).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .db
            .channels_visible_to(workspace_id, user_id, role.sees_public_channels())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }
}

/// A channel in the shape of seed 002 (`invited-to-channel`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommunityChannel {
    #[serde(rename = "_id")]
    pub underscore_id: String,
    pub id: String,
    pub name: String,
    pub community_id: String,
    pub manager_id: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub is_private: bool,
    /// Explicit member ids.
    pub users: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub exist_unread_chat: bool,
}

impl Domain {
    /// The seed-002 channel object (`existUnreadChat: false`, as an invite shows it).
    pub async fn community_channel(
        &self,
        channel_id: &str,
    ) -> DomainResult<Option<CommunityChannel>> {
        let Some(c) = self.db.channel_by_id(channel_id).await? else {
            return Ok(None);
        };
        let members = self.db.channel_members(channel_id).await?;
        let manager_id = members
            .iter()
            .find(|m| m.role == "admin")
            .map_or_else(|| c.creator_id.clone(), |m| m.user_id.clone());
        Ok(Some(CommunityChannel {
            underscore_id: c.id.clone(),
            id: c.id.clone(),
            name: c.name.clone(),
            community_id: c.workspace_id.clone(),
            manager_id,
            description: c.description.clone(),
            kind: "Channel",
            is_private: c.is_private,
            users: members.into_iter().map(|m| m.user_id).collect(),
            created_at: crate::model::time(c.created_at),
            updated_at: crate::model::time(c.updated_at),
            exist_unread_chat: false,
        }))
    }

    /// A community socket's handshake: a valid access token of a member of the
    /// workspace. `Err` carries the seed's `connect_error` text.
    pub async fn community_auth(
        &self,
        token: &str,
        workspace_id: &str,
    ) -> Result<crate::Caller, &'static str> {
        let token = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("bearer "))
            .unwrap_or(token)
            .trim();
        let caller = self.authenticate(token).await.map_err(|_| "Unauthorized")?;
        let Ok(ws) = uuid::Uuid::parse_str(workspace_id) else {
            return Err("Forbidden");
        };
        match self.workspace_role(&ws.to_string(), &caller.user_id).await {
            Ok(Some(_)) => Ok(caller),
            Ok(None) => Err("Forbidden"),
            Err(e) => {
                tracing::error!(error = %e, "community handshake failed");
                Err("Forbidden")
            }
        }
    }
}
