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
