//! The HTTP face: the listener (plain or TLS), `/pop3` (WebSocket
//! sessions), `/healthz`, `/metrics`, static files, and graceful shutdown.
//!
//! ```text
//!  accept ─► caps ─► (TLS handshake, in the connection's task) ─► hyper (HTTP/1.1, upgrades; see conn)
//!        ─► axum router ─► security headers on every response
//!           ├ /pop3: X-Forwarded-For, Origin, subprotocol, admission ─► relay::run
//!           ├ /bridge.json: the wire versions spoken and whether end-to-end TLS is required
//!           ├ /healthz, /metrics (here, or only on metrics_listen; bearer token optional)
//!           └ static files from --serve: no dotfiles, nothing outside the directory
//! ```
//!
//! Shutdown: stop accepting, let HTTP requests finish, give sessions
//! `shutdown_timeout` to end by themselves, then close the rest (1001).

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::{Component, Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{
        ConnectInfo, Request, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
};
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, info, warn};

use crate::{
    config::{CLIENT_READ_BUFFER, Config, UPSTREAM_CHUNK},
    conn::{self, Activity, Watched},
    forwarded,
    limits::{ConnectionLimiter, Limiter},
    metrics::{Metrics, Reject},
    relay,
    wire::{SUBPROTOCOL_V1, SUBPROTOCOL_V2, Version},
};

/// How long closed sessions get to say goodbye after the shutdown deadline.
const FINAL_GRACE: Duration = Duration::from_secs(5);

/// What every request and session shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
    connections: Arc<ConnectionLimiter>,
    /// `--serve`, with symbolic links resolved.
    serve_root: Option<PathBuf>,
    next_id: AtomicU64,
    /// Becomes `true` when running sessions must close now.
    close_now: watch::Receiver<bool>,
    /// Signalled whenever the last running session ends.
    drained: Notify,
}

impl AppState {
    fn new(config: Config, close_now: watch::Receiver<bool>) -> Arc<AppState> {
        let serve_root = config.serve.as_ref().map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.clone()));
        Arc::new(AppState {
            limiter: Limiter::new(config.limits),
            connections: ConnectionLimiter::new(&config.limits),
            serve_root,
            config,
            metrics: Arc::new(Metrics::default()),
            next_id: AtomicU64::new(1),
            close_now,
            drained: Notify::new(),
        })
    }

    fn active(&self) -> i64 {
        self.metrics.sessions_active.load(Ordering::SeqCst)
    }

    async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.active() <= 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A running session, counted in `ws_bridge_sessions_active` for as long
/// as it lives: dropping it (at the end, or when the session's task
/// panics) takes it off and wakes a shutdown waiting for the last one.
struct ActiveSession<'a>(&'a AppState);

impl<'a> ActiveSession<'a> {
    fn new(state: &'a AppState) -> Self {
        state.metrics.sessions_active.fetch_add(1, Ordering::SeqCst);
        state.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
        ActiveSession(state)
    }
}

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        if self.0.metrics.sessions_active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Serves until `shutdown` completes, then shuts down gracefully (see the
/// module docs) and returns. With `metrics_listen` set, binds it and
/// serves `/metrics` there only.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let metrics = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    serve_with_metrics(listener, metrics, config, shutdown).await
}

/// [`serve`], with `/metrics` on `metrics_listener` (already bound) when
/// one is given, and then not on `listener`.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (close_tx, close_rx) = watch::channel(false);
    let state = AppState::new(config, close_rx);
    let separate_metrics = metrics_listener.is_some();
    let router = routes(state.clone(), !separate_metrics);
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(graceful);
    let metrics_task = metrics_listener.map(|metrics_listener| {
        let router = metrics_routes(state.clone());
        let state = state.clone();
        let graceful = graceful.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            // Its own, small caps: the scraper is one client.
            let limits =
                crate::Limits { max_connections: 16, max_connections_per_ip: 16, ..state.config.limits };
            let connections = ConnectionLimiter::new(&limits);
            accept_loop(&metrics_listener, &state, &connections, router, None, &graceful, stop).await;
        })
    });
    let tls = state.config.server_tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let stop = async {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::pin!(stop);
    tokio::select! {
        () = accept_loop(&listener, &state, &state.connections, router, tls, &graceful, stop_rx) => {}
        () = &mut stop => {}
    }
    drop(listener);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let graceful = Arc::into_inner(graceful).expect("the accept loops are done");

    let deadline = state.config.timeouts.shutdown;
    info!(
        sessions = state.active(),
        deadline_s = deadline.as_secs_f64(),
        "shutting down: no new connections"
    );
    let drained = tokio::time::timeout(deadline, async {
        graceful.shutdown().await;
        state.wait_drained().await;
    })
    .await;
    if drained.is_err() {
        info!(sessions = state.active(), "shutdown deadline passed: closing the remaining sessions");
        let _ = close_tx.send(true);
        let _ = tokio::time::timeout(FINAL_GRACE, state.wait_drained()).await;
    }
    info!("stopped");
    Ok(())
}

