//! The hub: which live connections of this node subscribe to which topic, and
//! fan-out of already-encoded frames to them.
//!
//! Guarantees:
//! - a frame is encoded once by the caller and shared (`Arc`) by every receiver;
//! - `send` never blocks: each connection has a bounded outbound queue, and a
//!   connection whose queue is full is disconnected as a slow consumer and
//!   counted — never silently skipped;
//! - every map entry has a removal path: when a connection unregisters it leaves
//!   every topic, and a topic with no subscribers is removed.
//!
//! Concurrency: one std `Mutex` guards the maps. It is held only for map
//! operations (never across `.await`, never while sending): delivery copies the
//! subscriber list out (one allocation per publication, not per receiver) and
//! sends after releasing the lock.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::Topic;

/// The id of a connection (for Socket.IO, the socket id).
pub type ConnId = Arc<str>;

/// An encoded event, ready for any connection of the protocol that made it.
///
/// A transport that wraps the payload in its own framing (Socket.IO's
/// `42/ns,["event",payload]`) does it once per publication through
/// [`Frame::wire`]: the first receiver encodes, every other receiver of the
/// same kind shares that encoding.
pub struct Frame {
    /// The event name (Socket.IO event).
    pub event: Arc<str>,
    /// The payload, JSON encoded once.
    pub payload: Arc<serde_json::value::RawValue>,
    /// Binary attachments (Socket.IO's), referred to from `payload` by
    /// placeholders `{"_placeholder":true,"num":i}`; `None` for every frame
    /// without binary. Shared by every receiver, never copied per receiver;
    /// only Socket.IO connections receive frames that have them.
    attachments: Option<Arc<[bytes::Bytes]>>,
    /// One transport encoding of this frame, keyed (e.g. by namespace).
    wire: OnceLock<(Box<str>, Box<dyn Any + Send + Sync>)>,
}

impl Frame {
    /// Encodes `payload` once into a frame named `event`.
    pub fn encode<T: serde::Serialize + ?Sized>(
        event: &str,
        payload: &T,
    ) -> Result<Frame, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(payload)?;
        Ok(Frame::new(event.into(), Arc::from(raw)))
    }

    /// A frame of an already encoded payload.
    pub fn new(event: Arc<str>, payload: Arc<serde_json::value::RawValue>) -> Frame {
        Frame {
            event,
            payload,
            attachments: None,
            wire: OnceLock::new(),
        }
    }

    /// The frame with these binary attachments (none if `attachments` is empty).
    pub fn with_attachments(mut self, attachments: Arc<[bytes::Bytes]>) -> Frame {
        self.attachments = (!attachments.is_empty()).then_some(attachments);
        self
    }

    /// Its binary attachments, in placeholder order (empty for most frames).
    pub fn attachments(&self) -> &[bytes::Bytes] {
        self.attachments.as_deref().unwrap_or(&[])
    }

    /// The transport encoding of this frame for `key`, made by `encode` at most
    /// once per frame: the first key asked for is cached and shared by every
    /// later receiver with that key; a receiver with another key (rare: a
    /// frame reaching two Socket.IO namespaces) gets its own encoding.
    pub fn wire<T, F>(&self, key: &str, encode: F) -> T
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce(&Frame) -> T,
    {
        if let Some((k, v)) = self.wire.get() {
            if &**k == key {
                if let Some(v) = v.downcast_ref::<T>() {
                    return v.clone();
                }
            }
            return encode(self);
        }
        let fresh = encode(self);
        // Another receiver may have encoded it meanwhile: theirs and ours are equal.
        let _first_wins = self.wire.set((key.into(), Box::new(fresh.clone())));
        fresh
    }
}

impl Clone for Frame {
    /// A copy shares the payload; its transport cache starts empty.
    fn clone(&self) -> Frame {
        Frame {
            attachments: self.attachments.clone(),
            ..Frame::new(self.event.clone(), self.payload.clone())
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("event", &self.event)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

/// Why a connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Its outbound queue was full.
    SlowConsumer,
    /// The session behind it ended (sign-out, revocation, account removal).
    SessionEnded,
    /// It did not authenticate in time.
    AuthTimeout,
    /// The client asked (logout).
    Logout,
    /// The server is shutting down.
    Shutdown,
}

impl DisconnectReason {
    /// The stable name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::SessionEnded => "session_ended",
            DisconnectReason::AuthTimeout => "auth_timeout",
            DisconnectReason::Logout => "logout",
            DisconnectReason::Shutdown => "shutdown",
        }
    }
}

