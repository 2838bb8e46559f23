//! `huddle-bench`: drives a server over loopback and prints what it measured.
//! Scenarios so far: `comet-fanout` (N subscribers on one comet pipe, one
//! publisher at R msgs/s: deliveries/s, latency percentiles, lost and
//! duplicated messages, server and client CPU) and `sio-idle` (N authenticated
//! Socket.IO websocket connections held open: server RSS per connection).

mod fanout;
mod idle;
mod procstat;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "huddle-bench", about = "Load generator for huddle")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N subscribers on one `web_` pipe, one publisher at R messages/s for T seconds.
    CometFanout(fanout::Args),
    /// N authenticated Socket.IO websocket connections on namespace `/`, held open.
    SioIdle(idle::Args),
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
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
