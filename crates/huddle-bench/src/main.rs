//! `huddle-bench`: drives a server over loopback and prints what it measured,
//! ending each scenario with one `RESULT scenario=... key=value ...` line.
//!
//! - `comet-fanout`: N subscribers on one comet pipe, one publisher at R msgs/s.
//! - `sio-idle`: N Socket.IO connections held open: server RSS per connection
//!   (spread over child processes and 127.0.0.x source addresses).
//! - `sio-fanout`: N Socket.IO subscribers in one room (huddle: a voice call),
//!   one publisher at R msgs/s: deliveries/s, latency percentiles, losses.
//! - `sio-echo`: C request/ack loops: round trips/s and latency.
//! - `sio-chat`: K writers posting chats with acks (huddle's community
//!   namespace), then the stored ids checked to be exactly 1..M.
//!
//! `--target peer` drives the peer servers of `bench/peers/` (socket.io on
//! Node, socketioxide); scripts/bench runs everything against huddle and the
//! peers alternately.

mod api;
mod chat;
mod echo;
mod fanout;
mod idle;
mod measure;
mod procstat;
mod report;
mod sio;
mod sio_fanout;
mod wsclient;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "huddle-bench",
    about = "Load generator for huddle and its peers"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N subscribers on one `web_` pipe, one publisher at R messages/s for T seconds.
    CometFanout(fanout::Args),
    /// N Socket.IO websocket connections on namespace `/`, held open.
    SioIdle(idle::Args),
    /// N Socket.IO subscribers in one room, one publisher at R messages/s for T seconds.
    SioFanout(sio_fanout::Args),
    /// C concurrent Socket.IO request/ack loops for T seconds.
    SioEcho(echo::Args),
    /// K writers posting chats through huddle's community namespace, with acks.
    SioChat(chat::Args),
    /// Internal: a child process of `sio-idle` holding its share of connections.
    #[command(hide = true)]
    SioIdleChild(idle::ChildArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.scenario {
            Scenario::CometFanout(a) => fanout::run(a).await,
            Scenario::SioIdle(a) => idle::run(a).await,
            Scenario::SioFanout(a) => sio_fanout::run(a).await,
            Scenario::SioEcho(a) => echo::run(a).await,
            Scenario::SioChat(a) => chat::run(a).await,
            Scenario::SioIdleChild(a) => idle::child(a).await,
        }
    });
    // Held connections may still have tasks running: do not wait for them.
    rt.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
