//! Workspaces: creation, state, settings, invites, membership and roles.

use rand::Rng;
use serde::Deserialize;
use utoipa::ToSchema;

use huddle_store::{now_ms, InviteRecord, MemberRecord, WorkspaceRecord};

use crate::model::{
    ChannelForUser, Invite, Member, User, Workspace, WorkspaceForUser, WorkspaceRelation,
    WorkspaceState,
};
use crate::roles::WorkspaceRole;
use crate::{
    model, new_id, parse_id, validate, Caller, Domain, DomainError, DomainEvent, DomainResult,
};

/// Workspace settings update; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar: Option<Option<String>>,
    pub can_users_invite: Option<bool>,
}

/// The caller's membership of a workspace, established once per operation.
pub(crate) struct Membership {
    pub workspace: WorkspaceRecord,
    pub role: WorkspaceRole,
}

fn for_user(w: &WorkspaceRecord, role: WorkspaceRole) -> WorkspaceForUser {
    WorkspaceForUser {
        workspace: Workspace::from(w),
        user_relation: WorkspaceRelation { role },
    }
}

/// Invite codes: 12 characters of an unambiguous alphabet (~60 bits).
fn invite_code() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Domain {
    /// The caller's membership; a workspace they are not in does not exist for them.
    pub(crate) async fn membership_of(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> DomainResult<Membership> {
        let id = parse_id(workspace_id, "workspace")?;
        let member = self
            .db
            .membership(&id, &caller.user_id)
            .await?
            .ok_or(DomainError::NotFound("workspace"))?;
        let workspace = self
            .db
            .workspace_by_id(&id)
            .await?
            .ok_or(DomainError::NotFound("workspace"))?;
        Ok(Membership {
            workspace,
            role: WorkspaceRole::parse(&member.role)?,
        })
    }

    /// The workspace role of `user_id`, if a member (for delivery-time checks).
    pub async fn workspace_role(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> DomainResult<Option<WorkspaceRole>> {
        match self.db.membership(workspace_id, user_id).await? {
            Some(m) => Ok(Some(WorkspaceRole::parse(&m.role)?)),
            None => Ok(None),
        }
    }

    /// Creates a workspace; the caller becomes its admin.
    pub async fn create_workspace(
        &self,
        caller: &Caller,
        name: &str,
    ) -> DomainResult<WorkspaceForUser> {
        let name = validate::name("name", name)?;
        let now = now_ms();
        let w = WorkspaceRecord {
            id: new_id(),
            name,
            avatar: None,
            creator_id: caller.user_id.clone(),
            can_users_invite: false,
            created_at: now,
            updated_at: now,
        };
        self.db
            .create_workspace(&w, WorkspaceRole::Admin.as_str())
            .await?;
        self.emit(DomainEvent::WorkspaceAdded {
            user_id: caller.user_id.clone(),
            workspace_id: w.id.clone(),
        })
        .await;
        Ok(for_user(&w, WorkspaceRole::Admin))
    }

    /// The caller's workspaces.
    pub async fn my_workspaces(&self, caller: &Caller) -> DomainResult<Vec<WorkspaceForUser>> {
        let rows = self.db.workspaces_of_user(&caller.user_id).await?;
        rows.iter()
            .map(|r| Ok(for_user(&r.workspace, WorkspaceRole::parse(&r.role)?)))
            .collect()
    }

    /// Full state: the workspace, the channels the caller can see, and the members.
    pub async fn workspace_state(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> DomainResult<WorkspaceState> {
        let m = self.membership_of(caller, workspace_id).await?;
        let channels: Vec<ChannelForUser> = self.visible_channels(caller, &m).await?;
        Ok(WorkspaceState {
            workspace: for_user(&m.workspace, m.role),
            channels,
            users: self.member_list(&m.workspace.id).await?,
        })
    }

    async fn member_list(&self, workspace_id: &str) -> DomainResult<Vec<Member>> {
        let rows = self.db.members(workspace_id).await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user: User::from(&r.user),
                    role: WorkspaceRole::parse(&r.role)?,
                    online_status: self.presence.user_status(&r.user.id),
                    joined_at: model::time(r.joined_at),
                })
            })
            .collect()
    }

    /// Members of a workspace the caller belongs to.
    pub async fn workspace_members(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> DomainResult<Vec<Member>> {
        let m = self.membership_of(caller, workspace_id).await?;
        self.member_list(&m.workspace.id).await
    }

    /// Renames or re-configures a workspace (admin or moderator).
    pub async fn update_workspace(
        &self,
        caller: &Caller,
        workspace_id: &str,
        update: WorkspaceUpdate,
    ) -> DomainResult<WorkspaceForUser> {
        let mut m = self.membership_of(caller, workspace_id).await?;
        if !m.role.can_update_workspace() {
            return Err(DomainError::Forbidden(
                "only admins and moderators can change the workspace",
            ));
        }
        if let Some(name) = update.name {
            m.workspace.name = validate::name("name", &name)?;
        }
        if let Some(avatar) = update.avatar {
            m.workspace.avatar = validate::short_text("avatar", avatar.as_deref(), 2048)?;
        }
        if let Some(flag) = update.can_users_invite {
            m.workspace.can_users_invite = flag;
        }
        m.workspace.updated_at = now_ms();
        self.db.update_workspace(&m.workspace).await?;
        self.emit(DomainEvent::WorkspaceUpdated {
            workspace_id: m.workspace.id.clone(),
        })
        .await;
        Ok(for_user(&m.workspace, m.role))
    }

    /// Deletes a workspace and everything in it (admin).
    pub async fn delete_workspace(&self, caller: &Caller, workspace_id: &str) -> DomainResult<()> {
        let m = self.membership_of(caller, workspace_id).await?;
        if !m.role.can_delete_workspace() {
            return Err(DomainError::Forbidden(
                "only admins can delete the workspace",
            ));
        }
        let member_ids: Vec<String> = self
            .db
            .members(&m.workspace.id)
            .await?
            .into_iter()
            .map(|r| r.user.id)
            .collect();
        self.db.delete_workspace(&m.workspace.id).await?;
        for user in &member_ids {
            self.evict_user_devices(&m.workspace.id, user).await?;
        }
        self.emit(DomainEvent::WorkspaceDeleted {
            workspace_id: m.workspace.id,
            member_ids,
        })
        .await;
        Ok(())
    }

    /// Creates an invite code (admin/moderator, or user when `canUsersInvite`).
    pub async fn create_invite(&self, caller: &Caller, workspace_id: &str) -> DomainResult<Invite> {
        let m = self.membership_of(caller, workspace_id).await?;
        if !m.role.can_invite(m.workspace.can_users_invite) {
            return Err(DomainError::Forbidden(
                "you cannot invite to this workspace",
            ));
        }
        let now = now_ms();
        let ttl = i64::try_from(self.cfg.invite_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let invite = InviteRecord {
            code: invite_code(),
            workspace_id: m.workspace.id.clone(),
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        self.db.insert_invite(&invite).await?;
        Ok(Invite {
            code: invite.code,
            workspace_id: invite.workspace_id,
            expires_at: model::time(invite.expires_at),
        })
    }

    /// Joins the workspace of an invite code as a `user`.
    pub async fn join(&self, caller: &Caller, code: &str) -> DomainResult<WorkspaceForUser> {
        if !validate::lookup_key(code) {
            return Err(DomainError::NotFound("invite"));
        }
        let invite = self
            .db
            .invite_by_code(code)
            .await?
            .ok_or(DomainError::NotFound("invite"))?;
        let workspace = self
            .db
            .workspace_by_id(&invite.workspace_id)
            .await?
            .ok_or(DomainError::NotFound("invite"))?;
        let member = MemberRecord {
            workspace_id: workspace.id.clone(),
            user_id: caller.user_id.clone(),
            role: WorkspaceRole::User.as_str().into(),
            joined_at: now_ms(),
        };
        self.db.add_member(&member).await.map_err(|e| match e {
            huddle_store::StoreError::Conflict(_) => {
                DomainError::Conflict("already a member of this workspace".into())
            }
            other => other.into(),
        })?;
        self.emit(DomainEvent::MemberJoined {
            workspace_id: workspace.id.clone(),
            user_id: caller.user_id.clone(),
        })
        .await;
        self.emit(DomainEvent::WorkspaceAdded {
            user_id: caller.user_id.clone(),
            workspace_id: workspace.id.clone(),
        })
        .await;
        Ok(for_user(&workspace, WorkspaceRole::User))
    }

    /// Leaves a workspace. The last admin cannot leave while others remain; the
    /// last member leaving deletes the workspace.
    pub async fn leave_workspace(&self, caller: &Caller, workspace_id: &str) -> DomainResult<()> {
        let m = self.membership_of(caller, workspace_id).await?;
        let members = self.db.members(&m.workspace.id).await?;
        if members.len() == 1 {
            self.db.delete_workspace(&m.workspace.id).await?;
            self.emit(DomainEvent::WorkspaceDeleted {
                workspace_id: m.workspace.id,
                member_ids: vec![caller.user_id.clone()],
            })
            .await;
            return Ok(());
        }
        if m.role == WorkspaceRole::Admin
            && self.db.count_role(&m.workspace.id, "admin").await? == 1
        {
            return Err(DomainError::Conflict(
                "the last admin cannot leave; make another member admin first".into(),
            ));
        }
        self.db
            .remove_member(&m.workspace.id, &caller.user_id)
            .await?;
        self.evict_user_devices(&m.workspace.id, &caller.user_id)
            .await?;
        self.emit(DomainEvent::MemberLeft {
            workspace_id: m.workspace.id,
            user_id: caller.user_id.clone(),
            kicked: false,
        })
        .await;
        Ok(())
    }

    /// Removes another member (admins kick anyone, moderators kick users and guests).
    pub async fn kick(
        &self,
        caller: &Caller,
        workspace_id: &str,
        user_id: &str,
    ) -> DomainResult<()> {
        let m = self.membership_of(caller, workspace_id).await?;
        let target_id = parse_id(user_id, "member")?;
        if target_id == caller.user_id {
            return Err(DomainError::invalid(
                "userId",
                "use leave to remove yourself",
            ));
        }
        let target = self
            .workspace_role(&m.workspace.id, &target_id)
            .await?
            .ok_or(DomainError::NotFound("member"))?;
        if !m.role.can_kick(target) {
            return Err(DomainError::Forbidden("you cannot remove this member"));
        }
        self.db.remove_member(&m.workspace.id, &target_id).await?;
        self.evict_user_devices(&m.workspace.id, &target_id).await?;
        self.emit(DomainEvent::MemberLeft {
            workspace_id: m.workspace.id,
            user_id: target_id,
            kicked: true,
        })
        .await;
        Ok(())
    }

    /// Changes a member's role (admin). Demoting the last admin is a conflict.
    pub async fn set_member_role(
        &self,
        caller: &Caller,
        workspace_id: &str,
        user_id: &str,
        role: WorkspaceRole,
    ) -> DomainResult<Member> {
        let m = self.membership_of(caller, workspace_id).await?;
        let target_id = parse_id(user_id, "member")?;
        let current = self
            .workspace_role(&m.workspace.id, &target_id)
            .await?
            .ok_or(DomainError::NotFound("member"))?;
        if !m.role.can_change_roles() {
            return Err(DomainError::Forbidden("only admins can change roles"));
        }
        if current == WorkspaceRole::Admin
            && role != WorkspaceRole::Admin
            && self.db.count_role(&m.workspace.id, "admin").await? == 1
        {
            return Err(DomainError::Conflict(
                "a workspace needs at least one admin".into(),
            ));
        }
        self.db
            .set_member_role(&m.workspace.id, &target_id, role.as_str())
            .await?;
        self.emit(DomainEvent::MemberRoleChanged {
            workspace_id: m.workspace.id.clone(),
            user_id: target_id.clone(),
            role: role.as_str().into(),
        })
        .await;
        self.member_list(&m.workspace.id)
            .await?
            .into_iter()
            .find(|x| x.user.id == target_id)
            .ok_or(DomainError::NotFound("member"))
    }
}
