//! One WebSocket session: the connect handshake, the byte relay in both
//! directions, and the STLS upgrade in the middle of it. An end-to-end
//! session (wire v2, `endToEnd: true`) is one relay phase over plain TCP,
//! the client's bytes passing the [`Guard`] on their way up; the bridge
//! does no TLS in it.
//!
//! ```text
//!  WebSocket rx ──BINARY──► write_all ──────────► upstream   (ws_to_upstream)
//!  WebSocket tx ◄─BINARY─── read ≤64 KiB ◄──────── upstream   (upstream_to_ws)
//! ```
//!
//! Both directions run concurrently in one task, so neither can stall the
//! other, and each awaits its write before reading more, so nothing is
//! buffered without bound. On `{"type":"stls"}` the client-side direction
//! asks the upstream-side one to stop at its next read (never in the middle
//! of forwarding a chunk), takes the upstream stream back whole, runs the
//! STLS exchange and the handshake, and starts a new relay phase over TLS.
//!
//! A watchdog runs beside the session and ends it when it was idle (no
//! POP3 bytes either way) for `idle_timeout`, lived `max_session_time`, the
//! client stopped answering pings, or the bridge is shutting down.

use std::{
    borrow::Cow,
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    body::Bytes,
    extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
};
use bytes::{BufMut, BytesMut};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{Notify, watch},
    time::MissedTickBehavior,
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    config::{Config, Timeouts, UPSTREAM_CHUNK},
    guard::{ExpectedSni, Guard},
    limits::{Admission, DestSlot, Refused},
    metrics::{Metrics, Reject},
    policy::{Host, Refusal},
    token::{Binding, TokenError},
    upstream::{self, StlsReply, Upstream},
    wire::{self, ClientMessage, ErrorCode, ServerMessage, TlsMode, Version},
};

type WsTx = SplitSink<WebSocket, Message>;
type WsRx = SplitStream<WebSocket>;

/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A session-ending error: told to the client, then the socket is closed
/// with the code's close code.
#[derive(Debug)]
struct Failure {
    code: ErrorCode,
    message: String,
    close: u16,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), close: code.close_code() }
    }

    /// The one answer to every policy or token denial.
    fn not_allowed() -> Self {
        Failure::new(ErrorCode::BridgeRejected, wire::NOT_ALLOWED)
    }

    /// A message or frame over `max_message_size`: close 1009 (RFC 6455
    /// "message too big").
    fn too_big(max: usize) -> Self {
        Failure {
            close: wire::close::MESSAGE_TOO_BIG,
            ..Failure::protocol(format!("WebSocket message larger than {max} bytes"))
        }
    }

    fn protocol(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::ProtocolError, message)
    }

    /// A limit (on connections or bytes) reached during the session:
    /// `BRIDGE_REJECTED`, close 4429, as a refused session gets.
    fn limit(refused: Refused) -> Self {
        Failure { close: wire::close::LIMITED, ..Failure::new(ErrorCode::BridgeRejected, refused.message()) }
    }
}

/// How a session ended without a [`Failure`].
#[derive(Debug)]
enum End {
    /// The server closed (or failed); the client gets a close frame.
    UpstreamClosed { error: bool },
    /// The client closed or went away.
    ClientClosed,
    /// The bridge is shutting down (close 1001, [`wire::close::GOING_AWAY`]).
    Shutdown,
}

/// What a session needs from the bridge.
#[derive(Debug)]
pub struct Context<'a> {
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    /// The session's place in the limits; pays for connections and bytes.
    pub admission: &'a Admission,
    /// Becomes `true` when the bridge closes every session.
    pub close_now: watch::Receiver<bool>,
    /// The client's address (after `X-Forwarded-For` from trusted proxies).
    pub client: IpAddr,
    pub id: u64,
    /// The wire format version of the subprotocol agreed on, if the client
    /// offered one.
    pub wire: Option<Version>,
}