/// The outbound queue of a connection is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// What the hub needs from a transport's connection.
pub trait Connection: Send + Sync + 'static {
    fn id(&self) -> &ConnId;
    /// Queues a frame without blocking. `Err(QueueFull)` only when the
    /// bounded queue is full; a connection already closing takes the frame
    /// and writes nothing (its cleanup unregisters it), so it is never
    /// counted as a slow consumer.
    fn send(&self, frame: &Frame) -> Result<(), QueueFull>;
    /// Closes the connection with a reason. Idempotent.
    fn close(&self, reason: DisconnectReason);
}

/// A subscriber in a topic's set: its connection, found by the connection's
/// id (it hashes and compares as the id, so `&str` lookups work). An entry is
/// one fat pointer, the size an id alone would take.
#[derive(Clone)]
struct Member(Arc<dyn Connection>);

impl PartialEq for Member {
    fn eq(&self, other: &Member) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for Member {}

impl std::hash::Hash for Member {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let id: &str = self.0.id();
        id.hash(h);
    }
}

impl std::borrow::Borrow<str> for Member {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

#[derive(Default)]
struct Maps {
    conns: HashMap<ConnId, Arc<dyn Connection>>,
    /// Each topic's subscribers, the connections themselves: a publication
    /// walks one set (no second lookup per receiver).
    topics: HashMap<Topic, HashSet<Member>>,
    subscriptions: HashMap<ConnId, HashSet<Topic>>,
}

/// Counters of the hub's work.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    pub connections: u64,
    pub topics: u64,
    pub deliveries: u64,
    pub slow_disconnects: u64,
}

/// Local subscriptions and fan-out.
#[derive(Default)]
pub struct Hub {
    maps: Mutex<Maps>,
    deliveries: AtomicU64,
    slow_disconnects: AtomicU64,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection (subscribed to nothing yet).
    pub fn register(&self, conn: Arc<dyn Connection>) {
        self.maps().conns.insert(conn.id().clone(), conn);
    }

    /// Removes a connection from every topic and forgets it.
    pub fn unregister(&self, id: &str) {
        let mut m = self.maps();
        m.conns.remove(id);
        Self::leave_all_locked(&mut m, id);
    }

    fn leave_all_locked(m: &mut Maps, id: &str) {
        if let Some(topics) = m.subscriptions.remove(id) {
            for t in topics {
                if let Some(set) = m.topics.get_mut(&t) {
                    set.remove(id);
                    if set.is_empty() {
                        m.topics.remove(&t);
                    }
                }
            }
        }
    }

    /// The connection with this id, if registered.
    pub fn connection(&self, id: &str) -> Option<Arc<dyn Connection>> {
        self.maps().conns.get(id).cloned()
    }

    /// Subscribes a registered connection to a topic; unknown connections are ignored.
    pub fn join(&self, id: &str, topic: Topic) {
        let mut m = self.maps();
        let Some(conn) = m.conns.get(id).cloned() else {
            return;
        };
        let conn_id = conn.id().clone();
        // Every subscriber shares the topic's one name allocation.
        let topic = match m.topics.get_key_value(&topic) {
            Some((existing, _)) => existing.clone(),
            None => topic,
        };
        m.topics
            .entry(topic.clone())
            .or_default()
            .insert(Member(conn));
        m.subscriptions.entry(conn_id).or_default().insert(topic);
    }

    pub fn leave(&self, id: &str, topic: &Topic) {
        let mut m = self.maps();
        if let Some(subs) = m.subscriptions.get_mut(id) {
            subs.remove(topic);
            if subs.is_empty() {
                m.subscriptions.remove(id);
            }
        }
        if let Some(set) = m.topics.get_mut(topic) {
            set.remove(id);
            if set.is_empty() {
                m.topics.remove(topic);
            }
        }
    }

    /// Unsubscribes a connection from every topic (it stays registered).
    pub fn leave_all(&self, id: &str) {
        Self::leave_all_locked(&mut self.maps(), id);
    }

