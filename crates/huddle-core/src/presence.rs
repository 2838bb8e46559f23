//! The presence registry: who is connected from which device, to which
//! workspace, with what online status, in which call, with what media state.
//!
//! Guarantees:
//! - every operation is atomic under one std `Mutex` (never held across
//!   `.await`), so two devices selecting at once can never both end up in a call;
//! - a user's status is the highest over their devices (online > idle >
//!   offline), offline with none; operations report when that aggregate changes;
//! - a disconnected device keeps its place until its grace deadline, then
//!   [`Presence::expire_due`] removes it; no entry outlives its connection by
//!   more than the grace period, and the maps empty when everyone leaves.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::hub::ConnId;

/// Online status, ordered by precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineStatus {
    Offline,
    Idle,
    Online,
}

/// Microphone, camera... of a device in a call. The timestamps (RFC 3339) are
/// set by the domain's rules, never by clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    pub microphone: bool,
    pub speakers: bool,
    pub screen: bool,
    pub camera: bool,
    pub speaking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_screen_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_camera_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_speaking_ts: Option<String>,
}

/// One connected device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub conn: ConnId,
    pub user_id: Arc<str>,
    pub workspace_id: Arc<str>,
    pub session_id: Arc<str>,
    pub status: OnlineStatus,
    /// The channel this device is in a call in.
    pub channel: Option<Arc<str>>,
    pub media: MediaState,
    /// Set while disconnected: the device is removed at this instant unless it reconnects.
    pub grace_until: Option<Instant>,
}

/// Why a presence operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    #[error("socket not found")]
    UnknownConnection,
    #[error("too many connections for this user (at most {0})")]
    TooManyConnections(usize),
    #[error("channel is not selected")]
    NotInChannel,
}

/// The result of removing a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub device: Device,
    /// The user's new aggregate status, when it changed.
    pub status_change: Option<OnlineStatus>,
}

/// The result of selecting a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The channel this device was in before, if another one.
    pub left: Option<Arc<str>>,
    /// The user's other devices that were in a call, and the channel each left.
    pub other_devices: Vec<(ConnId, Arc<str>)>,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<ConnId, Device>,
    by_user: HashMap<Arc<str>, HashSet<ConnId>>,
    by_channel: HashMap<Arc<str>, HashSet<ConnId>>,
}

impl Inner {
    fn aggregate(&self, user: &str) -> OnlineStatus {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|c| self.devices.get(c))
            .map(|d| d.status)
            .max()
            .unwrap_or(OnlineStatus::Offline)
    }

    fn set_channel(&mut self, conn: &ConnId, channel: Option<Arc<str>>) -> Option<Arc<str>> {
        let d = self.devices.get_mut(conn)?;
        let old = std::mem::replace(&mut d.channel, channel.clone());
        if let Some(o) = &old {
            if let Some(set) = self.by_channel.get_mut(o) {
                set.remove(conn);
                if set.is_empty() {
                    self.by_channel.remove(o);
                }
            }
        }
        if let Some(c) = channel {
            self.by_channel.entry(c).or_default().insert(conn.clone());
        }
        old
    }

    fn remove(&mut self, conn: &str) -> Option<Removed> {
        let key: ConnId = self.devices.get_key_value(conn)?.0.clone();
        let before = self.aggregate(&self.devices[conn].user_id);
        let channel = self.set_channel(&key, None);
        let mut device = self.devices.remove(conn)?;
        device.channel = channel;
        if let Some(set) = self.by_user.get_mut(&device.user_id) {
            set.remove(conn);
            if set.is_empty() {
                self.by_user.remove(&device.user_id);
            }
        }
        let after = self.aggregate(&device.user_id);
        Some(Removed {
            status_change: (after != before).then_some(after),
            device,
        })
    }
}

/// The registry. One per node (cluster-wide presence comes with the Redis layer).
pub struct Presence {
    inner: Mutex<Inner>,
    max_per_user: usize,
}

