//! Channels: public and private, explicit members and channel roles. A channel
//! the caller cannot see does not exist for them (404).

use serde::Deserialize;
use utoipa::ToSchema;

use huddle_store::{now_ms, ChannelMemberRecord, ChannelRecord};

use crate::events::Visibility;
use crate::model::{Channel, ChannelForUser, ChannelMember, ChannelRelation};
use crate::roles::{ChannelAccess, ChannelRole};
use crate::workspaces::Membership;
use crate::{
    model, new_id, parse_id, validate, Caller, Domain, DomainError, DomainEvent, DomainResult,
};

/// Most users named in one channel creation or member addition.
const MAX_USERS_PER_CALL: usize = 1000;

/// The answer of [`Domain::readable_channels_in`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSelection {
    /// `(as sent, canonical id)` of each channel the caller may read.
    pub readable: Vec<(String, String)>,
    /// As sent: ids that are no UUID, unknown, of another workspace or unreadable.
    pub refused: Vec<String>,
}

/// A new channel.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewChannel {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub is_private: bool,
    /// Workspace members to add as explicit members (role `user`).
    #[serde(default)]
    pub users: Vec<String>,
}

/// Channel update; absent fields are left alone, `description: null` clears it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::validate::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// A channel together with the caller's access to it.
pub(crate) struct ChannelView {
    pub channel: ChannelRecord,
    pub access: ChannelAccess,
}

fn for_user(c: &ChannelRecord, role: Option<ChannelRole>) -> ChannelForUser {
    ChannelForUser {
        channel: Channel::from(c),
        user_relation: ChannelRelation { role },
        exist_unread_chat: false,
    }
}

/// What `user_id` may do with `channel`, from their workspace and channel
/// roles as the store read them (`None`: not a member of its workspace).
fn access_of(
    user_id: &str,
    channel: &ChannelRecord,
    workspace_role: Option<&str>,
    channel_role: Option<&str>,
) -> DomainResult<Option<ChannelAccess>> {
    ChannelAccess::from_grant(&huddle_store::ChannelGrant {
        user_id,
        workspace_id: &channel.workspace_id,
        is_private: channel.is_private,
        creator_id: &channel.creator_id,
        workspace_role,
        channel_role,
    })
}

fn visibility(c: &ChannelRecord) -> Visibility {
    if c.is_private {
        Visibility::Private
    } else {
        Visibility::Public
    }
}

impl Domain {
    /// Loads a channel the caller can see, else 404. One query: the channel
    /// with the caller's workspace and channel roles.
    pub(crate) async fn channel_view(
        &self,
        caller: &Caller,
        channel_id: &str,
    ) -> DomainResult<ChannelView> {
        let id = parse_id(channel_id, "channel")?;
        let (channel, workspace_role, channel_role) = self
            .db
            .channel_with_roles(&id, &caller.user_id)
            .await?
            .ok_or(DomainError::NotFound("channel"))?;
        let access = access_of(
            &caller.user_id,
            &channel,
            workspace_role.as_deref(),
            channel_role.as_deref(),
        )?;
        match access {
            Some(access) if access.can_see() => Ok(ChannelView { channel, access }),
            _ => Err(DomainError::NotFound("channel")),
        }
    }

    /// Like [`Domain::channel_view`], and also 404 when the channel is not in
    /// `workspace_id` (a namespace bound to one workspace names a channel of
    /// another).
    pub(crate) async fn channel_view_in(
        &self,
        caller: &Caller,
        channel_id: &str,
        workspace_id: Option<&str>,
    ) -> DomainResult<ChannelView> {
        let v = self.channel_view(caller, channel_id).await?;
        match workspace_id {
            Some(w) if w != v.channel.workspace_id => Err(DomainError::NotFound("channel")),
            _ => Ok(v),
        }
    }

    /// Checks that the caller can see `channel_id` and that it belongs to
    /// `workspace_id`; 404 otherwise. One query.
    pub async fn check_channel_in(
        &self,
        caller: &Caller,
        channel_id: &str,
        workspace_id: &str,
    ) -> DomainResult<()> {
        self.channel_view_in(caller, channel_id, Some(workspace_id))
            .await
            .map(drop)
    }