/// Accepts connections on `listener` until `stop` turns true, each in its
/// own task, within the connection caps.
async fn accept_loop(
    listener: &TcpListener,
    state: &AppState,
    connections: &Arc<ConnectionLimiter>,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    graceful: &GracefulShutdown,
    mut stop: watch::Receiver<bool>,
) {
    let builder = conn::http_builder(&state.config.limits, &state.config.timeouts);
    let tls_deadline = state.config.timeouts.tls;
    let keepalive = state.config.timeouts.keepalive;
    let mut backoff = conn::ACCEPT_BACKOFF.0;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = conn::accept(listener, &mut backoff) => accepted,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        // Trusted proxies carry many clients: only the total applies to them.
        let per_ip = !state.config.trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
        let place = match connections.open(peer.ip(), per_ip) {
            Ok(place) => place,
            Err(refused) => {
                state.metrics.reject(refused.reject());
                debug!(client = %peer, why = ?refused, "connection refused by limits");
                conn::refuse(tcp);
                continue;
            }
        };
        // POP3 is a dialogue of short lines: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let activity = Activity::new();
        let tcp = Watched::new(tcp, activity.clone());
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _place = place;
            match tls {
                None => {
                    conn::serve_connection(tcp, activity, peer, router, builder, watcher, keepalive).await
                }
                Some(acceptor) => match tokio::time::timeout(tls_deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        conn::serve_connection(stream, activity, peer, router, builder, watcher, keepalive)
                            .await
                    }
                    Ok(Err(e)) => debug!(client = %peer, error = %e, "TLS accept failed"),
                    Err(_) => debug!(client = %peer, "TLS accept timed out"),
                },
            }
        });
    }
}

/// The bridge's routes, on a fresh state (for tests that drive the router
/// without [`serve`]).
pub fn router(config: Config) -> Router {
    let (_, close_rx) = watch::channel(false);
    let with_metrics = config.metrics_listen.is_none();
    routes(AppState::new(config, close_rx), with_metrics)
}

fn routes(state: Arc<AppState>, with_metrics: bool) -> Router {
    let mut router = Router::new()
        .route("/pop3", any(pop3))
        .route("/bridge.json", get(bridge_json))
        .route("/healthz", get(|| async { "ok" }));
    if with_metrics {
        router = router.route("/metrics", get(metrics));
    }
    if state.config.demo_json.is_some() {
        router = router.route("/demo.json", get(demo_json));
    }
    if state.serve_root.is_some() {
        router = router.fallback(static_file);
    }
    router.layer(middleware::from_fn(security_headers)).with_state(state)
}

fn metrics_routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    if !state.config.metrics_authorized(authorization) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "bearer token required\n")
            .into_response();
    }
    state.metrics.http_connections.store(state.connections.open_now() as i64, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}

/// What a page needs to know before it opens a session: the wire format
/// versions this bridge speaks and whether it relays end-to-end TLS only
/// (the pages then turn "End-to-end TLS" on). No secret in it: any page
/// may read it (CORS `*`), and caches may keep it for a minute.
async fn bridge_json(State(state): State<Arc<AppState>>) -> Response {
    #[derive(serde::Serialize)]
    struct BridgeJson {
        wire: [&'static str; 2],
        #[serde(rename = "endToEndOnly")]
        end_to_end_only: bool,
    }
    let json =
        BridgeJson { wire: [SUBPROTOCOL_V1, SUBPROTOCOL_V2], end_to_end_only: state.config.end_to_end_only };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        serde_json::to_string(&json).expect("serialises"),
    )
        .into_response()
}

async fn demo_json(State(state): State<Arc<AppState>>) -> Response {
    let json = state.config.demo_json.clone().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], json).into_response()
}

/// Static files from `--serve`: never a dotfile or dot-directory (`.git`,
/// `.htpasswd`, `.env`), and never a file whose real path (symbolic links
/// resolved) lies outside the directory.
async fn static_file(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let Some(root) = &state.serve_root else { return StatusCode::NOT_FOUND.into_response() };
    if !servable(root, request.uri().path()) {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match ServeDir::new(root).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// Whether the file a request path names may be served from `root`
/// (canonical): no segment starts with `.`, and the file (or the
/// directory's `index.html`) resolves to a path inside `root`. Paths that
/// name nothing pass, for the file server to answer 404.
pub fn servable(root: &Path, request_path: &str) -> bool {
    let Ok(decoded) = percent_encoding::percent_decode_str(request_path).decode_utf8() else { return false };
    let mut path = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(name) if !name.as_encoded_bytes().starts_with(b".") => path.push(name),
            Component::CurDir => {}
            _ => return false,
        }
    }
    let target = if path.is_dir() { path.join("index.html") } else { path };
    match target.canonicalize() {
        Ok(real) => real.starts_with(root),
        Err(_) => !target.exists(),
    }
}