impl Presence {
    /// A registry allowing at most `max_per_user` devices per user.
    pub fn new(max_per_user: usize) -> Presence {
        Presence {
            inner: Mutex::default(),
            max_per_user: max_per_user.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a newly authenticated device. Returns the user's new aggregate
    /// status when it changed.
    pub fn attach(&self, mut device: Device) -> Result<Option<OnlineStatus>, PresenceError> {
        let mut inner = self.lock();
        // A user's devices share one allocation of the user id.
        if let Some((user, _)) = inner.by_user.get_key_value(&device.user_id) {
            device.user_id = user.clone();
        }
        let count = inner.by_user.get(&device.user_id).map_or(0, HashSet::len);
        if count >= self.max_per_user {
            return Err(PresenceError::TooManyConnections(self.max_per_user));
        }
        let before = inner.aggregate(&device.user_id);
        let (conn, user, channel) = (
            device.conn.clone(),
            device.user_id.clone(),
            device.channel.clone(),
        );
        inner
            .by_user
            .entry(user.clone())
            .or_default()
            .insert(conn.clone());
        inner.devices.insert(
            conn.clone(),
            Device {
                channel: None,
                ..device
            },
        );
        inner.set_channel(&conn, channel);
        let after = inner.aggregate(&user);
        Ok((after != before).then_some(after))
    }

    /// Moves a device still inside its grace period (`prev`) to a new connection
    /// of the same user and workspace, keeping its call and media state. Returns
    /// the restored device, or `None` when there is nothing to restore.
    pub fn reattach(
        &self,
        prev: &str,
        conn: ConnId,
        user: &str,
        workspace: &str,
        session: Arc<str>,
    ) -> Option<Device> {
        let mut inner = self.lock();
        let old = inner.devices.get(prev)?;
        if old.grace_until.is_none() || &*old.user_id != user || &*old.workspace_id != workspace {
            return None;
        }
        let removed = inner.remove(prev)?;
        let device = Device {
            conn: conn.clone(),
            session_id: session,
            grace_until: None,
            ..removed.device
        };
        let channel = device.channel.clone();
        inner
            .by_user
            .entry(device.user_id.clone())
            .or_default()
            .insert(conn.clone());
        inner.devices.insert(
            conn.clone(),
            Device {
                channel: None,
                ..device.clone()
            },
        );
        inner.set_channel(&conn, channel);
        Some(device)
    }

    /// Marks a device disconnected: it keeps its place for `grace` (`grace_in_call`
    /// when in a call). Returns its deadline, or `None` if unknown.
    pub fn disconnect(
        &self,
        conn: &str,
        now: Instant,
        grace: Duration,
        grace_in_call: Duration,
    ) -> Option<Instant> {
        let mut inner = self.lock();
        let d = inner.devices.get_mut(conn)?;
        let deadline = now
            + if d.channel.is_some() {
                grace_in_call
            } else {
                grace
            };
        d.grace_until = Some(deadline);
        Some(deadline)
    }

    /// Removes a device at once (logout, kick, end of grace).
    pub fn remove(&self, conn: &str) -> Option<Removed> {
        self.lock().remove(conn)
    }

    /// Removes every device whose grace deadline has passed.
    pub fn expire_due(&self, now: Instant) -> Vec<Removed> {
        let mut inner = self.lock();
        let due: Vec<ConnId> = inner
            .devices
            .values()
            .filter(|d| d.grace_until.is_some_and(|t| t <= now))
            .map(|d| d.conn.clone())
            .collect();
        due.iter().filter_map(|c| inner.remove(c)).collect()
    }

    /// Puts a device in a call in `channel` with `media`. Atomically takes the
    /// user's other devices out of their calls: one active call per user.
    pub fn select(
        &self,
        conn: &str,
        channel: Arc<str>,
        media: MediaState,
    ) -> Result<Selected, PresenceError> {
        let mut inner = self.lock();
        let d = inner
            .devices
            .get_mut(conn)
            .ok_or(PresenceError::UnknownConnection)?;
        d.media = media;
        let (key, user) = (d.conn.clone(), d.user_id.clone());
        let others: Vec<ConnId> = inner
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|c| **c != key && inner.devices.get(*c).is_some_and(|d| d.channel.is_some()))
            .cloned()
            .collect();
        let mut other_devices = Vec::new();
        for c in others {
            if let Some(left) = inner.set_channel(&c, None) {
                other_devices.push((c, left));
            }
        }
        let left = inner
            .set_channel(&key, Some(channel.clone()))
            .filter(|old| *old != channel);
        Ok(Selected {
            left,
            other_devices,
        })
    }

    /// Takes a device out of its call; returns the channel it left.
    pub fn unselect(&self, conn: &str) -> Result<Arc<str>, PresenceError> {
        let mut inner = self.lock();
        let key = inner
            .devices
            .get_key_value(conn)
            .ok_or(PresenceError::UnknownConnection)?
            .0
            .clone();
        let left = inner
            .set_channel(&key, None)
            .ok_or(PresenceError::NotInChannel)?;
        if let Some(d) = inner.devices.get_mut(conn) {
            d.media = MediaState::default();
        }
        Ok(left)
    }

    /// Replaces a device's media state; returns its channel (it must be in one).
    pub fn set_media(&self, conn: &str, media: MediaState) -> Result<Arc<str>, PresenceError> {
        let mut inner = self.lock();
        let d = inner
            .devices
            .get_mut(conn)
            .ok_or(PresenceError::UnknownConnection)?;
        let channel = d.channel.clone().ok_or(PresenceError::NotInChannel)?;
        d.media = media;
        Ok(channel)
    }

    /// Sets a device's status; returns the user's new aggregate when it changed.
    pub fn set_status(
        &self,
        conn: &str,
        status: OnlineStatus,
    ) -> Result<Option<OnlineStatus>, PresenceError> {
        let mut inner = self.lock();
        let user = inner
            .devices
            .get(conn)
            .ok_or(PresenceError::UnknownConnection)?
            .user_id
            .clone();
        let before = inner.aggregate(&user);
        if let Some(d) = inner.devices.get_mut(conn) {
            d.status = status;
        }
        let after = inner.aggregate(&user);
        Ok((after != before).then_some(after))
    }

    pub fn user_status(&self, user: &str) -> OnlineStatus {
        self.lock().aggregate(user)
    }

    pub fn device(&self, conn: &str) -> Option<Device> {
        self.lock().devices.get(conn).cloned()
    }

    /// Devices in a call in `channel`.
    pub fn in_channel(&self, channel: &str) -> Vec<Device> {
        let inner = self.lock();
        inner
            .by_channel
            .get(channel)
            .into_iter()
            .flatten()
            .filter_map(|c| inner.devices.get(c))
            .cloned()
            .collect()
    }

    pub fn devices_of(&self, user: &str) -> Vec<Device> {
        let inner = self.lock();
        inner
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|c| inner.devices.get(c))
            .cloned()
            .collect()
    }