/// Byte counts and activity times of one session. Times are milliseconds
/// since the session started.
#[derive(Debug)]
struct Counters<'a> {
    metrics: &'a Metrics,
    admission: &'a Admission,
    started: Instant,
    /// Client → server bytes.
    up: AtomicU64,
    /// Server → client bytes.
    down: AtomicU64,
    /// Last POP3 byte either way.
    last_data: AtomicU64,
    /// Last frame of any kind from the client (pongs included).
    last_seen: AtomicU64,
}

impl<'a> Counters<'a> {
    fn new(metrics: &'a Metrics, admission: &'a Admission) -> Self {
        Counters {
            metrics,
            admission,
            started: Instant::now(),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            last_data: AtomicU64::new(0),
            last_seen: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Pays for `n` bytes from the client's allowance before they go on.
    fn pay(&self, n: usize) -> Result<(), Failure> {
        self.admission.charge(n).map_err(|refused| {
            self.metrics.reject(refused.reject());
            info!(why = ?refused, "session ended by limits");
            Failure::limit(refused)
        })
    }

    fn add_up(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
        self.last_data.store(self.now_ms(), Ordering::Relaxed);
    }

    fn add_down(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
        self.metrics.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
        self.last_data.store(self.now_ms(), Ordering::Relaxed);
    }

    fn client_seen(&self) {
        self.last_seen.store(self.now_ms(), Ordering::Relaxed);
    }
}

/// Why the watchdog ended a session.
enum Stop {
    Idle,
    Lifetime,
    ClientSilent,
    Shutdown,
}

/// Pings unanswered for this many intervals mean the client is gone.
const SILENT_PINGS: u32 = 3;

async fn watchdog(counters: &Counters<'_>, t: &Timeouts, mut close_now: watch::Receiver<bool>) -> Stop {
    let lifetime = tokio::time::sleep(t.max_session);
    tokio::pin!(lifetime);
    let idle_ms = t.idle.as_millis() as u64;
    let silent_ms = (t.ping_interval * SILENT_PINGS).as_millis() as u64;
    loop {
        let now = counters.now_ms();
        let idle_for = now.saturating_sub(counters.last_data.load(Ordering::Relaxed));
        if idle_for >= idle_ms {
            return Stop::Idle;
        }
        let silent_for = now.saturating_sub(counters.last_seen.load(Ordering::Relaxed));
        if silent_for >= silent_ms {
            return Stop::ClientSilent;
        }
        let next = (idle_ms - idle_for).min(silent_ms - silent_for).max(5);
        tokio::select! {
            () = &mut lifetime => return Stop::Lifetime,
            changed = async { close_now.wait_for(|close| *close).await.is_ok() } => {
                if changed {
                    return Stop::Shutdown;
                }
                // The bridge is gone without asking: nothing left to watch for.
                std::future::pending::<()>().await;
            }
            () = tokio::time::sleep(Duration::from_millis(next)) => {}
        }
    }
}

/// Refuses a session that was already upgraded because a limit is reached:
/// `BRIDGE_REJECTED` with a message saying which, then close 4429.
pub async fn refuse(socket: WebSocket, message: &str) {
    let (mut tx, mut rx) = socket.split();
    let json = ServerMessage::error(ErrorCode::BridgeRejected, message).to_json();
    if tx.send(Message::Text(json.into())).await.is_ok() {
        close(&mut tx, &mut rx, wire::close::LIMITED, ErrorCode::BridgeRejected.as_str()).await;
    }
}

/// Runs one session to its end and logs its summary. Never logs relayed
/// bytes, tokens or anything else the client sent besides the target.
pub async fn run(socket: WebSocket, ctx: Context<'_>) {
    let span = info_span!(
        "session",
        id = ctx.id,
        client = %ctx.client,
        dest = tracing::field::Empty,
        tls = tracing::field::Empty,
        e2e = tracing::field::Empty
    );
    async move {
        let (mut tx, mut rx) = socket.split();
        let counters = Counters::new(ctx.metrics, ctx.admission);
        let t = &ctx.config.timeouts;
        let result = {
            let session = session(&mut tx, &mut rx, &ctx, &counters);
            let watchdog = watchdog(&counters, t, ctx.close_now.clone());
            tokio::select! {
                result = session => result,
                stop = watchdog => match stop {
                    Stop::Idle => Err(Failure::new(
                        ErrorCode::Timeout,
                        format!("idle for {} s", t.idle.as_secs()),
                    )),
                    Stop::Lifetime => Err(Failure::new(
                        ErrorCode::Timeout,
                        format!("session lasted {} s, the longest allowed", t.max_session.as_secs()),
                    )),
                    Stop::ClientSilent => {
                        Err(Failure::new(ErrorCode::Timeout, "the client stopped answering pings"))
                    }
                    Stop::Shutdown => Ok(End::Shutdown),
                },
            }
        };
        let reason = match result {
            Ok(End::ClientClosed) => {
                let _ = tx.close().await;
                "client closed".to_string()
            }
            Ok(End::Shutdown) => {
                close(&mut tx, &mut rx, wire::close::GOING_AWAY, "bridge shutting down").await;
                "bridge shutting down".to_string()
            }
            Ok(End::UpstreamClosed { error }) => {
                let (code, why) = if error {
                    (wire::close::UPSTREAM_ERROR, "upstream error")
                } else {
                    (wire::close::NORMAL, "upstream closed")
                };
                close(&mut tx, &mut rx, code, why).await;
                why.to_string()
            }
            Err(failure) => {
                let json = ServerMessage::error(failure.code, failure.message.as_str()).to_json();
                if tx.send(Message::Text(json.into())).await.is_ok() {
                    close(&mut tx, &mut rx, failure.close, failure.code.as_str()).await;
                }
                format!("{}: {}", failure.code.as_str(), failure.message)
            }
        };
        info!(
            bytes_up = counters.up.load(Ordering::Relaxed),
            bytes_down = counters.down.load(Ordering::Relaxed),
            duration_ms = counters.started.elapsed().as_millis() as u64,
            reason = %reason.escape_debug(),
            "session closed"
        );
    }
    .instrument(span)
    .await
}

/// Sends a close frame and waits briefly for the client's answer, so the
/// client sees a clean close rather than a reset.
async fn close(tx: &mut WsTx, rx: &mut WsRx, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason.to_string()) };
    if tx.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = rx.next().await {} }).await;
}

