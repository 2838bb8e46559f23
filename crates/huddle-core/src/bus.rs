//! Publications and the bus that carries them.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};

/// Where a publication is addressed: `workspace:{id}`, `user:{id}`,
/// `channel:{id}`, `conversation:{id}`, `pipe:{dev}:{name}`... The core treats the
/// name as opaque; the domain decides what a topic means.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Topic(Arc<str>);

impl Topic {
    /// A topic `kind:id`.
    pub fn new(kind: &str, id: impl fmt::Display) -> Topic {
        Topic(format!("{kind}:{id}").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `:`.
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(k, _)| k)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message on the bus: a topic, an event name and a payload encoded once
/// (JSON). Plain data, so a cluster bus can carry it as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub topic: Topic,
    /// The event's name, e.g. `channel_created`.
    pub event: String,
    /// The encoded event (JSON text).
    pub payload: Bytes,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus was shut down.
    #[error("bus closed")]
    Closed,
    /// A cluster backend could not be reached.
    #[error("bus backend unavailable: {0}")]
    Unavailable(String),
}

/// What a subscriber gets instead of a publication.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusRecvError {
    /// The subscriber fell more than the bus capacity behind and lost this many
    /// publications; it must resynchronise (e.g. disconnect its clients).
    #[error("subscriber lagged and lost {0} publications")]
    Lagged(u64),
    /// The bus was shut down; no more publications will come.
    #[error("bus closed")]
    Closed,
}

/// Carries publications to every subscriber of this node (and, in a cluster
/// implementation, of every node).
///
/// Contract: `publish` never blocks on a slow subscriber; ordering is kept per
/// publisher and topic; a subscriber sees every publication made after it
/// subscribed unless it lags, which it is told.
///
/// Flow control: a publisher that can wait awaits [`Bus::room`] before
/// `publish`. While this node's slowest subscriber is more than half its
/// capacity behind, `room` waits (bounded) for it to catch up, so a burst of
/// state changes (a whole workspace reconnecting) slows its publishers down
/// instead of making the delivery lag and disconnect every socket. Code that
/// runs inside a subscriber's own task (see [`as_subscriber`]) never waits:
/// it is what makes room.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends a publication. Returns once it is handed to the transport, not when
    /// it is delivered.
    fn publish(&self, publication: Publication) -> Result<(), BusError>;
    /// Waits until a publication would not push a subscriber of this node
    /// towards lagging, or until the bus's wait bound passes (then the
    /// publication goes out anyway, and a subscriber that does lag is told).
    /// Returns at once inside a subscriber's task.
    async fn room(&self);
    /// A new subscription to every publication from now on.
    fn subscribe(&self) -> Subscription;
}

tokio::task_local! {
    /// Set for the task of a bus subscriber: its publications never wait for room.
    static SUBSCRIBER: ();
}

/// Runs `task` as a bus subscriber's task: the publications it makes (a
/// delivery that ends a session publishes presence changes, say) never wait
/// for room on the bus, since waiting on itself would never end.
pub fn as_subscriber<F: Future>(task: F) -> impl Future<Output = F::Output> {
    SUBSCRIBER.scope((), task)
}

fn in_subscriber() -> bool {
    SUBSCRIBER.try_with(|_| ()).is_ok()
}

/// A bounded stream of publications.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Publication>>,
    lost: Arc<AtomicU64>,
    room: Arc<Room>,
}

impl Subscription {
    /// Waits for the next publication.
    pub async fn recv(&mut self) -> Result<Arc<Publication>, BusRecvError> {
        let got = self.rx.recv().await;
        self.room.freed();
        match got {
            Ok(p) => Ok(p),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.lost.fetch_add(n, Ordering::Relaxed);
                Err(BusRecvError::Lagged(n))
            }
            Err(broadcast::error::RecvError::Closed) => Err(BusRecvError::Closed),
        }
    }
}

/// Publishers waiting for the slowest subscriber to catch up.
struct Room {
    notify: Notify,
    /// Publishers inside `room` now: a subscriber's read wakes one of them.
    waiting: AtomicUsize,
}

impl Room {
    /// A subscriber read a publication: one waiting publisher re-checks.
    fn freed(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.notify.notify_one();
        }
    }
}

/// Counts a publisher in `Room::waiting` for as long as it waits, cancelled or not.
struct Waiting<'a>(&'a Room);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The single-node bus: a bounded broadcast ring shared by all subscribers.
///
/// Capacity is the number of publications a subscriber may fall behind before it
/// is told it lagged; the ring holds `Arc`s, so a publication's bytes exist once
/// however many subscribers read it. [`Bus::room`] waits while the slowest
/// subscriber is half the capacity behind, for at most `max_wait`.
pub struct InProcessBus {
    tx: broadcast::Sender<Arc<Publication>>,
    /// Backlog at which `room` starts waiting: half the capacity.
    high_water: usize,
    max_wait: Duration,
    room: Arc<Room>,
    published: AtomicU64,
    lost: Arc<AtomicU64>,
    waits: AtomicU64,
    overruns: AtomicU64,
}

impl InProcessBus {
    /// How long `room` waits by default before publishing anyway.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

