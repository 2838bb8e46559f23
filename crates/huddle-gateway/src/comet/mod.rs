//! The comet front door (seed 003, SPEC §5): the `/ws/...` websocket of the
//! comet-server protocol (`ws.rs`), served on the main port and on
//! `comet.listen`, and its backend API over HTTP (`api.rs`). Pipes are topics
//! (`pipe:{dev}:{name}`) of the same core hub as the Socket.IO namespaces; a
//! user's private `msg` pipe is `comet-user:{dev}:{user}`.

mod api;
mod url;
mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use huddle_core::{BusRecvError, ConnId, Hub, Topic};
use huddle_domain::{Domain, DomainEvent};

pub use api::routes as api_routes;
pub use ws::router as ws_router;

/// Entry points for the fuzz targets in `fuzz/` (not an API): the parsers a
/// client reaches, without a server around them.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a connection URL's tail (after `/ws/`) as an upgrade does.
    pub fn connect_url(rest: &str) -> bool {
        super::url::parse(rest).is_ok()
    }

    /// Reads a command frame as a connection does: `None` for an unknown
    /// command, otherwise whether it is answered (rather than refused).
    pub fn command(text: &str) -> Option<bool> {
        super::ws::parse_command(text).map(|r| r.is_ok())
    }
}

/// Transport settings of the comet websocket.
#[derive(Debug, Clone)]
pub struct CometSettings {
    /// Largest inbound frame in bytes (64 KiB); larger closes with 1009.
    pub max_frame: usize,
    /// Outbound queue per connection, in bytes; full → disconnected as slow.
    pub outbound_queue_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// Origins allowed to connect (regular expressions); empty: any.
    pub origins: Vec<regex_lite::Regex>,
    /// Per dev id, the origins allowed for that tenant (replacing `origins`).
    pub dev_origins: HashMap<String, Vec<regex_lite::Regex>>,
}

/// Who a comet connection is.
#[derive(Debug, Clone)]
pub(crate) struct CometCtx {
    pub user_id: i64,
    pub uuid: String,
}

/// The comet front door's shared state.
pub struct CometGateway {
    pub(crate) domain: Arc<Domain>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) settings: CometSettings,
    /// Live connections. Std `Mutex`, never held across `.await`.
    conns: Mutex<HashMap<ConnId, CometCtx>>,
}

pub(crate) fn pipe_topic(dev: &str, pipe: &str) -> Topic {
    Topic::new("pipe", format_args!("{dev}:{pipe}"))
}

pub(crate) fn user_topic(dev: &str, user: i64) -> Topic {
    Topic::new("comet-user", format_args!("{dev}:{user}"))
}

/// The wire shape of a delivered message.
pub(crate) fn wire(
    pipe: &str,
    event: &str,
    data: &serde_json::Value,
    user_id: i64,
    extra: &[(&str, serde_json::Value)],
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "data": data,
        "pipe": pipe,
        "event": event,
        "user_id": user_id,
        "message_send_time": chrono::Utc::now().timestamp(),
    });
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    v
}

impl CometGateway {
    pub fn new(domain: Arc<Domain>, hub: Arc<Hub>, settings: CometSettings) -> Arc<CometGateway> {
        Arc::new(CometGateway {
            domain,
            hub,
            settings,
            conns: Mutex::default(),
        })
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, CometCtx>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Authorised subscribers of a pipe: (user id, uuid).
    pub(crate) fn authorised_in(&self, dev: &str, pipe: &str) -> Vec<(i64, String)> {
        let ids = self.hub.subscribers(&pipe_topic(dev, pipe));
        let conns = self.conns();
        ids.iter()
            .filter_map(|id| conns.get(id))
            .filter(|c| c.user_id > 0)
            .map(|c| (c.user_id, c.uuid.clone()))
            .collect()
    }

    /// Closes every connection with a reason (shutdown: close code 1001).
    pub fn close_all(&self, reason: huddle_core::DisconnectReason) {
        let ids: Vec<ConnId> = self.conns().keys().cloned().collect();
        for id in ids {
            if let Some(conn) = self.hub.connection(&id) {
                conn.close(reason);
            }
        }
    }

    /// Live comet connections (metrics).
    pub fn connections(&self) -> usize {
        self.conns().len()
    }

    /// Delivers comet publications from the bus: each encoded once, then fanned
    /// out by the hub.
    pub fn spawn_delivery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut sub = me.domain.bus().subscribe();
        tokio::spawn(huddle_core::as_subscriber(async move {
            loop {
                let p = match sub.recv().await {
                    Ok(p) => p,
                    Err(BusRecvError::Lagged(n)) => {
                        tracing::error!(lost = n, "comet delivery lagged behind the bus");
                        continue;
                    }
                    Err(BusRecvError::Closed) => return,
                };
                if !p.event.starts_with("comet_") {
                    continue;
                }
                let Ok(event) = serde_json::from_slice::<DomainEvent>(&p.payload) else {
                    continue;
                };
                match event {
                    DomainEvent::CometPipe {
                        dev_id,
                        pipe,
                        event,
                        data,
                        user_id,
                        origin,
                    } => {
                        if let Ok(f) = huddle_core::Frame::encode(
                            "comet",
                            &wire(&pipe, &event, &data, user_id, &[]),
                        ) {
                            me.hub
                                .publish(&pipe_topic(&dev_id, &pipe), &f, origin.as_deref());
                        }
                    }
                    DomainEvent::CometUserMessage {
                        dev_id,
                        user_id,
                        event,
                        data,
                    } => {
                        if let Ok(f) =
                            huddle_core::Frame::encode("comet", &wire("msg", &event, &data, 0, &[]))
                        {
                            me.hub.publish(&user_topic(&dev_id, user_id), &f, None);
                        }
                    }
                    _ => {}
                }
            }
        }))
    }
}