async fn session(
    tx: &mut WsTx,
    rx: &mut WsRx,
    ctx: &Context<'_>,
    counters: &Counters<'_>,
) -> Result<End, Failure> {
    let config = ctx.config;
    // 1. The connect message.
    let first = tokio::time::timeout(config.timeouts.first_message, next_control(rx, counters, config)).await;
    let text = match first {
        Err(_) => return Err(Failure::protocol("no connect message in time")),
        Ok(None) => return Ok(End::ClientClosed),
        Ok(Some(Err(failure))) => return Err(failure),
        Ok(Some(Ok(text))) => text,
    };
    let connect = match ClientMessage::parse(&text) {
        Ok(ClientMessage::Connect(c)) => c,
        Ok(_) => return Err(Failure::protocol("the first message must be connect")),
        Err(_) => return Err(Failure::protocol("malformed connect message")),
    };
    connect.check(ctx.wire).map_err(Failure::protocol)?;
    let end_to_end = connect.end_to_end;
    // The host is the client's text: escaped and cut short for the log.
    let dest = format!("{}:{}", connect.host.chars().take(260).collect::<String>(), connect.port);
    let span = tracing::Span::current();
    span.record("dest", tracing::field::display(dest.escape_debug()));
    span.record("tls", tracing::field::display(connect.tls));
    if end_to_end {
        span.record("e2e", true);
        ctx.metrics.sessions_end_to_end.fetch_add(1, Ordering::Relaxed);
    }
    info!("session opened");

    // An end-to-end-only bridge never does TLS for a client (nor relays
    // plain POP3): said plainly, it is no secret (/bridge.json says it too).
    if config.end_to_end_only && !end_to_end {
        ctx.metrics.reject(Reject::EndToEndRequired);
        info!("refused: end-to-end TLS only");
        return Err(Failure::new(ErrorCode::BridgeRejected, wire::END_TO_END_REQUIRED));
    }

    // 2. The token, when tokens are required: checked before anything
    // else, so that without one the bridge does not even resolve names.
    if let Some(keys) = &config.tokens {
        let verdict = match (&connect.token, Host::parse(&connect.host)) {
            (None, _) => Err(TokenError::Missing),
            (Some(_), None) => Err(TokenError::WrongDestination),
            (Some(token), Some(host)) => {
                let binding = Binding { tls: connect.tls, end_to_end };
                keys.verify(token.expose(), &host, connect.port, binding, SystemTime::now())
            }
        };
        if let Err(why) = verdict {
            ctx.metrics.reject(Reject::Token);
            info!(why = %why, "denied");
            return Err(Failure::not_allowed());
        }
    }

    // 3. Policy, then TCP to an address the policy checked.
    let addrs = match config.policy.check(&connect.host, connect.port).await {
        Ok(addrs) => addrs,
        Err(Refusal::Denied(why)) => {
            ctx.metrics.reject(Reject::Policy);
            info!(why = %why.escape_debug(), "denied");
            return Err(Failure::not_allowed());
        }
        Err(Refusal::ResolveFailed(why)) => {
            info!(why = %why.escape_debug(), "resolution failed");
            return Err(Failure::new(ErrorCode::ConnectFailed, wire::ConnectFailure::NoSuchHost.to_string()));
        }
    };
    let Some(host) = Host::parse(&connect.host) else {
        // Unreachable: the policy only accepts hosts that parse.
        return Err(Failure::not_allowed());
    };
    let connecting = Instant::now();
    let connected = connect_upstream(ctx, &addrs).await;
    ctx.metrics.upstream_connect.observe(connecting.elapsed());
    // The place at the server's address is held for the whole session.
    let (tcp, _slot) = connected?;
    if let Ok(addr) = tcp.peer_addr() {
        debug!(upstream = %addr, "connected");
    }

    // 4. End to end: TCP only, the client's bytes checked on their way.
    if end_to_end {
        send_text(tx, &ServerMessage::Connected { tls: None, end_to_end: true }).await;
        let sni = ExpectedSni::for_host(&host);
        let mut guard =
            if connect.tls == TlsMode::Implicit { Guard::implicit(sni) } else { Guard::starttls(sni) };
        return match relay_phase(tx, rx, Upstream::Plain(tcp), counters, config, Some(&mut guard)).await {
            Phase::Done(end) => Ok(end),
            Phase::Failed(failure) => Err(failure),
            Phase::Stls(_) => Err(Failure::protocol(wire::STLS_IN_END_TO_END)),
        };
    }

    // 5. Implicit TLS, then tell the client.
    let mut upstream = if connect.tls == TlsMode::Implicit {
        let (stream, info) = handshake(ctx, &host, tcp).await?;
        send_text(tx, &ServerMessage::Connected { tls: Some(info), end_to_end: false }).await;
        Upstream::Tls(Box::new(stream))
    } else {
        send_text(tx, &ServerMessage::Connected { tls: None, end_to_end: false }).await;
        Upstream::Plain(tcp)
    };

    // 6. Relay, with STLS in between phases.
    loop {
        match relay_phase(tx, rx, upstream, counters, config, None).await {
            Phase::Done(end) => return Ok(end),
            Phase::Failed(failure) => return Err(failure),
            Phase::Stls(Upstream::Tls(_)) => {
                return Err(Failure::protocol("stls on a session that already uses TLS"));
            }
            Phase::Stls(Upstream::Plain(tcp)) => match starttls(tx, ctx, &host, tcp, counters).await? {
                Upgraded::Tls(stream) => upstream = stream,
                Upgraded::Refused(stream) => upstream = stream,
                Upgraded::Closed => return Ok(End::UpstreamClosed { error: false }),
            },
        }
    }
}

