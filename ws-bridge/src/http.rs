//! The HTTP face: `/pop3` (WebSocket sessions), `/healthz`, and static files.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::{
        ConnectInfo, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
    serve::ListenerExt,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower_http::services::ServeDir;
use tracing::info;

use crate::{
    config::{Config, MAX_MESSAGE_SIZE},
    relay,
    wire::SUBPROTOCOL,
};

#[derive(Debug)]
struct AppState {
    config: Config,
    sessions: Arc<Semaphore>,
    next_id: AtomicU64,
}

/// Serves until `shutdown` completes. Sessions already upgraded to
/// WebSocket run on in their own tasks until they end.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // POP3 is a dialogue of short lines: do not let Nagle hold them back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The bridge's routes.
pub fn router(config: Config) -> Router {
    let serve_dir = config.serve.clone();
    let state = Arc::new(AppState {
        sessions: Arc::new(Semaphore::new(config.max_sessions)),
        config,
        next_id: AtomicU64::new(1),
    });
    let router =
        Router::new().route("/pop3", any(pop3)).route("/healthz", get(|| async { "ok" })).with_state(state);
    match serve_dir {
        Some(dir) => router.fallback_service(ServeDir::new(dir)),
        None => router,
    }
}

async fn pop3(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let origin = headers.get(header::ORIGIN).map(|v| v.as_bytes());
    if !state.config.origin_allowed(origin) {
        info!(client = %peer, origin = ?origin.map(String::from_utf8_lossy), "origin refused");
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
    let Ok(permit) = state.sessions.clone().try_acquire_owned() else {
        info!(client = %peer, "session limit reached");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions\n").into_response();
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_frame_size(MAX_MESSAGE_SIZE)
        .on_upgrade(move |socket| async move {
            relay::run(socket, &state.config, peer, id).await;
            drop(permit);
        })
}
