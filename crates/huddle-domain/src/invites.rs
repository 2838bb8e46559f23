//! Pending call invites, in memory (they live no longer than the invite
//! timeout). Bounded: past `max` pending invites new ones are refused.
//! One std `Mutex`, never held across `.await`.

use std::collections::HashMap;
use std::sync::Mutex;

/// A pending invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: String,
    pub from: String,
    pub to: String,
    pub workspace_id: String,
    pub channel_id: String,
    pub is_response_needed: bool,
}

pub struct Invites {
    max: usize,
    pending: Mutex<HashMap<String, Invite>>,
}

impl Invites {
    pub fn new(max: usize) -> Invites {
        Invites {
            max: max.max(1),
            pending: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Invite>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending invite from `from` to `to` for `channel` of the same kind
    /// (needing a response or not), if any.
    pub fn existing(
        &self,
        from: &str,
        to: &str,
        channel: &str,
        needs_response: bool,
    ) -> Option<Invite> {
        self.lock()
            .values()
            .find(|i| {
                i.from == from
                    && i.to == to
                    && i.channel_id == channel
                    && i.is_response_needed == needs_response
            })
            .cloned()
    }

    /// Stores an invite; `false` when the store is full.
    pub fn insert(&self, invite: Invite) -> bool {
        let mut map = self.lock();
        if map.len() >= self.max {
            return false;
        }
        map.insert(invite.id.clone(), invite);
        true
    }

    /// Removes and returns an invite.
    pub fn take(&self, id: &str) -> Option<Invite> {
        self.lock().remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Invite> {
        self.lock().get(id).cloned()
    }

    /// Removes and returns every invite to `to` for `channel`.
    pub fn take_for(&self, to: &str, channel: &str) -> Vec<Invite> {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .values()
            .filter(|i| i.to == to && i.channel_id == channel)
            .map(|i| i.id.clone())
            .collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }
}