/// Connects to the first of `addrs` (all checked by the policy) that the
/// limits let through and that answers, all within `connect_timeout`.
/// Each address tried takes a place in the limits first: sessions at that
/// address, the client's different servers, the bridge's connection rate.
async fn connect_upstream(
    ctx: &Context<'_>,
    addrs: &[std::net::SocketAddr],
) -> Result<(tokio::net::TcpStream, DestSlot), Failure> {
    let deadline = tokio::time::Instant::now() + ctx.config.timeouts.connect;
    let mut refused = None;
    let mut failed = None;
    for addr in addrs {
        let slot = match ctx.admission.reserve(*addr) {
            Ok(slot) => slot,
            Err(why) => {
                refused.get_or_insert(why);
                continue;
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match upstream::connect_tcp(std::slice::from_ref(addr), left).await {
            Ok(tcp) => return Ok((tcp, slot)),
            Err(why) => failed = Some(why),
        }
    }
    match (failed, refused) {
        (Some(why), _) => {
            info!(why, "connect failed");
            Err(Failure::new(ErrorCode::ConnectFailed, why))
        }
        (None, Some(why)) => {
            ctx.metrics.reject(why.reject());
            info!(why = ?why, "connection refused by limits");
            Err(Failure::limit(why))
        }
        (None, None) => Err(Failure::new(ErrorCode::ConnectFailed, "no address to connect to")),
    }
}

/// The next TEXT message; pings and pongs are skipped (tungstenite answers
/// pings itself). `None` when the client closed.
async fn next_control(
    rx: &mut WsRx,
    counters: &Counters<'_>,
    config: &Config,
) -> Option<Result<String, Failure>> {
    loop {
        let msg = rx.next().await?;
        counters.client_seen();
        return match msg {
            Ok(Message::Text(text)) => Some(Ok(text.as_str().to_string())),
            Ok(Message::Binary(_)) => {
                Some(Err(Failure::protocol("expected a connect message before any data")))
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => None,
            Err(e) if too_big(&e) => Some(Err(Failure::too_big(config.limits.max_message_size))),
            Err(_) => None,
        };
    }
}

/// Whether a read failed because the client's message or frame was over
/// the size limit (tungstenite stops reading it; the socket is still
/// usable for our error message and close frame).
fn too_big(e: &axum::Error) -> bool {
    let inner = std::error::Error::source(e).and_then(|inner| inner.downcast_ref::<tungstenite::Error>());
    matches!(inner, Some(tungstenite::Error::Capacity(_)))
}

async fn send_text(tx: &mut WsTx, msg: &ServerMessage) {
    // If the client is gone the next read notices; nothing to report to it.
    let _ = tx.send(Message::Text(msg.to_json().into())).await;
}

async fn handshake(
    ctx: &Context<'_>,
    host: &Host,
    tcp: tokio::net::TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<tokio::net::TcpStream>, crate::wire::TlsInfo), Failure> {
    let tls_failed = |why: String| {
        info!(why, "TLS failed");
        Failure::new(ErrorCode::TlsFailed, why)
    };
    let name = upstream::server_name(host).map_err(tls_failed)?;
    let started = Instant::now();
    let shaken = upstream::tls_handshake(ctx.config.tls.clone(), name, tcp, ctx.config.timeouts.tls).await;
    ctx.metrics.tls_handshake.observe(started.elapsed());
    let (stream, info) = shaken.map_err(tls_failed)?;
    info!(protocol = info.protocol, cipher = info.cipher, "TLS established");
    Ok((stream, info))
}

enum Upgraded {
    Tls(Upstream),
    Refused(Upstream),
    Closed,
}

/// The STLS exchange (RFC 2595): only a `+OK` line leads to a handshake,
/// and whatever the server sent after that line is thrown away, so a
/// man in the middle cannot inject plaintext that looks as if it came over
/// TLS.
async fn starttls(
    tx: &mut WsTx,
    ctx: &Context<'_>,
    host: &Host,
    mut tcp: tokio::net::TcpStream,
    counters: &Counters<'_>,
) -> Result<Upgraded, Failure> {
    let reply = upstream::send_stls(&mut tcp, ctx.config.timeouts.tls).await.map_err(|why| {
        info!(why, "STLS failed");
        Failure::new(ErrorCode::TlsFailed, why)
    })?;
    let (line, rest) = match reply {
        StlsReply::Closed(partial) => {
            forward(tx, counters, &partial).await;
            return Ok(Upgraded::Closed);
        }
        StlsReply::Line { line, rest } => (line, rest),
    };
    forward(tx, counters, &line).await;
    // The core's one rule for the answer (the client reads it the same way).
    match pop3_wasm::proto::stls_verdict(&line) {
        pop3_wasm::proto::StlsVerdict::Proceed { .. } => {}
        pop3_wasm::proto::StlsVerdict::Refused { .. } => {
            info!("server refused STLS; continuing in plain text");
            forward(tx, counters, &rest).await;
            return Ok(Upgraded::Refused(Upstream::Plain(tcp)));
        }
        pop3_wasm::proto::StlsVerdict::Unusable { reason, .. } => {
            info!(why = reason, "STLS failed");
            return Err(Failure::new(ErrorCode::TlsFailed, reason));
        }
        pop3_wasm::proto::StlsVerdict::Incomplete => {
            return Err(Failure::new(ErrorCode::TlsFailed, "the server's answer to STLS is cut short"));
        }
    }
    let discarded = rest.len() + upstream::discard_pending(&tcp);
    if discarded > 0 {
        warn!(discarded, "discarded bytes the server sent after STLS +OK");
    }
    let (stream, info) = handshake(ctx, host, tcp).await?;
    send_text(tx, &ServerMessage::Tls { tls: info, discarded }).await;
    Ok(Upgraded::Tls(Upstream::Tls(Box::new(stream))))
}

async fn forward(tx: &mut WsTx, counters: &Counters<'_>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    counters.add_down(bytes.len());
    let _ = tx.send(Message::Binary(Bytes::copy_from_slice(bytes))).await;
}

/// How one relay phase ended.
enum Phase {
    Done(End),
    Failed(Failure),
    /// The client asked for STLS; here is the upstream stream, whole.
    Stls(Upstream),
}

enum UpEnd {
    Eof,
    Error,
    ClientGone,
    Paused,
    /// The client's transfer allowance ran out.
    Limit(Failure),
}

enum DownEnd {
    ClientClosed,
    UpstreamGone,
    Stls,
    Failed(Failure),
}

/// Relays until the session ends or (bridge-side) the client asks for
/// STLS. With a `guard` (end to end), the client's bytes go up only as
/// far as it lets them, and `stls` is a protocol error.
async fn relay_phase(
    tx: &mut WsTx,
    rx: &mut WsRx,
    upstream: Upstream,
    counters: &Counters<'_>,
    config: &Config,
    mut guard: Option<&mut Guard>,
) -> Phase {
    let (mut rd, mut wr) = tokio::io::split(upstream);
    let pause = Notify::new();

    let outcome = {
        let upstream_to_ws = async {
            // Read into spare capacity (never zero-filled) and hand the
            // filled part to the frame as it is (no copy). The frame is
            // written out before the next read, so `reserve` finds the
            // block unshared again and reuses it: no allocation per read,
            // and an idle session touches only the pages it has read into.
            let mut buf = BytesMut::new();
            let every = config.timeouts.ping_interval;
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
            // One waiter for the whole phase, not one registered and
            // removed again around every read.
            let paused = pause.notified();
            tokio::pin!(paused);
            loop {
                let read = tokio::select! {
                    biased;
                    () = &mut paused => return UpEnd::Paused,
                    _ = ping.tick() => {
                        // Keeps proxies from timing the WebSocket out; the
                        // pong (or any frame) tells the watchdog the client
                        // is still there.
                        if tx.send(Message::Ping(Bytes::new())).await.is_err() {
                            return UpEnd::ClientGone;
                        }
                        continue;
                    }
                    read = async {
                        buf.reserve(UPSTREAM_CHUNK);
                        // At most one chunk, whatever `reserve` gave.
                        rd.read_buf(&mut (&mut buf).limit(UPSTREAM_CHUNK)).await
                    } => read,
                };
                match read {
                    Ok(0) => return UpEnd::Eof,
                    Ok(n) => {
                        if let Err(failure) = counters.pay(n) {
                            return UpEnd::Limit(failure);
                        }
                        counters.add_down(n);
                        let msg = Message::Binary(buf.split().freeze());
                        if tx.send(msg).await.is_err() {
                            return UpEnd::ClientGone;
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "upstream read failed");
                        return UpEnd::Error;
                    }
                }
            }
        };
        let ws_to_upstream = async {
            loop {
                let msg = match rx.next().await {
                    None => return DownEnd::ClientClosed,
                    Some(Err(e)) if too_big(&e) => {
                        return DownEnd::Failed(Failure::too_big(config.limits.max_message_size));
                    }
                    Some(Err(_)) => return DownEnd::ClientClosed,
                    Some(Ok(msg)) => msg,
                };
                counters.client_seen();
                match msg {
                    Message::Binary(bytes) => {
                        if let Err(failure) = counters.pay(bytes.len()) {
                            return DownEnd::Failed(failure);
                        }
                        let up = match guard.as_deref_mut() {
                            None => Cow::Borrowed(&bytes[..]),
                            Some(guard) => match guard.feed(&bytes) {
                                Ok(up) => up,
                                Err(refusal) => {
                                    counters.metrics.reject(Reject::PlaintextBeforeTls);
                                    info!(why = %refusal, "end-to-end session ended: not TLS");
                                    return DownEnd::Failed(Failure::protocol(wire::PLAINTEXT_BEFORE_TLS));
                                }
                            },
                        };
                        if up.is_empty() {
                            continue;
                        }
                        if wr.write_all(&up).await.is_err() {
                            return DownEnd::UpstreamGone;
                        }
                        counters.add_up(up.len());
                    }
                    Message::Text(text) => {
                        return match ClientMessage::parse(text.as_str()) {
                            Ok(ClientMessage::Stls) if guard.is_some() => {
                                DownEnd::Failed(Failure::protocol(wire::STLS_IN_END_TO_END))
                            }
                            Ok(ClientMessage::Stls) => {
                                pause.notify_one();
                                DownEnd::Stls
                            }
                            Ok(ClientMessage::Connect(_)) => {
                                DownEnd::Failed(Failure::protocol("connect sent twice"))
                            }
                            Err(_) => DownEnd::Failed(Failure::protocol("unexpected control message")),
                        };
                    }
                    Message::Close(_) => return DownEnd::ClientClosed,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        };
        tokio::pin!(upstream_to_ws, ws_to_upstream);
        tokio::select! {
            up = &mut upstream_to_ws => Err(up),
            down = &mut ws_to_upstream => match down {
                // Let the other direction finish forwarding what it holds
                // and stop at its next read.
                DownEnd::Stls => match upstream_to_ws.await {
                    UpEnd::Paused => Ok(DownEnd::Stls),
                    other => Err(other),
                },
                // The server stopped reading; it may still have said
                // something (a goodbye line) worth forwarding first.
                DownEnd::UpstreamGone => {
                    match tokio::time::timeout(CLOSE_GRACE, upstream_to_ws).await {
                        Ok(up) => Err(up),
                        Err(_) => Ok(DownEnd::UpstreamGone),
                    }
                }
                other => Ok(other),
            },
        }
    };

    let mut upstream = rd.unsplit(wr);
    match outcome {
        Err(UpEnd::Eof) => {
            let _ = upstream.shutdown().await;
            Phase::Done(End::UpstreamClosed { error: false })
        }
        Err(UpEnd::Error) => Phase::Done(End::UpstreamClosed { error: true }),
        Err(UpEnd::ClientGone | UpEnd::Paused) => {
            let _ = upstream.shutdown().await;
            Phase::Done(End::ClientClosed)
        }
        Err(UpEnd::Limit(failure)) => {
            let _ = upstream.shutdown().await;
            Phase::Failed(failure)
        }
        Ok(DownEnd::Stls) => Phase::Stls(upstream),
        Ok(DownEnd::ClientClosed) => {
            let _ = upstream.shutdown().await;
            Phase::Done(End::ClientClosed)
        }
        Ok(DownEnd::UpstreamGone) => Phase::Done(End::UpstreamClosed { error: true }),
        Ok(DownEnd::Failed(failure)) => {
            let _ = upstream.shutdown().await;
            Phase::Failed(failure)
        }
    }
}
