//! Publications and the bus that carries them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

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
pub trait Bus: Send + Sync + 'static {
    /// Sends a publication. Returns once it is handed to the transport, not when
    /// it is delivered.
    fn publish(&self, publication: Publication) -> Result<(), BusError>;
    /// A new subscription to every publication from now on.
    fn subscribe(&self) -> Subscription;
}

/// A bounded stream of publications.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Publication>>,
    lost: Arc<AtomicU64>,
}

impl Subscription {
    /// Waits for the next publication.
    pub async fn recv(&mut self) -> Result<Arc<Publication>, BusRecvError> {
        match self.rx.recv().await {
            Ok(p) => Ok(p),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.lost.fetch_add(n, Ordering::Relaxed);
                Err(BusRecvError::Lagged(n))
            }
            Err(broadcast::error::RecvError::Closed) => Err(BusRecvError::Closed),
        }
    }
}

/// The single-node bus: a bounded broadcast ring shared by all subscribers.
///
/// Capacity is the number of publications a subscriber may fall behind before it
/// is told it lagged; the ring holds `Arc`s, so a publication's bytes exist once
/// however many subscribers read it.
pub struct InProcessBus {
    tx: broadcast::Sender<Arc<Publication>>,
    published: AtomicU64,
    lost: Arc<AtomicU64>,
}

impl InProcessBus {
    /// A bus whose subscribers may lag at most `capacity` publications.
    pub fn new(capacity: usize) -> InProcessBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        InProcessBus {
            tx,
            published: AtomicU64::new(0),
            lost: Arc::new(AtomicU64::new(0)),
        }
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

impl Bus for InProcessBus {
    fn publish(&self, publication: Publication) -> Result<(), BusError> {
        self.published.fetch_add(1, Ordering::Relaxed);
        // `send` fails only when nobody subscribes: then there is nobody to
        // deliver to on this node, which is not a loss.
        let _no_subscribers = self.tx.send(Arc::new(publication));
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            lost: self.lost.clone(),
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

    #[test]
    fn topic_kind() {
        assert_eq!(Topic::new("workspace", "x:y").kind(), "workspace");
        assert_eq!(Topic::new("workspace", "x").as_str(), "workspace:x");
    }
}
