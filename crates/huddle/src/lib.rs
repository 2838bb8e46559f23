//! The huddle server as a library: configuration and the [`Application`] that
//! `main` runs and the integration tests start on port 0.

pub mod config;
pub mod datadir;
pub mod serve;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