    /// A bus whose subscribers may lag at most `capacity` publications, whose
    /// publishers wait at most [`InProcessBus::DEFAULT_MAX_WAIT`] for room.
    pub fn new(capacity: usize) -> InProcessBus {
        InProcessBus::with_max_wait(capacity, InProcessBus::DEFAULT_MAX_WAIT)
    }

    /// A bus whose subscribers may lag at most `capacity` publications, whose
    /// publishers wait at most `max_wait` for room.
    pub fn with_max_wait(capacity: usize, max_wait: Duration) -> InProcessBus {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        InProcessBus {
            tx,
            high_water: capacity.div_ceil(2),
            max_wait,
            room: Arc::new(Room {
                notify: Notify::new(),
                waiting: AtomicUsize::new(0),
            }),
            published: AtomicU64::new(0),
            lost: Arc::new(AtomicU64::new(0)),
            waits: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
        }
    }

    /// Times a publisher had to wait for room so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Times a publisher waited the whole bound and published anyway.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }

    fn has_room(&self) -> bool {
        self.tx.len() < self.high_water
    }

    /// Publications accepted so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Publications lost by lagging subscribers so far (all subscribers summed).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    fn publish(&self, publication: Publication) -> Result<(), BusError> {
        self.published.fetch_add(1, Ordering::Relaxed);
        // `send` fails only when nobody subscribes: then there is nobody to
        // deliver to on this node, which is not a loss.
        let _no_subscribers = self.tx.send(Arc::new(publication));
        Ok(())
    }

    async fn room(&self) {
        if self.has_room() || in_subscriber() {
            return;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.room.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.room);
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            let notified = self.room.notify.notified();
            if self.has_room() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.overruns.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    backlog = self.tx.len(),
                    waited_ms = self.max_wait.as_millis() as u64,
                    "a bus subscriber is not catching up; publishing anyway"
                );
                return;
            }
        }
    }

    fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            lost: self.lost.clone(),
            room: self.room.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(i: u32) -> Publication {
        Publication {
            topic: Topic::new("t", 1),
            event: "e".into(),
            payload: Bytes::from(i.to_string()),
        }
    }

    #[tokio::test]
    async fn subscribers_see_publications_in_order() {
        let bus = InProcessBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        for i in 0..5 {
            bus.publish(publication(i)).expect("publish");
        }
        for i in 0..5 {
            assert_eq!(
                a.recv().await.expect("a").payload,
                Bytes::from(i.to_string())
            );
            assert_eq!(
                b.recv().await.expect("b").payload,
                Bytes::from(i.to_string())
            );
        }
        assert_eq!(bus.published(), 5);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_what_it_lost() {
        let bus = InProcessBus::new(4);
        let mut slow = bus.subscribe();
        for i in 0..10 {
            bus.publish(publication(i)).expect("publish");
        }
        assert_eq!(slow.recv().await, Err(BusRecvError::Lagged(6)));
        assert_eq!(slow.recv().await.expect("next").payload, Bytes::from("6"));
        assert_eq!(bus.lost(), 6);
    }

    #[tokio::test]
    async fn publication_is_shared_not_copied() {
        let bus = InProcessBus::new(4);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(publication(1)).expect("publish");
        let (pa, pb) = (a.recv().await.expect("a"), b.recv().await.expect("b"));
        assert!(Arc::ptr_eq(&pa, &pb));
    }

    #[tokio::test]
    async fn a_publisher_waits_for_room_until_the_slowest_subscriber_reads() {
        let bus = InProcessBus::new(4);
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        bus.room().await;
        bus.publish(publication(0)).expect("publish");
        bus.room().await;
        bus.publish(publication(1)).expect("publish");
        fast.recv().await.expect("fast 0");
        fast.recv().await.expect("fast 1");
        // Two of four behind: the next publisher waits for `slow`.
        let room = bus.room();
        tokio::pin!(room);
        assert!(futures_poll_once(room.as_mut()).await.is_pending());
        assert_eq!(bus.waits(), 1);
        slow.recv().await.expect("slow 0");
        room.await;
        assert_eq!(bus.overruns(), 0);
        assert_eq!(bus.lost(), 0);
    }

    #[tokio::test]
    async fn a_subscriber_task_never_waits_for_room() {
        let bus = Arc::new(InProcessBus::new(2));
        let _stuck = bus.subscribe();
        bus.publish(publication(0)).expect("publish");
        let b = bus.clone();
        as_subscriber(async move { b.room().await }).await;
        assert_eq!(bus.waits(), 0);
    }

    #[tokio::test]
    async fn the_wait_is_bounded_and_a_lagging_subscriber_is_still_told() {
        let bus = InProcessBus::with_max_wait(2, Duration::from_millis(20));
        let mut stuck = bus.subscribe();
        for i in 0..3 {
            bus.room().await;
            bus.publish(publication(i)).expect("publish");
        }
        assert_eq!(bus.overruns(), 2);
        assert_eq!(stuck.recv().await, Err(BusRecvError::Lagged(1)));
    }

    /// Polls a future once: whether it is ready now.
    async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> std::task::Poll<F::Output> {
        std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await
    }

    #[test]
    fn topic_kind() {
        assert_eq!(Topic::new("workspace", "x:y").kind(), "workspace");
        assert_eq!(Topic::new("workspace", "x").as_str(), "workspace:x");
    }
}