    /// Which of `ids` (as a client sent them) the caller may read in
    /// `workspace_id`, in one query whatever their number: the rule of
    /// [`ChannelAccess::can_see`], and the channel must belong to the workspace.
    /// Each id is answered once, in the order sent (a repeat, also in another
    /// spelling of the same UUID, is dropped); an id that is not a UUID is
    /// refused without asking the database. The caller bounds `ids`.
    pub async fn readable_channels_in(
        &self,
        caller: &Caller,
        workspace_id: &str,
        ids: &[&str],
    ) -> DomainResult<ChannelSelection> {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let mut wanted: Vec<(String, String)> = Vec::with_capacity(ids.len());
        let mut refused = Vec::new();
        for raw in ids {
            match uuid::Uuid::parse_str(raw) {
                Ok(u) => {
                    let id = u.to_string();
                    if seen.insert(id.clone()) {
                        wanted.push(((*raw).to_owned(), id));
                    }
                }
                Err(_) => {
                    if seen.insert((*raw).to_owned()) {
                        refused.push((*raw).to_owned());
                    }
                }
            }
        }
        let canonical: Vec<String> = wanted.iter().map(|(_, id)| id.clone()).collect();
        let rows = self
            .db
            .channels_with_roles_in(workspace_id, &caller.user_id, &canonical)
            .await?;
        let readable: std::collections::HashSet<String> = rows
            .into_iter()
            .filter(|(channel, workspace_role, channel_role)| {
                let access = access_of(
                    &caller.user_id,
                    channel,
                    workspace_role.as_deref(),
                    channel_role.as_deref(),
                );
                // A role that does not parse reads nothing.
                matches!(access, Ok(Some(a)) if a.can_see())
            })
            .map(|(channel, _, _)| channel.id)
            .collect();
        let mut selection = ChannelSelection {
            readable: Vec::new(),
            refused,
        };
        for (raw, id) in wanted {
            if readable.contains(&id) {
                selection.readable.push((raw, id));
            } else {
                selection.refused.push(raw);
            }
        }
        Ok(selection)
    }

    /// What `user_id` is to `channel` (`None`: not a workspace member). Used by
    /// every channel operation and by delivery-time checks.
    pub async fn channel_access(
        &self,
        channel: &ChannelRecord,
        user_id: &str,
    ) -> DomainResult<Option<ChannelAccess>> {
        let Some(workspace_role) = self.workspace_role(&channel.workspace_id, user_id).await?
        else {
            return Ok(None);
        };
        let channel_role = match self.db.channel_member(&channel.id, user_id).await? {
            Some(m) => Some(ChannelRole::parse(&m.role)?),
            None => None,
        };
        Ok(Some(ChannelAccess {
            workspace_role,
            channel_role,
            is_private: channel.is_private,
            is_creator: channel.creator_id == user_id,
        }))
    }

    pub(crate) async fn visible_channels(
        &self,
        caller: &Caller,
        m: &Membership,
    ) -> DomainResult<Vec<ChannelForUser>> {
        let rows = self
            .db
            .channels_visible_to(
                &m.workspace.id,
                &caller.user_id,
                m.role.sees_public_channels(),
            )
            .await?;
        let unread = self
            .db
            .unread_state(&m.workspace.id, &caller.user_id)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for c in &rows {
            let role = match self.db.channel_member(&c.id, &caller.user_id).await? {
                Some(r) => Some(ChannelRole::parse(&r.role)?),
                None => None,
            };
            let mut ch = for_user(c, role);
            ch.exist_unread_chat = unread.get(&c.id).is_some_and(|(last, read)| last > read);
            out.push(ch);
        }
        Ok(out)
    }

    /// Channels of a workspace visible to the caller.
    pub async fn list_channels(
        &self,
        caller: &Caller,
        workspace_id: &str,
    ) -> DomainResult<Vec<ChannelForUser>> {
        let m = self.membership_of(caller, workspace_id).await?;
        self.visible_channels(caller, &m).await
    }

