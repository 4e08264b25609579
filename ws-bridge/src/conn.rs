//! HTTP connections: accepting them, the caps on how many are open, and
//! the deadlines that cut slow or silent clients.
//!
//! ```text
//!  accept (backoff on errors) ─► caps: max_connections, max_connections_per_ip
//!     │                          (at accept, before a byte is read; refused: 503, closed)
//!     └► task: (TLS handshake ≤ tls_timeout) ─► hyper HTTP/1.1
//!              ├ request head within header_timeout, at most max_header_size bytes
//!              └ no byte either way for keepalive_timeout ─► closed
//!        …until a WebSocket upgrade hands the socket to the session.
//! ```
//!
//! hyper keeps its header-read timeout off unless it has a timer, so the
//! builder is given tokio's. The head deadline runs from when hyper starts
//! waiting for a request: the connection's start, or the end of the
//! previous response on a kept-alive connection.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo, extract::Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::Watcher},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::config::{Limits, Timeouts};

/// Shortest and longest pause after a failed accept (out of file
/// descriptors and the like); it doubles while accepting keeps failing.
pub const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// hyper's smallest read buffer, and so the smallest `max_header_size`.
pub const MIN_HEADER_SIZE: usize = 8192;

/// The HTTP/1.1 server settings (HTTP/2 is off: WebSocket upgrades and
/// the pages need only HTTP/1.1, and h2c would be one more thing a client
/// could hold open).
pub fn http_builder(limits: &Limits, timeouts: &Timeouts) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(limits.max_header_size.max(MIN_HEADER_SIZE));
    builder
}

/// Accepts the next connection; on errors, waits (doubling the pause up to
/// a second) and tries again, so that running out of file descriptors
/// neither spins nor floods the log.
pub async fn accept(listener: &TcpListener, backoff: &mut Duration) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                *backoff = ACCEPT_BACKOFF.0;
                return accepted;
            }
            Err(e) => {
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

/// Tells a client refused at accept why, if its socket takes the bytes at
/// once, and closes.
pub fn refuse(tcp: TcpStream) {
    let _ = tcp.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n",
    );
}

/// When a connection last moved a byte.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity { started: Instant::now(), last_ms: AtomicU64::new(0) })
    }

    fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Returns once no byte moved for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let idle_for = self.idle_for();
            if idle_for >= limit {
                return;
            }
            tokio::time::sleep(limit - idle_for).await;
        }
    }
}

/// A byte stream that notes in [`Activity`] whenever bytes move.
#[derive(Debug)]
pub struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves one HTTP connection until it ends, is upgraded to a WebSocket
/// (the session then owns the socket), or moves no byte for `keepalive`.
pub async fn serve_connection<I>(
    io: I,
    activity: Arc<Activity>,
    peer: SocketAddr,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    keepalive: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    let served = watcher.watch(conn);
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                debug!(client = %peer, error = %e, "HTTP connection ended with an error");
            }
        }
        () = activity.idle(keepalive) => debug!(client = %peer, "HTTP connection idle: closed"),
    }
}
