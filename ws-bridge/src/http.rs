//! The HTTP face: the listener (plain or TLS), `/pop3` (WebSocket
//! sessions), `/healthz`, `/metrics`, static files, and graceful shutdown.
//!
//! ```text
//!  accept ─► (TLS handshake, in the connection's task) ─► hyper (HTTP/1.1, upgrades)
//!        ─► axum router ─► /pop3: origin, subprotocol, admission ─► relay::run
//! ```
//!
//! Shutdown: stop accepting, let HTTP requests finish, give sessions
//! `shutdown_timeout` to end by themselves, then close the rest (1001).

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
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
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use ipnet::IpNet;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{Notify, watch},
};
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, info, warn};

use crate::{
    config::{CLIENT_READ_BUFFER, Config, UPSTREAM_CHUNK},
    limits::{ClientKey, Limiter, Refused},
    metrics::{Metrics, Reject},
    relay,
    wire::SUBPROTOCOL,
};

/// How long closed sessions get to say goodbye after the shutdown deadline.
const FINAL_GRACE: Duration = Duration::from_secs(5);

/// What every request and session shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
    next_id: AtomicU64,
    /// Becomes `true` when running sessions must close now.
    close_now: watch::Receiver<bool>,
    /// Signalled whenever the last running session ends.
    drained: Notify,
}

impl AppState {
    fn new(config: Config, close_now: watch::Receiver<bool>) -> Arc<AppState> {
        Arc::new(AppState {
            limiter: Limiter::new(config.limits),
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

/// Serves until `shutdown` completes, then shuts down gracefully (see the
/// module docs) and returns.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (close_tx, close_rx) = watch::channel(false);
    let state = AppState::new(config, close_rx);
    let router = routes(state.clone());
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let tls = state.config.server_tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let tls_deadline = state.config.timeouts.tls;
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // POP3 is a dialogue of short lines: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, peer, router, builder, watcher).await,
                Some(acceptor) => match tokio::time::timeout(tls_deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, peer, router, builder, watcher).await,
                    Ok(Err(e)) => debug!(client = %peer, error = %e, "TLS accept failed"),
                    Err(_) => debug!(client = %peer, "TLS accept timed out"),
                },
            }
        });
    }
    drop(listener);

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

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        debug!(client = %peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The bridge's routes, on a fresh state (for tests that drive the router
/// without [`serve`]).
pub fn router(config: Config) -> Router {
    let (_, close_rx) = watch::channel(false);
    routes(AppState::new(config, close_rx))
}

fn routes(state: Arc<AppState>) -> Router {
    let serve_dir = state.config.serve.clone();
    let router = Router::new()
        .route("/pop3", any(pop3))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(state);
    match serve_dir {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router,
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are whatever the client claimed).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return peer };
        hops.extend(value.split(',').map(str::trim));
    }
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        let parsed = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
            .map(|ip| ip.to_canonical());
        let Ok(ip) = parsed else { break };
        if !is_trusted(&ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

async fn pop3(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let client = client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let origin = headers.get(header::ORIGIN).map(|v| v.as_bytes());
    if !state.config.origin_allowed(origin) {
        state.metrics.reject(Reject::Origin);
        info!(%client, origin = %origin.map(String::from_utf8_lossy).unwrap_or_default().escape_debug(), "origin refused");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let offered_any = upgrade.requested_protocols().next().is_some();
    let offered_ours = upgrade.requested_protocols().any(|p| p.as_bytes() == SUBPROTOCOL.as_bytes());
    if offered_any && !offered_ours {
        return (StatusCode::BAD_REQUEST, format!("WebSocket subprotocol {SUBPROTOCOL} required\n"))
            .into_response();
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let admission = state.limiter.admit(ClientKey::of(client));
    if let Err(refused) = admission {
        state.metrics.reject(match refused {
            Refused::Rate => Reject::Rate,
            Refused::Total => Reject::MaxSessions,
            Refused::PerIp => Reject::MaxSessionsPerIp,
        });
        info!(id, %client, key = %ClientKey::of(client), why = ?refused, "session refused by limits");
    }
    let max = state.config.limits.max_message_size;
    upgrade
        .protocols([SUBPROTOCOL])
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
            state.metrics.sessions_active.fetch_add(1, Ordering::SeqCst);
            state.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
            let ctx = relay::Context {
                config: &state.config,
                metrics: &state.metrics,
                close_now: state.close_now.clone(),
                client,
                id,
            };
            relay::run(socket, ctx).await;
            drop(admission);
            if state.metrics.sessions_active.fetch_sub(1, Ordering::SeqCst) == 1 {
                state.drained.notify_waiters();
            }
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            h
        };
        // untrusted peer: header ignored
        assert_eq!(client_ip(ip("192.0.2.9"), &xff("198.51.100.1"), &trusted), ip("192.0.2.9"));
        // trusted peer: the right-most untrusted hop
        assert_eq!(client_ip(ip("127.0.0.1"), &xff("198.51.100.1"), &trusted), ip("198.51.100.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff("6.6.6.6, 198.51.100.1, 10.1.1.1"), &trusted),
            ip("198.51.100.1")
        );
        // spoofed garbage to the left of a good hop does not matter
        assert_eq!(client_ip(ip("127.0.0.1"), &xff("junk, 198.51.100.1"), &trusted), ip("198.51.100.1"));
        // nothing usable: the nearest trusted hop
        assert_eq!(client_ip(ip("127.0.0.1"), &xff("junk"), &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), &xff("::ffff:198.51.100.1"), &trusted), ip("198.51.100.1"));
    }
}