/// What every response carries: these are pages where people type
/// passwords. The pages load only their own scripts (and compile their
/// own WebAssembly), talk only to this bridge, and may not be framed.
async fn security_headers(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(host.as_deref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The pages' Content-Security-Policy; `host` is the request's `Host`
/// (checked to be a plain host\[:port\]), for `connect-src` to name this
/// bridge's `ws://` and `wss://` URLs. `img-src data:` is for the pages'
/// empty favicon (`<link rel="icon" href="data:,">`); mail images are
/// never loaded (the pages show mail as text).
pub fn content_security_policy(host: Option<&str>) -> String {
    let connect = match host {
        Some(host) => format!("'self' ws://{host} wss://{host}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

async fn pop3(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let forwarded_for = headers.get_all("x-forwarded-for").iter().map(HeaderValue::as_bytes);
    let client = match forwarded::client_ip(peer.ip(), forwarded_for, &state.config.trusted_proxies) {
        Ok(client) => client,
        Err(e) => {
            state.metrics.reject(Reject::ForwardedFor);
            warn!(proxy = %peer.ip(), "request refused: {e}");
            return (StatusCode::BAD_REQUEST, "X-Forwarded-For names no client\n").into_response();
        }
    };
    let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    if !state.config.origin_allowed(origin, host) {
        state.metrics.reject(Reject::Origin);
        info!(%client, origin = %origin.map(String::from_utf8_lossy).unwrap_or_default().escape_debug(), "origin refused");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // The newest version the client offers. A client that offers none
    // (a plain WebSocket) is served by the `v` of its connect message.
    let offered_any = upgrade.requested_protocols().next().is_some();
    let wire = Version::choose(upgrade.requested_protocols().map(HeaderValue::as_bytes));
    if offered_any && wire.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            format!("WebSocket subprotocol {SUBPROTOCOL_V2} or {SUBPROTOCOL_V1} required\n"),
        )
            .into_response();
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let key = state.limiter.key(client);
    let admission = state.limiter.admit(key);
    if let Err(refused) = admission {
        state.metrics.reject(refused.reject());
        info!(id, %client, %key, why = ?refused, "session refused by limits");
    }
    let max = state.config.limits.max_message_size;
    upgrade
        .protocols(wire.map(Version::subprotocol))
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(CLIENT_READ_BUFFER)
        // The relay awaits each send, so this holds about one chunk; the
        // cap only guards against a bug turning into unbounded memory.
        .write_buffer_size(UPSTREAM_CHUNK)
        .max_write_buffer_size(4 * UPSTREAM_CHUNK + max)
        .on_upgrade(move |socket| async move {
            let admission = match admission {
                Ok(admission) => admission,
                Err(refused) => return relay::refuse(socket, refused.message()).await,
            };
            let _active = ActiveSession::new(&state);
            let ctx = relay::Context {
                config: &state.config,
                metrics: &state.metrics,
                admission: &admission,
                close_now: state.close_now.clone(),
                client,
                id,
                wire,
            };
            relay::run(socket, ctx).await;
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn static_paths_with_dot_segments_or_leading_outside_are_not_served() {
        let root = std::env::temp_dir().join(format!("ws-bridge-servable-{}", std::process::id()));
        let outside = root.with_extension("outside");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("index.html"), "<p>").unwrap();
        std::fs::write(root.join("app/x.js"), "").unwrap();
        std::fs::write(root.join(".htpasswd"), "admin:x").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "").unwrap();
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("app/x.js"), root.join("in.js")).unwrap();
        let root = root.canonicalize().unwrap();
        for (path, ok) in [
            ("/", true),
            ("/index.html", true),
            ("/app/x.js", true),
            ("/in.js", true),
            ("/missing.html", true),
            ("/.htpasswd", false),
            ("/%2ehtpasswd", false),
            ("/.git/config", false),
            ("/app/../.htpasswd", false),
            ("/out.txt", false),
            ("/%ff", false),
        ] {
            assert_eq!(servable(&root, path), ok, "{path}");
        }
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_file(&outside);
    }

    #[test]
    fn the_policy_names_this_bridge_for_websockets() {
        let csp = content_security_policy(Some("127.0.0.1:8080"));
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"), "{csp}");
        assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(content_security_policy(None).contains("connect-src 'self';"));
    }
}