    /// Number of devices registered.
    pub fn len(&self) -> usize {
        self.lock().devices.len()
    }

    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.devices.is_empty() && inner.by_user.is_empty() && inner.by_channel.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(conn: &str, user: &str, status: OnlineStatus) -> Device {
        Device {
            conn: conn.into(),
            user_id: user.into(),
            workspace_id: "w".into(),
            session_id: "s".into(),
            status,
            channel: None,
            media: MediaState::default(),
            grace_until: None,
        }
    }

    #[test]
    fn aggregate_status_changes_only_when_the_maximum_does() {
        let p = Presence::new(16);
        assert_eq!(
            p.attach(dev("a1", "a", OnlineStatus::Idle)),
            Ok(Some(OnlineStatus::Idle))
        );
        assert_eq!(
            p.attach(dev("a2", "a", OnlineStatus::Online)),
            Ok(Some(OnlineStatus::Online))
        );
        assert_eq!(p.attach(dev("a3", "a", OnlineStatus::Idle)), Ok(None));
        assert_eq!(p.set_status("a3", OnlineStatus::Offline), Ok(None));
        assert_eq!(
            p.set_status("a2", OnlineStatus::Idle),
            Ok(Some(OnlineStatus::Idle))
        );
        assert_eq!(p.remove("a2").expect("a2").status_change, None);
        assert_eq!(
            p.remove("a1").expect("a1").status_change,
            Some(OnlineStatus::Offline)
        );
        assert_eq!(
            p.set_status("a3", OnlineStatus::Online),
            Ok(Some(OnlineStatus::Online))
        );
        assert_eq!(
            p.remove("a3").expect("a3").status_change,
            Some(OnlineStatus::Offline)
        );
        assert!(p.is_empty());
    }