    /// Drops a topic: every subscriber leaves it.
    pub fn drop_topic(&self, topic: &Topic) {
        let mut m = self.maps();
        if let Some(set) = m.topics.remove(topic) {
            for member in set {
                let id = member.0.id();
                if let Some(subs) = m.subscriptions.get_mut(id) {
                    subs.remove(topic);
                    if subs.is_empty() {
                        m.subscriptions.remove(id);
                    }
                }
            }
        }
    }

    /// Ids of the connections subscribed to `topic`.
    pub fn subscribers(&self, topic: &Topic) -> Vec<ConnId> {
        self.maps()
            .topics
            .get(topic)
            .map(|s| s.iter().map(|m| m.0.id().clone()).collect())
            .unwrap_or_default()
    }

    /// How many connections subscribe to `topic`.
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        self.maps().topics.get(topic).map_or(0, HashSet::len)
    }

    /// The topics `id` subscribes to.
    pub fn topics_of(&self, id: &str) -> Vec<Topic> {
        self.maps()
            .subscriptions
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends one frame to one connection, with the same slow-consumer policy as `publish`.
    pub fn send_to(&self, conn: &Arc<dyn Connection>, frame: &Frame) -> bool {
        self.send_all(std::slice::from_ref(conn), frame) == 1
    }

    /// Whether `id` subscribes to `topic`.
    pub fn is_subscribed(&self, id: &str, topic: &Topic) -> bool {
        self.maps()
            .subscriptions
            .get(id)
            .is_some_and(|s| s.contains(topic))
    }

    /// Sends `frame` to every subscriber of `topic` except `except`. Returns how
    /// many connections received it. Slow consumers are closed and unregistered.
    pub fn publish(&self, topic: &Topic, frame: &Frame, except: Option<&str>) -> usize {
        let receivers: Vec<Arc<dyn Connection>> = {
            let m = self.maps();
            let Some(set) = m.topics.get(topic) else {
                return 0;
            };
            set.iter()
                .filter(|m| Some(m.0.id().as_ref()) != except)
                .map(|m| m.0.clone())
                .collect()
        };
        self.send_all(&receivers, frame)
    }

    /// Sends `frame` to the union of several topics, each connection once.
    pub fn publish_many(&self, topics: &[Topic], frame: &Frame, except: Option<&str>) -> usize {
        let receivers: Vec<Arc<dyn Connection>> = {
            let m = self.maps();
            let mut seen: HashSet<&str> = HashSet::new();
            topics
                .iter()
                .filter_map(|t| m.topics.get(t))
                .flatten()
                .filter(|m| {
                    let id: &str = m.0.id();
                    Some(id) != except && seen.insert(id)
                })
                .map(|m| m.0.clone())
                .collect()
        };
        self.send_all(&receivers, frame)
    }

    fn send_all(&self, receivers: &[Arc<dyn Connection>], frame: &Frame) -> usize {
        let mut delivered = 0;
        for conn in receivers {
            match conn.send(frame) {
                Ok(()) => delivered += 1,
                Err(QueueFull) => {
                    self.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(conn = %conn.id(), "outbound queue full: disconnecting slow consumer");
                    self.unregister(conn.id());
                    conn.close(DisconnectReason::SlowConsumer);
                }
            }
        }
        self.deliveries
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    pub fn stats(&self) -> HubStats {
        let m = self.maps();
        HubStats {
            connections: m.conns.len() as u64,
            topics: m.topics.len() as u64,
            deliveries: self.deliveries.load(Ordering::Relaxed),
            slow_disconnects: self.slow_disconnects.load(Ordering::Relaxed),
        }
    }

    /// Whether no connection, topic or subscription is left (for leak tests).
    pub fn is_empty(&self) -> bool {
        let m = self.maps();
        m.conns.is_empty() && m.topics.is_empty() && m.subscriptions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn a_frame_is_wrapped_once_per_key_and_shared() {
        let f = Frame::encode("e", &serde_json::json!({"x": 1})).expect("encode");
        let calls = AtomicU64::new(0);
        let wrap = |f: &Frame| {
            calls.fetch_add(1, Ordering::Relaxed);
            Arc::<str>::from(format!("42[\"{}\",{}]", f.event, f.payload.get()))
        };
        let a: Arc<str> = f.wire("/", wrap);
        let b: Arc<str> = f.wire("/", wrap);
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second receiver shares the first encoding"
        );
        assert_eq!(&*a, "42[\"e\",{\"x\":1}]");
        let other: Arc<str> = f.wire("/other", wrap);
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "one encoding per distinct key"
        );
        assert_eq!(f.clone().event, f.event, "a copy keeps event and payload");
    }

    /// A connection with a bounded queue, as a transport would have.
    struct Fake {
        id: ConnId,
        cap: usize,
        queue: Mutex<VecDeque<Frame>>,
        closed: Mutex<Option<DisconnectReason>>,
    }

    impl Fake {
        fn new(id: &str, cap: usize) -> Arc<Fake> {
            Arc::new(Fake {
                id: id.into(),
                cap,
                queue: Mutex::default(),
                closed: Mutex::default(),
            })
        }
        fn received(&self) -> usize {
            self.queue.lock().expect("lock").len()
        }
    }

    impl Connection for Fake {
        fn id(&self) -> &ConnId {
            &self.id
        }
        fn send(&self, frame: &Frame) -> Result<(), QueueFull> {
            let mut q = self.queue.lock().expect("lock");
            if q.len() >= self.cap {
                return Err(QueueFull);
            }
            q.push_back(frame.clone());
            Ok(())
        }
        fn close(&self, reason: DisconnectReason) {
            *self.closed.lock().expect("lock") = Some(reason);
        }
    }

    fn frame() -> Frame {
        Frame::encode("e", &serde_json::json!({})).expect("encode")
    }

    #[test]
    fn fan_out_respects_topics_and_exclusion() {
        let hub = Hub::new();
        let (a, b, c) = (Fake::new("a", 10), Fake::new("b", 10), Fake::new("c", 10));
        for x in [&a, &b, &c] {
            hub.register(x.clone());
        }
        let t = Topic::new("workspace", 1);
        hub.join("a", t.clone());
        hub.join("b", t.clone());
        assert_eq!(hub.publish(&t, &frame(), Some("a")), 1);
        assert_eq!((a.received(), b.received(), c.received()), (0, 1, 0));
        let u = Topic::new("user", 1);
        hub.join("b", u.clone());
        hub.join("c", u.clone());
        assert_eq!(
            hub.publish_many(&[t.clone(), u.clone()], &frame(), None),
            3,
            "b once"
        );
        assert_eq!(b.received(), 2);
    }

    #[test]
    fn frames_are_shared_not_copied() {
        let hub = Hub::new();
        let (a, b) = (Fake::new("a", 10), Fake::new("b", 10));
        hub.register(a.clone());
        hub.register(b.clone());
        let t = Topic::new("t", 1);
        hub.join("a", t.clone());
        hub.join("b", t.clone());
        let f = frame();
        hub.publish(&t, &f, None);
        let pa = a.queue.lock().expect("lock")[0].payload.clone();
        let pb = b.queue.lock().expect("lock")[0].payload.clone();
        assert!(Arc::ptr_eq(&pa, &pb) && Arc::ptr_eq(&pa, &f.payload));
    }

    #[test]
    fn slow_consumer_is_disconnected_and_memory_stays_bounded() {
        let hub = Hub::new();
        let (slow, fast) = (Fake::new("slow", 4), Fake::new("fast", 1_000_000));
        hub.register(slow.clone());
        hub.register(fast.clone());
        let t = Topic::new("t", 1);
        hub.join("slow", t.clone());
        hub.join("fast", t.clone());
        for _ in 0..10_000 {
            hub.publish(&t, &frame(), None);
        }
        assert_eq!(slow.received(), 4, "the queue never grew past its bound");
        assert_eq!(
            *slow.closed.lock().expect("lock"),
            Some(DisconnectReason::SlowConsumer)
        );
        assert_eq!(fast.received(), 10_000, "others kept receiving everything");
        assert_eq!(hub.stats().slow_disconnects, 1);
        assert!(hub.connection("slow").is_none());
    }

    #[test]
    fn maps_empty_after_everyone_leaves() {
        let hub = Hub::new();
        for i in 0..50 {
            let c = Fake::new(&format!("c{i}"), 10);
            hub.register(c);
            for t in 0..5 {
                hub.join(&format!("c{i}"), Topic::new("t", t));
            }
        }
        hub.leave("c0", &Topic::new("t", 0));
        hub.drop_topic(&Topic::new("t", 1));
        for i in 0..50 {
            hub.unregister(&format!("c{i}"));
        }
        assert!(hub.is_empty());
        assert_eq!(hub.stats().topics, 0);
    }
}
