//! `huddle`: the server binary. Thin: parse the command line, load the
//! configuration, hand over to [`huddle::Application`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use huddle::config::{Config, Overrides};
use huddle::{startup, telemetry, Application};

#[derive(Parser)]
#[command(
    name = "huddle",
    version,
    about = "Self-hosted real-time team communication server"
)]
struct Cli {
    /// Configuration file (TOML, or JSON of the seed-004 shape). Default: ./huddle.toml if present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// HTTP listen address (http.listen).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory (data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (database.url).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration (TOML) with secrets masked.
    Config,
    /// Apply database migrations and exit.
    Migrate,
    /// Mint an access token for a user (opens a new session).
    Token {
        /// The user's id.
        #[arg(long)]
        user: String,
    },
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        config_file: cli.config,
        listen: cli.listen,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
    };
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("huddle: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("huddle: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huddle: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve => {
            telemetry::init();
            let open_files = huddle::serve::raise_open_file_limit();
            tracing::debug!(?open_files, "open-file limit");
            let shutdown = shutdown_signal()?;
            let app = Application::build(config).await?;
            let addr = app.local_addr();
            println!("huddle listening on http://{addr}");
            println!("  REST API     http://{addr}/api  (OpenAPI: http://{addr}/api/openapi.json)");
            println!(
                "  health       http://{addr}/healthz  http://{addr}/readyz  http://{addr}/metrics"
            );
            if let Some(ws) = app.users_socket_addr() {
                println!("  users socket ws://{ws}");
            }
            if let Some(ws) = app.comet_addr() {
                println!("  comet pipes  ws://{ws}/ws/...  (also on the main port)");
            }
            tracing::info!(%addr, "serving");
            app.run_until(shutdown).await?;
            tracing::info!("stopped");
        }
        Command::Config => {
            let mut effective = config.masked();
            effective.database.url = Some(effective.database_url());
            print!("{}", toml::to_string_pretty(&effective)?);
        }
        Command::Migrate => {
            let db = startup::open_database(&config).await?;
            db.close().await;
            println!("migrations applied to {}", config.masked().database_url());
        }
        Command::Token { user } => {
            let db = startup::open_database(&config).await?;
            let bus = std::sync::Arc::new(huddle_core::InProcessBus::new(16));
            let domain =
                huddle_domain::Domain::new(db.clone(), bus, startup::domain_config(&config)?)?;
            let creds = domain
                .mint_token(&user)
                .await
                .map_err(|e| format!("cannot mint a token: {e}"))?;
            db.close().await;
            println!("{}", creds.access_token);
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&huddle_gateway::http::openapi())?
            );
        }
    }
    Ok(())
}

/// Registers the SIGINT and SIGTERM handlers now (so that a signal arriving
/// right after start-up is not fatal) and returns a future that completes on
/// either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received, shutting down");
        }
    })
}
