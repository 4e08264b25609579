//! The `ws-bridge` command: parses the command line, sets up logging, and
//! hands over to the library.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, SystemTime},
};

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use ws_bridge::{
    Config,
    options::ServeArgs,
    policy::Host,
    token::{self, Binding, TokenKeys},
    wire::TlsMode,
};

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
    /// The session's TLS mode the token is for: implicit, starttls or none.
    #[arg(long, value_parser = parse_tls)]
    tls: TlsMode,
    /// For end-to-end sessions (TLS in the client, the bridge relaying
    /// TCP; wire v2 `endToEnd: true`). Such a token opens no bridge-side
    /// session, and a token without it no end-to-end one.
    #[arg(long)]
    end_to_end: bool,
    /// How long the token is valid (e.g. 10m, 1h); at most token_max_ttl.
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

fn parse_tls(s: &str) -> Result<TlsMode, String> {
    TlsMode::parse(s).ok_or_else(|| format!("{s:?}: expected implicit, starttls or none"))
}

fn check_config(args: ServeArgs) -> ExitCode {
    let checked = args.resolve().and_then(|options| {
        ws_bridge::logging::filter(&options.log_level)?;
        let config = Config::build(options.settings.clone()).map_err(|e| e.to_string())?;
        Ok((options, config.warnings))
    });
    match checked {
        Ok((options, warnings)) => {
            for warning in warnings {
                eprintln!("ws-bridge: warning: {warning}");
            }
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
    // token_max_ttl (and the secret file, unless given) from the
    // environment and the config file, as the bridge would read them.
    let serve = ServeArgs { config: args.config, ..ServeArgs::default() };
    let settings = match serve.resolve() {
        Ok(options) => options.settings,
        Err(e) => {
            eprintln!("ws-bridge token: {e}");
            return ExitCode::from(2);
        }
    };
    let max_ttl = std::env::var("WS_BRIDGE_TOKEN_MAX_TTL")
        .ok()
        .map(|v| ws_bridge::options::parse_duration(&v))
        .transpose()
        .map(|env| env.unwrap_or(settings.token_max_ttl));
    let max_ttl = match max_ttl {
        Ok(max_ttl) => max_ttl,
        Err(e) => {
            eprintln!("ws-bridge token: WS_BRIDGE_TOKEN_MAX_TTL: {e}");
            return ExitCode::from(2);
        }
    };
    if args.ttl > max_ttl {
        eprintln!(
            "ws-bridge token: --ttl {} is longer than token_max_ttl ({}): the bridge would refuse the token",
            humantime::format_duration(args.ttl),
            humantime::format_duration(max_ttl)
        );
        return ExitCode::from(2);
    }
    let secret_file = args.token_secret_file.or(settings.token_secret_file);
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
    if let Some(warning) = token::permission_warning(&secret_file) {
        eprintln!("ws-bridge token: warning: {warning}");
    }
    if args.end_to_end && args.tls == TlsMode::None {
        eprintln!("ws-bridge token: --end-to-end needs --tls implicit or starttls");
        return ExitCode::from(2);
    }
    let binding = Binding { tls: args.tls, end_to_end: args.end_to_end };
    let Some(host) = Host::parse(&args.host) else {
        eprintln!("ws-bridge token: --host {:?} is not a host name or address", args.host);
        return ExitCode::from(2);
    };
    println!("{}", keys.mint(&host, args.port, binding, SystemTime::now() + args.ttl));
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
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ws-bridge: cannot listen on {}: {e}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("ws-bridge: cannot listen on {addr} (metrics_listen): {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let bound = listener.local_addr().unwrap_or(options.listen);
    {
        // Tests and scripts read this line to find the port.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "ws-bridge listening on {bound}");
        if let Some(metrics) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            let _ = writeln!(stdout, "ws-bridge metrics on {metrics}");
        }
        let _ = stdout.flush();
    }
    tracing::info!(%bound, tls = config.server_tls.is_some(), "listening");
    match ws_bridge::serve_with_metrics(listener, metrics_listener, config, shutdown_signal()).await {
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
