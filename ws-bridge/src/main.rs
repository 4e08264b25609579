//! The `ws-bridge` command: parses the command line, sets up logging, and
//! hands over to the library.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use ws_bridge::{Config, Settings, Timeouts};

/// Relays WebSocket sessions from pop3-wasm clients to POP3 servers.
#[derive(Debug, Parser)]
#[command(name = "ws-bridge", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Allow only these targets (repeatable). Without any, every public
    /// host on ports 110 and 995 is allowed. IPv6 as [::1]:110.
    #[arg(long = "allow", value_name = "HOST:PORT[,PORT]")]
    allow: Vec<String>,
    /// Extra CA certificates (PEM) trusted for upstream TLS (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// Accept WebSocket requests only from these origins (repeatable).
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,
    /// Serve static files from this directory.
    #[arg(long, value_name = "DIR")]
    serve: Option<PathBuf>,
    /// Concurrent sessions at most.
    #[arg(long, default_value_t = 1024)]
    max_sessions: usize,
    /// Log filter (e.g. info, debug, ws_bridge=debug). Logs go to stderr.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(&cli.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("ws-bridge: --log-level {:?}: {e}", cli.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let settings = Settings {
        allow: cli.allow,
        ca_files: cli.ca_files,
        origins: cli.origins,
        serve: cli.serve,
        max_sessions: cli.max_sessions,
        timeouts: Timeouts::default(),
    };
    let config = match Config::build(settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ws-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ws-bridge: cannot listen on {}: {e}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(cli.listen);
    {
        // Tests and scripts read this line to find the port.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "ws-bridge listening on {bound}");
        let _ = stdout.flush();
    }
    tracing::info!(%bound, "listening");
    match ws_bridge::serve(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
