//! End-to-end tests of the comet pipes front door (SPEC §5, seed 003): the
//! real `Application` on port 0, real websocket clients speaking the
//! CppComet text protocol on `/ws/...`, and the comet server API under
//! `/api/comet/{devId}`. Every test runs on SQLite and PostgreSQL.

#[path = "../api/common.rs"]
mod common;

mod client;

mod bad_input;
mod commands;
mod connect;
mod js_client;
mod keepalive;
mod scenario;
mod server_api;
mod slow;
mod tenants;
mod users;
