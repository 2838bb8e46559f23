//! huddle's real-time core. It knows nothing of HTTP, SQL or Socket.IO: it moves
//! already-encoded publications between the parts of one node (and, through a
//! [`Bus`] implementation such as Redis, between nodes), keeps the local
//! subscriptions ([`Hub`]) and who is connected ([`Presence`]).
//!
//! Guarantees every [`Bus`] implementation honours:
//! - a publication is encoded once by its publisher and shared by reference;
//! - delivery is at-most-once per node and ordered per topic;
//! - every queue is bounded, and a subscriber that falls behind is *told* how many
//!   publications it lost ([`BusRecvError::Lagged`]) — nothing is dropped silently.

pub mod addr;
pub mod bus;
pub mod caps;
pub mod hub;
pub mod presence;
pub mod rate;
pub mod refusals;

pub use addr::client_key;
pub use bus::{
    as_subscriber, Bus, BusError, BusRecvError, InProcessBus, Publication, Subscription, Topic,
};
pub use caps::{AddressCaps, CapExceeded, Place};
pub use hub::{ConnId, Connection, DisconnectReason, Frame, Hub, QueueFull};
pub use presence::{Device, MediaState, OnlineStatus, Presence, PresenceError};
pub use rate::TokenBucket;
pub use refusals::{Refusal, Refusals};