    /// Checks that every id names a member of the workspace; returns them normalised.
    async fn workspace_users(
        &self,
        workspace_id: &str,
        users: &[String],
    ) -> DomainResult<Vec<String>> {
        if users.len() > MAX_USERS_PER_CALL {
            return Err(DomainError::invalid(
                "users",
                format!("at most {MAX_USERS_PER_CALL} users per call"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(users.len());
        for raw in users {
            let id = uuid::Uuid::parse_str(raw)
                .map_err(|_| DomainError::invalid("users", format!("{raw:?} is not a user id")))?
                .to_string();
            if self.db.membership(workspace_id, &id).await?.is_none() {
                return Err(DomainError::invalid(
                    "users",
                    format!("{id} is not a member of this workspace"),
                ));
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Creates a channel; the caller becomes its admin (manager).
    pub async fn create_channel(
        &self,
        caller: &Caller,
        workspace_id: &str,
        input: NewChannel,
    ) -> DomainResult<ChannelForUser> {
        let m = self.membership_of(caller, workspace_id).await?;
        if !m.role.can_create_channel() {
            return Err(DomainError::Forbidden("guests cannot create channels"));
        }
        let name = validate::name("name", &input.name)?;
        let description = validate::description(input.description.as_deref())?;
        let users = self.workspace_users(&m.workspace.id, &input.users).await?;
        let now = now_ms();
        let channel = ChannelRecord {
            id: new_id(),
            workspace_id: m.workspace.id.clone(),
            name,
            description,
            creator_id: caller.user_id.clone(),
            is_private: input.is_private,
            created_at: now,
            updated_at: now,
            last_chat_id: 0,
        };
        let mut members = vec![ChannelMemberRecord {
            channel_id: channel.id.clone(),
            user_id: caller.user_id.clone(),
            role: ChannelRole::Admin.as_str().into(),
            joined_at: now,
        }];
        members.extend(users.into_iter().filter(|u| *u != caller.user_id).map(|u| {
            ChannelMemberRecord {
                channel_id: channel.id.clone(),
                user_id: u,
                role: ChannelRole::User.as_str().into(),
                joined_at: now,
            }
        }));
        self.db.create_channel(&channel, &members).await?;
        self.emit(DomainEvent::ChannelCreated {
            workspace_id: channel.workspace_id.clone(),
            channel_id: channel.id.clone(),
            visibility: visibility(&channel),
            member_ids: members.into_iter().map(|m| m.user_id).collect(),
        })
        .await;
        Ok(for_user(&channel, Some(ChannelRole::Admin)))
    }

    pub async fn get_channel(
        &self,
        caller: &Caller,
        channel_id: &str,
    ) -> DomainResult<ChannelForUser> {
        let v = self.channel_view(caller, channel_id).await?;
        let mut ch = for_user(&v.channel, v.access.channel_role);
        ch.exist_unread_chat = v.channel.last_chat_id
            > self
                .db
                .read_position(&v.channel.id, &caller.user_id)
                .await?;
        Ok(ch)
    }

    pub async fn update_channel(
        &self,
        caller: &Caller,
        channel_id: &str,
        update: ChannelUpdate,
    ) -> DomainResult<ChannelForUser> {
        let mut v = self.channel_view(caller, channel_id).await?;
        if !v.access.can_update() {
            return Err(DomainError::Forbidden("you cannot change this channel"));
        }
        if let Some(name) = update.name {
            v.channel.name = validate::name("name", &name)?;
        }
        if let Some(description) = update.description {
            v.channel.description = validate::description(description.as_deref())?;
        }
        v.channel.updated_at = now_ms();
        self.db.update_channel(&v.channel).await?;
        self.emit(DomainEvent::ChannelUpdated {
            workspace_id: v.channel.workspace_id.clone(),
            channel_id: v.channel.id.clone(),
        })
        .await;
        Ok(for_user(&v.channel, v.access.channel_role))
    }

    pub async fn delete_channel(&self, caller: &Caller, channel_id: &str) -> DomainResult<()> {
        let v = self.channel_view(caller, channel_id).await?;
        if !v.access.can_update() {
            return Err(DomainError::Forbidden("you cannot delete this channel"));
        }
        let member_ids = self
            .db
            .channel_members(&v.channel.id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        self.db.delete_channel(&v.channel.id).await?;
        self.evict_from_channel(&v.channel.workspace_id, &v.channel.id, None)
            .await;
        self.emit(DomainEvent::ChannelDeleted {
            workspace_id: v.channel.workspace_id.clone(),
            channel_id: v.channel.id.clone(),
            visibility: visibility(&v.channel),
            member_ids,
        })
        .await;
        Ok(())
    }

    /// Explicit members of a channel the caller can see.
    pub async fn channel_members(
        &self,
        caller: &Caller,
        channel_id: &str,
    ) -> DomainResult<Vec<ChannelMember>> {
        let v = self.channel_view(caller, channel_id).await?;
        self.db
            .channel_members(&v.channel.id)
            .await?
            .iter()
            .map(|m| {
                Ok(ChannelMember {
                    user_id: m.user_id.clone(),
                    role: ChannelRole::parse(&m.role)?,
                    joined_at: model::time(m.joined_at),
                })
            })
            .collect()
    }

    /// Adds workspace members to a channel (its manager). Returns the members after.
    pub async fn add_channel_members(
        &self,
        caller: &Caller,
        channel_id: &str,
        users: &[String],
    ) -> DomainResult<Vec<ChannelMember>> {
        let v = self.channel_view(caller, channel_id).await?;
        if !v.access.can_manage_members() {
            return Err(DomainError::Forbidden(
                "only the channel's manager can add members",
            ));
        }
        let users = self.workspace_users(&v.channel.workspace_id, users).await?;
        let now = now_ms();
        let rows: Vec<ChannelMemberRecord> = users
            .into_iter()
            .map(|u| ChannelMemberRecord {
                channel_id: v.channel.id.clone(),
                user_id: u,
                role: ChannelRole::User.as_str().into(),
                joined_at: now,
            })
            .collect();
        let added = self.db.add_channel_members(&rows).await?;
        if !added.is_empty() {
            self.emit(DomainEvent::ChannelMembersAdded {
                workspace_id: v.channel.workspace_id.clone(),
                channel_id: v.channel.id.clone(),
                user_ids: added,
            })
            .await;
        }
        self.channel_members(caller, channel_id).await
    }

    /// Removes a member from a channel: its manager removes anyone, anyone removes themself.
    pub async fn remove_channel_member(
        &self,
        caller: &Caller,
        channel_id: &str,
        user_id: &str,
    ) -> DomainResult<()> {
        let v = self.channel_view(caller, channel_id).await?;
        let target = parse_id(user_id, "member")?;
        if target != caller.user_id && !v.access.can_manage_members() {
            return Err(DomainError::Forbidden(
                "only the channel's manager can remove members",
            ));
        }
        if !self
            .db
            .remove_channel_member(&v.channel.id, &target)
            .await?
        {
            return Err(DomainError::NotFound("member"));
        }
        if v.channel.is_private {
            self.evict_from_channel(&v.channel.workspace_id, &v.channel.id, Some(&target))
                .await;
        }
        self.emit(DomainEvent::ChannelMemberRemoved {
            workspace_id: v.channel.workspace_id.clone(),
            channel_id: v.channel.id.clone(),
            user_id: target,
        })
        .await;
        Ok(())
    }

    /// Sets an explicit member's channel role (the channel's manager).
    pub async fn set_channel_role(
        &self,
        caller: &Caller,
        channel_id: &str,
        user_id: &str,
        role: ChannelRole,
    ) -> DomainResult<Vec<ChannelMember>> {
        let v = self.channel_view(caller, channel_id).await?;
        if !v.access.can_manage_members() {
            return Err(DomainError::Forbidden(
                "only the channel's manager can change roles",
            ));
        }
        let target = parse_id(user_id, "member")?;
        if !self
            .db
            .set_channel_role(&v.channel.id, &target, role.as_str())
            .await?
        {
            return Err(DomainError::NotFound("member"));
        }
        self.channel_members(caller, channel_id).await
    }

    /// Whether `user_id` may currently see `channel_id` (delivery-time check).
    pub async fn can_see_channel(&self, channel_id: &str, user_id: &str) -> DomainResult<bool> {
        let Some(channel) = self.db.channel_by_id(channel_id).await? else {
            return Ok(false);
        };
        Ok(self
            .channel_access(&channel, user_id)
            .await?
            .is_some_and(|a| a.can_see()))
    }
}
