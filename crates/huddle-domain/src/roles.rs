//! Roles and the permission rules of seeds-research §1.6, as pure functions so
//! they can be read and tested in one place.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DomainError, DomainResult};

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceRole {
    Admin,
    Moderator,
    User,
    Guest,
}

/// A member's role in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelRole {
    Admin,
    Moderator,
    User,
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Admin => "admin",
            WorkspaceRole::Moderator => "moderator",
            WorkspaceRole::User => "user",
            WorkspaceRole::Guest => "guest",
        }
    }

    /// Parses a stored role; an unknown one is a corrupt row.
    pub fn parse(s: &str) -> Result<WorkspaceRole, DomainError> {
        match s {
            "admin" => Ok(WorkspaceRole::Admin),
            "moderator" => Ok(WorkspaceRole::Moderator),
            "user" => Ok(WorkspaceRole::User),
            "guest" => Ok(WorkspaceRole::Guest),
            other => Err(DomainError::Internal(format!(
                "unknown workspace role {other:?}"
            ))),
        }
    }

    fn is_staff(self) -> bool {
        matches!(self, WorkspaceRole::Admin | WorkspaceRole::Moderator)
    }

    /// Public channels are visible to every member but guests.
    pub fn sees_public_channels(self) -> bool {
        self != WorkspaceRole::Guest
    }

    /// `workspace.update`: admin or moderator.
    pub fn can_update_workspace(self) -> bool {
        self.is_staff()
    }

    /// `workspace.delete`: admin only.
    pub fn can_delete_workspace(self) -> bool {
        self == WorkspaceRole::Admin
    }

    /// `workspace.createChannel`: anyone but a guest.
    pub fn can_create_channel(self) -> bool {
        self != WorkspaceRole::Guest
    }

    /// `workspace.invite`: admin or moderator, or user when the workspace allows it.
    pub fn can_invite(self, can_users_invite: bool) -> bool {
        self.is_staff() || (self == WorkspaceRole::User && can_users_invite)
    }

    /// Kicking: admins kick anyone else; moderators kick users and guests.
    pub fn can_kick(self, target: WorkspaceRole) -> bool {
        match self {
            WorkspaceRole::Admin => true,
            WorkspaceRole::Moderator => {
                matches!(target, WorkspaceRole::User | WorkspaceRole::Guest)
            }
            _ => false,
        }
    }

    /// Changing roles: admin only.
    pub fn can_change_roles(self) -> bool {
        self == WorkspaceRole::Admin
    }
}

impl ChannelRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelRole::Admin => "admin",
            ChannelRole::Moderator => "moderator",
            ChannelRole::User => "user",
        }
    }

    pub fn parse(s: &str) -> Result<ChannelRole, DomainError> {
        match s {
            "admin" => Ok(ChannelRole::Admin),
            "moderator" => Ok(ChannelRole::Moderator),
            "user" => Ok(ChannelRole::User),
            other => Err(DomainError::Internal(format!(
                "unknown channel role {other:?}"
            ))),
        }
    }
}

/// What a caller is to a channel: the facts every channel permission depends on.
#[derive(Debug, Clone, Copy)]
pub struct ChannelAccess {
    pub workspace_role: WorkspaceRole,
    /// The caller's explicit channel role, if any.
    pub channel_role: Option<ChannelRole>,
    pub is_private: bool,
    pub is_creator: bool,
}

impl ChannelAccess {
    /// The access a store grant describes; `None`: not a workspace member.
    /// A role this version does not know is an error.
    pub fn from_grant(g: &huddle_store::ChannelGrant<'_>) -> DomainResult<Option<ChannelAccess>> {
        let Some(workspace_role) = g.workspace_role else {
            return Ok(None);
        };
        Ok(Some(ChannelAccess {
            workspace_role: WorkspaceRole::parse(workspace_role)?,
            channel_role: g.channel_role.map(ChannelRole::parse).transpose()?,
            is_private: g.is_private,
            is_creator: g.creator_id == g.user_id,
        }))
    }

    /// Posting a chat: whoever can see the channel (the rule `post_chat`
    /// gives the chat writer, applied in the transaction that stores it; a
    /// role it cannot read refuses).
    pub fn may_post(g: &huddle_store::ChannelGrant<'_>) -> bool {
        matches!(ChannelAccess::from_grant(g), Ok(Some(a)) if a.can_see())
    }

    /// Visible (and readable and selectable): an explicit member, or any non-guest
    /// workspace member for a public channel. Invisible channels answer 404.
    pub fn can_see(&self) -> bool {
        self.channel_role.is_some()
            || (!self.is_private && self.workspace_role.sees_public_channels())
    }

    /// `channel.update` / `channel.delete`: the creator, a channel admin or
    /// moderator, or a workspace admin or moderator — among those who can see it.
    pub fn can_update(&self) -> bool {
        self.can_see()
            && (self.is_creator
                || matches!(
                    self.channel_role,
                    Some(ChannelRole::Admin | ChannelRole::Moderator)
                )
                || self.workspace_role.is_staff())
    }

    /// `channel.manageMembers`: the channel's admin (its manager), or a workspace
    /// admin who can see the channel (so a channel whose manager left stays manageable).
    pub fn can_manage_members(&self) -> bool {
        self.can_see()
            && (self.channel_role == Some(ChannelRole::Admin)
                || self.workspace_role == WorkspaceRole::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkspaceRole::*;

    fn access(role: WorkspaceRole, ch: Option<ChannelRole>, private: bool) -> ChannelAccess {
        ChannelAccess {
            workspace_role: role,
            channel_role: ch,
            is_private: private,
            is_creator: false,
        }
    }

    #[test]
    fn public_channels_are_hidden_from_guests_only() {
        for r in [Admin, Moderator, User] {
            assert!(access(r, None, false).can_see());
        }
        assert!(!access(Guest, None, false).can_see());
        assert!(access(Guest, Some(ChannelRole::User), false).can_see());
    }

    #[test]
    fn private_channels_are_visible_to_members_only_even_admins() {
        for r in [Admin, Moderator, User, Guest] {
            assert!(!access(r, None, true).can_see());
            assert!(!access(r, None, true).can_update());
            assert!(!access(r, None, true).can_manage_members());
            assert!(access(r, Some(ChannelRole::User), true).can_see());
        }
    }

    #[test]
    fn update_rules() {
        assert!(access(Moderator, Some(ChannelRole::User), true).can_update());
        assert!(!access(User, Some(ChannelRole::User), true).can_update());
        assert!(access(User, Some(ChannelRole::Moderator), true).can_update());
        let mut creator = access(User, None, false);
        creator.is_creator = true;
        assert!(creator.can_update());
    }

    #[test]
    fn member_management_rules() {
        assert!(access(User, Some(ChannelRole::Admin), true).can_manage_members());
        assert!(!access(User, Some(ChannelRole::Moderator), true).can_manage_members());
        assert!(!access(Moderator, Some(ChannelRole::User), true).can_manage_members());
        assert!(access(Admin, None, false).can_manage_members());
    }

    #[test]
    fn workspace_rules() {
        assert!(Admin.can_delete_workspace() && !Moderator.can_delete_workspace());
        assert!(Moderator.can_update_workspace() && !User.can_update_workspace());
        assert!(!Guest.can_create_channel() && User.can_create_channel());
        assert!(User.can_invite(true) && !User.can_invite(false) && !Guest.can_invite(true));
        assert!(
            Moderator.can_kick(User) && !Moderator.can_kick(Moderator) && !User.can_kick(Guest)
        );
        assert!(Admin.can_change_roles() && !Moderator.can_change_roles());
    }
}
