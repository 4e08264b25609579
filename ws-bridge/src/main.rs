//! The `ws-bridge` command: parses the command line, sets up logging, and
//! hands over to the library.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, SystemTime},
};

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use ws_bridge::{Config, options::ServeArgs, policy::Host, token::TokenKeys};

/// Relays WebSocket sessions from pop3-wasm clients to POP3 servers.
///
/// Without a subcommand it serves, with the flags below.
#[derive(Debug, Parser)]
#[command(name = "ws-bridge", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint an access token for one destination (prints it on stdout).
    Token(TokenArgs),
    /// Check a configuration and print the effective settings (no secrets).
    /// Exits 0 when usable, 2 when not.
    CheckConfig(Box<ServeArgs>),
    /// Run a demo POP3 mailbox on loopback, the bridge allowing it, and the
    /// web pages with its settings filled in (prints the URL).
    Demo(ws_bridge::demo::DemoArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The POP3 server the token is for.
    #[arg(long)]
    host: String,
    /// Its port.
    #[arg(long)]
    port: u16,
    /// How long the token is valid (e.g. 10m, 1h, 7d).
    #[arg(long, default_value = "1h", value_parser = ws_bridge::options::parse_duration)]
    ttl: Duration,
    /// The secret file (as --token-secret-file when serving).
    #[arg(long, value_name = "FILE", env = "WS_BRIDGE_TOKEN_SECRET_FILE")]
    token_secret_file: Option<std::path::PathBuf>,
    /// Or take token_secret_file from this config file.
    #[arg(long, value_name = "FILE", env = "WS_BRIDGE_CONFIG")]
    config: Option<std::path::PathBuf>,
}

/// jemalloc with its background purging thread: after a burst of sessions
/// the bridge's memory returns to its idle figure (glibc's allocator kept
/// about 20 MiB of a 1000-session burst for good).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Token(args)) => token(args),
        Some(Command::CheckConfig(args)) => check_config(*args),
        Some(Command::Demo(args)) => ws_bridge::demo::main(args),
    }
}

fn check_config(args: ServeArgs) -> ExitCode {
    let checked = args.resolve().and_then(|options| {
        ws_bridge::logging::filter(&options.log_level)?;
        Config::build(options.settings.clone()).map_err(|e| e.to_string())?;
        Ok(options)
    });
    match checked {
        Ok(options) => {
            print!("{}", options.describe());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ws-bridge: {e}");
            ExitCode::from(2)
        }
    }
}

fn token(args: TokenArgs) -> ExitCode {
    let secret_file = match (args.token_secret_file, args.config) {
        (Some(file), _) => Some(file),
        (None, config) => {
            let serve = ServeArgs { config, ..ServeArgs::default() };
            serve.resolve().ok().and_then(|o| o.settings.token_secret_file)
        }
    };
    let Some(secret_file) = secret_file else {
        eprintln!("ws-bridge token: give --token-secret-file (or --config with token_secret_file)");
        return ExitCode::from(2);
    };
    let keys = match TokenKeys::from_file(&secret_file) {
        Ok(keys) => keys,
        Err(e) => {
            eprintln!("ws-bridge token: {}: {e}", secret_file.display());
            return ExitCode::from(2);
        }
    };
    let Some(host) = Host::parse(&args.host) else {
        eprintln!("ws-bridge token: --host {:?} is not a host name or address", args.host);
        return ExitCode::from(2);
    };
    println!("{}", keys.mint(&host, args.port, SystemTime::now() + args.ttl));
    ExitCode::SUCCESS
}

#[tokio::main]
async fn serve(args: ServeArgs) -> ExitCode {
    let options = match args.resolve() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ws-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ws_bridge::logging::init(&options.log_level, options.log_format) {
        eprintln!("ws-bridge: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::build(options.settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ws-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ws-bridge: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(options.listen);
    {
        // Tests and scripts read this line to find the port.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "ws-bridge listening on {bound}");
        let _ = stdout.flush();
    }
    tracing::info!(%bound, tls = config.server_tls.is_some(), "listening");
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