    #[test]
    fn one_call_per_user() {
        let p = Presence::new(16);
        p.attach(dev("a1", "a", OnlineStatus::Online))
            .expect("attach");
        p.attach(dev("a2", "a", OnlineStatus::Online))
            .expect("attach");
        let s = p
            .select("a1", "c1".into(), MediaState::default())
            .expect("select");
        assert_eq!(
            s,
            Selected {
                left: None,
                other_devices: vec![]
            }
        );
        let s = p
            .select("a2", "c1".into(), MediaState::default())
            .expect("select");
        assert_eq!(s.other_devices, vec![("a1".into(), "c1".into())]);
        assert_eq!(p.in_channel("c1").len(), 1);
        let s = p
            .select("a2", "c2".into(), MediaState::default())
            .expect("select");
        assert_eq!(s.left.as_deref(), Some("c1"));
        assert!(p.in_channel("c1").is_empty());
        assert_eq!(p.unselect("a2").as_deref(), Ok("c2"));
        assert_eq!(p.unselect("a2"), Err(PresenceError::NotInChannel));
    }

    #[test]
    fn concurrent_selects_on_two_devices_never_leave_two_calls() {
        let p = Arc::new(Presence::new(16));
        for round in 0..200 {
            p.attach(dev("a1", "a", OnlineStatus::Online))
                .expect("attach");
            p.attach(dev("a2", "a", OnlineStatus::Online))
                .expect("attach");
            let handles: Vec<_> = ["a1", "a2"]
                .into_iter()
                .map(|c| {
                    let p = p.clone();
                    std::thread::spawn(move || {
                        p.select(c, format!("c{round}{c}").into(), MediaState::default())
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread").expect("select");
            }
            let in_call = p
                .devices_of("a")
                .iter()
                .filter(|d| d.channel.is_some())
                .count();
            assert_eq!(in_call, 1, "round {round}");
            p.remove("a1");
            p.remove("a2");
        }
        assert!(p.is_empty());
    }

    #[test]
    fn grace_period_and_reconnect() {
        let p = Presence::new(16);
        let now = Instant::now();
        let (short, long) = (Duration::from_secs(5), Duration::from_secs(60));
        p.attach(dev("a1", "a", OnlineStatus::Online))
            .expect("attach");
        p.select(
            "a1",
            "c".into(),
            MediaState {
                microphone: true,
                ..Default::default()
            },
        )
        .expect("select");
        assert_eq!(
            p.disconnect("a1", now, short, long),
            Some(now + long),
            "in a call: the long grace"
        );
        assert!(p.expire_due(now + short).is_empty());
        assert_eq!(
            p.user_status("a"),
            OnlineStatus::Online,
            "still there during grace"
        );
        let restored = p
            .reattach("a1", "a9".into(), "a", "w", "s2".into())
            .expect("restored");
        assert_eq!(restored.channel.as_deref(), Some("c"));
        assert!(restored.media.microphone);
        assert_eq!(
            p.in_channel("c")
                .iter()
                .map(|d| d.conn.to_string())
                .collect::<Vec<_>>(),
            vec!["a9"]
        );
        assert!(
            p.reattach("a1", "a10".into(), "a", "w", "s".into())
                .is_none(),
            "only once"
        );
        // Not reattachable: another user, or a live device.
        assert!(p.reattach("a9", "x".into(), "a", "w", "s".into()).is_none());
        p.disconnect("a9", now, short, long);
        assert!(p.reattach("a9", "x".into(), "b", "w", "s".into()).is_none());
        let gone = p.expire_due(now + long);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].device.channel.as_deref(), Some("c"));
        assert_eq!(gone[0].status_change, Some(OnlineStatus::Offline));
        assert!(p.is_empty());
    }

    #[test]
    fn at_most_n_devices_per_user() {
        let p = Presence::new(2);
        p.attach(dev("1", "a", OnlineStatus::Online)).expect("1");
        p.attach(dev("2", "a", OnlineStatus::Online)).expect("2");
        assert_eq!(
            p.attach(dev("3", "a", OnlineStatus::Online)),
            Err(PresenceError::TooManyConnections(2))
        );
        p.attach(dev("4", "b", OnlineStatus::Online))
            .expect("other user");
    }
}
