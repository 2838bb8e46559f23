//! End-to-end tests of the HTTP API: the real `Application` on port 0, real
//! HTTP, a fresh SQLite directory or PostgreSQL schema per test. Every test runs
//! on both engines (`both_engines!`); PostgreSQL must be reachable — a missing
//! server fails the run, it is never skipped.

mod common;

mod accounts;
mod bad_input;
mod channels;
mod chat;
mod community_join;
mod events;
mod limits;
mod ops;
mod permissions;
mod socket_race;
mod workspaces;
