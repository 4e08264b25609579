//! `Pop3Client`: the promise-based API of the README ("Use it from
//! JavaScript") over the sans-IO core.
//!
//! One `Inner` per session, shared by the socket's event handlers and the
//! pending calls. Every call enqueues commands in the core and waits on a
//! oneshot that `dispatch` completes when the core reports the answer. JS
//! callbacks (transcript, progress, stream controllers) are collected while
//! `Inner` is borrowed and run after the borrow ends, so a callback may call
//! back into the client.
//!
//! Message bodies (RETR, TOP, `raw`) never sit whole in the wasm memory,
//! which never shrinks once grown: the core hands each decoded piece over
//! as it arrives, and it goes straight to JavaScript (a stream's queue, or
//! the blocks a collected body is joined from once, at the end).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use futures_util::future::{Either, select};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::failure::Failure;
use super::js::{Interval, Socket, Timer, call_if_present, random_bytes, websocket_constructor};
use crate::proto::{
    Capabilities, Command, CommandId, CramMd5, Direction, Event, Expire, LineKind, Login, Mechanism,
    OAuthBearer, Options, Plain, Response, Scram, ScramHash, Secret, Session, State, Status, XOAuth2,
    apop_digest, parse_list, parse_list_entry, parse_stat, parse_uidl, parse_uidl_entry, readable,
};
use crate::summary::summarize;

/// The session wire format spoken with ws-bridge (see the README).
const SUBPROTOCOL: &str = "pop3-bridge.v1";
const DEFAULT_TIMEOUT_MS: f64 = 30_000.0;
/// The largest `maxBodyBytes`: a wasm32 buffer holds at most `isize::MAX`.
const MAX_BODY_LIMIT: u32 = 2_147_483_647;
/// Bytes a `ReadableStream` may hold before the socket is paused.
const STREAM_HIGH_WATER: f64 = 1024.0 * 1024.0;
/// A collected body is gathered in JS blocks of this size (the first one
/// smaller, for the many small messages): big enough that the allocator
/// maps them on their own and hands them back to the system once dropped.
const COLLECT_FIRST_BLOCK: u32 = 64 * 1024;
const COLLECT_BLOCK: u32 = 1024 * 1024;

type Shared = Rc<RefCell<Inner>>;
type Reply = Result<Response, Failure>;

/// A multi-line answer collected for the caller: the response, and its
/// body joined in JavaScript (`None` after `-ERR`).
struct Collected {
    response: Response,
    body: Option<Uint8Array>,
}

type Gathered = Result<Collected, Failure>;

/// A small map keyed by command id. Ids are handed out in order and mostly
/// answered in order, so a deque with a linear search is as fast as a hash
/// map here, and much smaller in the wasm module.
struct IdMap<T>(VecDeque<(CommandId, T)>);

impl<T> IdMap<T> {
    fn new() -> Self {
        Self(VecDeque::new())
    }

    fn insert(&mut self, id: CommandId, value: T) {
        self.0.push_back((id, value));
    }

    fn remove(&mut self, id: &CommandId) -> Option<T> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        self.0.remove(i).map(|(_, v)| v)
    }

    fn get_mut(&mut self, id: &CommandId) -> Option<&mut T> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, v)| v)
    }

    fn drain(&mut self) -> impl Iterator<Item = (CommandId, T)> + '_ {
        self.0.drain(..)
    }
}

/// Deadlines for each phase of a session, in ms.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    connect: f64,
    tls: f64,
    greeting: f64,
    command: f64,
}

/// Where the body of a streamed command goes.
enum Sink {
    /// A `ReadableStream` the caller reads.
    Stream { controller: JsValue, cancelled: bool },
    /// A body the caller gets whole (`retr`, `top`, `retrMany`, `raw`):
    /// copied into JS blocks as it arrives (`filled`: octets used in the
    /// last one), joined once the answer is complete. `total`: the size
    /// the server announced, for `onProgress`.
    Collect {
        tx: Option<oneshot::Sender<Gathered>>,
        blocks: Array,
        filled: u32,
        len: usize,
        on_progress: Option<Function>,
        total: JsValue,
    },
}

/// JS calls to make once `Inner` is no longer borrowed.
enum Action {
    Transcript(Function, Object),
    Enqueue(JsValue, Uint8Array),
    CloseStream(JsValue),
    ErrorStream(JsValue, JsValue),
    Progress(Function, f64, JsValue),
}

struct Inner {
    session: Session,
    socket: Option<Socket>,
    waiters: IdMap<oneshot::Sender<Reply>>,
    started: IdMap<oneshot::Sender<Result<String, Failure>>>,
    sinks: IdMap<Sink>,
    sent_at: IdMap<f64>,
    on_open: Option<oneshot::Sender<Result<(), Failure>>>,
    on_connected: Option<oneshot::Sender<Result<(), Failure>>>,
    on_greeting: Option<oneshot::Sender<Result<(), Failure>>>,
    on_tls: Option<oneshot::Sender<Result<Option<oneshot::Receiver<Reply>>, Failure>>>,
    /// Sticky: once set, every call fails with it.
    failure: Option<Failure>,
    opened: bool,
    paused: bool,
    tls: JsValue,
    transcript: Option<Function>,
    deadlines: Deadlines,
    bridge: String,
    host: String,
    port: u16,
    last_activity: f64,
    keepalive: Option<Interval>,
}

impl Inner {
    fn close_socket(&mut self, reason: &str) {
        self.keepalive = None;
        if let Some(s) = self.socket.take() {
            if self.paused {
                call_if_present(&s, "resume");
            }
            let _ = s.close(1000, reason);
        }
    }

    fn set_paused(&mut self, pause: bool) {
        if self.paused != pause {
            if let Some(s) = &self.socket {
                call_if_present(s, if pause { "pause" } else { "resume" });
            }
            self.paused = pause;
        }
    }

    /// Whether every streamed body can take more (a collected body always
    /// can): otherwise the socket stays paused, where the runtime can.
    fn any_stream_wants_data(&self) -> bool {
        self.sinks.values().all(|s| match s {
            Sink::Stream { controller, cancelled } => *cancelled || desired_size(controller) > 0.0,
            Sink::Collect { .. } => true,
        })
    }
}

fn desired_size(controller: &JsValue) -> f64 {
    Reflect::get(controller, &"desiredSize".into()).ok().and_then(|v| v.as_f64()).unwrap_or(1.0)
}

/// Ends the session with `failure`: every outstanding and later call gets
/// it, and the WebSocket is closed. No QUIT is ever sent from here.
fn fail(shared: &Shared, failure: Failure) {
    {
        let mut inner = shared.borrow_mut();
        if inner.failure.is_some() {
            return;
        }
        inner.failure = Some(failure.clone());
        inner.close_socket("session ended");
        inner.session.fail(crate::proto::Error::ConnectionClosed(failure.message.clone()));
        for tx in
            [inner.on_open.take(), inner.on_connected.take(), inner.on_greeting.take()].into_iter().flatten()
        {
            let _ = tx.send(Err(failure.clone()));
        }
        if let Some(tx) = inner.on_tls.take() {
            let _ = tx.send(Err(failure.clone()));
        }
    }
    dispatch(shared);
}

/// Hands the core's events to whoever waits for them and sends what the
/// core wants sent.
fn dispatch(shared: &Shared) {
    let actions = {
        let mut guard = shared.borrow_mut();
        let inner = &mut *guard;
        let mut actions = Vec::new();
        while let Some(ev) = inner.session.poll_event() {
            match ev {
                Event::GreetingReceived(_) => {
                    if let Some(tx) = inner.on_greeting.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::CommandCompleted { id, result } => {
                    let result = result.map_err(|e| inner.failure.clone().unwrap_or_else(|| e.into()));
                    if let Some(tx) = inner.started.remove(&id) {
                        let _ = tx.send(match &result {
                            Ok(r) if r.is_ok() => Ok(r.text.clone()),
                            Ok(r) => Err(r
                                .clone()
                                .into_result(false)
                                .err()
                                .map(Failure::from)
                                .unwrap_or_else(|| Failure::new("SERVER_ERROR", "the server refused"))),
                            Err(f) => Err(f.clone()),
                        });
                    }
                    match inner.sinks.remove(&id) {
                        Some(Sink::Collect { tx, blocks, filled, len, .. }) => {
                            let gathered = result.map(|response| Collected {
                                body: response.is_ok().then(|| join(&blocks, filled, len)),
                                response,
                            });
                            if let Some(tx) = tx {
                                let _ = tx.send(gathered);
                            }
                            continue;
                        }
                        Some(Sink::Stream { controller, cancelled }) => {
                            if !cancelled {
                                match &result {
                                    Ok(r) if r.is_ok() => actions.push(Action::CloseStream(controller)),
                                    Ok(_) => {}
                                    Err(f) => actions.push(Action::ErrorStream(controller, f.clone().into())),
                                }
                            }
                            let any_stream = inner.sinks.values().any(|s| matches!(s, Sink::Stream { .. }));
                            if !any_stream {
                                inner.set_paused(false);
                            }
                        }
                        None => {}
                    }
                    if let Some(tx) = inner.waiters.remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                Event::BodyStarted { id, text } => {
                    if let Some(Sink::Collect { total, .. }) = inner.sinks.get_mut(&id) {
                        // "+OK 5242818 octets": the size, when the server says it.
                        if let Some(n) = text.split_whitespace().next().and_then(|w| w.parse::<u64>().ok()) {
                            *total = JsValue::from_f64(n as f64);
                        }
                    }
                    if let Some(tx) = inner.started.remove(&id) {
                        let _ = tx.send(Ok(text));
                    }
                }
                Event::BodyChunkReceived { id, data } => match inner.sinks.get_mut(&id) {
                    Some(Sink::Stream { controller, cancelled: false }) => {
                        actions.push(Action::Enqueue(controller.clone(), Uint8Array::from(&data[..])));
                    }
                    Some(Sink::Collect { blocks, filled, len, on_progress, total, .. }) => {
                        *len += data.len();
                        // The bound the core puts on a body it collects itself:
                        // an endless body must not grow the client forever.
                        let max = inner.session.max_body();
                        if *len > max {
                            inner.session.fail(crate::proto::Error::body_too_long(max));
                            continue;
                        }
                        append(blocks, filled, &data);
                        if let Some(f) = on_progress {
                            actions.push(Action::Progress(f.clone(), *len as f64, total.clone()));
                        }
                    }
                    _ => {}
                },
                Event::LineTranscribed(l) => {
                    let now = js_sys::Date::now();
                    let latency = match (l.kind, l.id) {
                        (LineKind::Command, Some(id)) => {
                            inner.sent_at.insert(id, now);
                            None
                        }
                        (LineKind::Status, Some(id)) => inner.sent_at.remove(&id).map(|t| now - t),
                        _ => None,
                    };
                    if let Some(f) = &inner.transcript {
                        let o = Object::new();
                        let dir = if l.dir == Direction::C { "C" } else { "S" };
                        let _ = Reflect::set(&o, &"dir".into(), &dir.into());
                        let _ = Reflect::set(&o, &"line".into(), &l.line.into());
                        if let Some(ms) = latency {
                            let _ = Reflect::set(&o, &"latencyMs".into(), &ms.into());
                        }
                        actions.push(Action::Transcript(f.clone(), o));
                    }
                }
                Event::StlsRequested => {
                    if let Some(s) = &inner.socket {
                        let _ = s.send_text(r#"{"type":"stls"}"#);
                    }
                }
                Event::SessionFailed(e) => {
                    let f = inner.failure.get_or_insert_with(|| e.into()).clone();
                    inner.close_socket("session ended");
                    for tx in [inner.on_connected.take(), inner.on_greeting.take()].into_iter().flatten() {
                        let _ = tx.send(Err(f.clone()));
                    }
                    if let Some(tx) = inner.on_tls.take() {
                        let _ = tx.send(Err(f.clone()));
                    }
                    for (_, tx) in inner.started.drain() {
                        let _ = tx.send(Err(f.clone()));
                    }
                    for (_, sink) in inner.sinks.drain() {
                        if let Sink::Stream { controller, cancelled: false } = sink {
                            actions.push(Action::ErrorStream(controller, f.clone().into()));
                        }
                    }
                }
                Event::TlsUpgradeRequired | Event::CapabilitiesUpdated => {}
            }
        }
        let out = inner.session.take_output();
        if !out.is_empty()
            && let Some(s) = &inner.socket
        {
            inner.last_activity = js_sys::Date::now();
            let _ = s.send_bytes(&Uint8Array::from(&out[..]));
        }
        actions
    };
    let mut enqueued = false;
    for a in actions {
        match a {
            Action::Transcript(f, o) => {
                let _ = f.call1(&JsValue::NULL, &o);
            }
            Action::Enqueue(controller, chunk) => {
                call_method(&controller, "enqueue", &[chunk.into()]);
                enqueued = true;
            }
            Action::CloseStream(controller) => call_method(&controller, "close", &[]),
            Action::ErrorStream(controller, e) => call_method(&controller, "error", &[e]),
            Action::Progress(f, received, total) => {
                let _ = f.call2(&JsValue::NULL, &received.into(), &total);
            }
        }
    }
    if enqueued {
        // Backpressure: a full stream pauses the socket (the `ws` package
        // can; a browser WebSocket cannot, and keeps delivering).
        let mut inner = shared.borrow_mut();
        let want = inner.any_stream_wants_data();
        inner.set_paused(!want);
    }
}

/// Copies `data` out of the wasm memory into a collected body's blocks.
fn append(blocks: &Array, filled: &mut u32, mut data: &[u8]) {
    while !data.is_empty() {
        let count = blocks.length();
        let mut last: Option<Uint8Array> = count.checked_sub(1).map(|i| blocks.get(i).unchecked_into());
        if last.as_ref().is_none_or(|b| *filled == b.length()) {
            let size = if count == 0 { COLLECT_FIRST_BLOCK } else { COLLECT_BLOCK };
            let block = Uint8Array::new_with_length(size);
            blocks.push(&block);
            last = Some(block);
            *filled = 0;
        }
        let Some(block) = last else { return };
        let n = data.len().min((block.length() - *filled) as usize);
        block.subarray(*filled, *filled + n as u32).copy_from(&data[..n]);
        *filled += n as u32;
        data = &data[n..];
    }
}

/// One `Uint8Array` of exactly `len` octets from a collected body's blocks.
fn join(blocks: &Array, filled: u32, len: usize) -> Uint8Array {
    let out = Uint8Array::new_with_length(len as u32);
    let last = blocks.length().saturating_sub(1);
    let mut at = 0;
    for (i, block) in blocks.iter().enumerate() {
        let block: Uint8Array = block.unchecked_into();
        let used = if i as u32 == last { filled } else { block.length() };
        out.set(&block.subarray(0, used), at);
        at += used;
    }
    out
}

fn call_method(obj: &JsValue, name: &str, args: &[JsValue]) {
    if let Ok(f) = Reflect::get(obj, &name.into())
        && let Some(f) = f.dyn_ref::<Function>()
    {
        let _ = f.apply(obj, &args.iter().collect::<Array>());
    }
}

/// A call's deadline and abort signal.
#[derive(Clone)]
struct Ctx {
    timeout_ms: f64,
    signal: JsValue,
}

/// Removes the abort listener when the wait ends.
struct AbortListener {
    signal: JsValue,
    callback: Closure<dyn FnMut()>,
}

impl Drop for AbortListener {
    fn drop(&mut self) {
        if let Ok(f) = Reflect::get(&self.signal, &"removeEventListener".into())
            && let Some(f) = f.dyn_ref::<Function>()
        {
            let _ = f.call2(&self.signal, &"abort".into(), self.callback.as_ref());
        }
    }
}

fn abort_reason(signal: &JsValue) -> JsValue {
    let reason = Reflect::get(signal, &"reason".into()).unwrap_or(JsValue::UNDEFINED);
    if reason.is_undefined() { js_sys::Error::new("The operation was aborted").into() } else { reason }
}

/// Waits for `rx`; on the deadline or an abort, drops the session (no
/// QUIT) and rejects with `TIMEOUT` or the signal's reason.
async fn wait<T>(
    shared: &Shared,
    rx: oneshot::Receiver<Result<T, Failure>>,
    what: &str,
    ctx: &Ctx,
) -> Result<T, Failure> {
    let ms = ctx.timeout_ms;
    let (ttx, trx) = oneshot::channel::<Result<(), JsValue>>();
    let ttx = Rc::new(RefCell::new(Some(ttx)));
    let _timer = {
        let ttx = ttx.clone();
        Timer::once(ms, move || {
            if let Some(tx) = ttx.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        })
    };
    let _listener = if ctx.signal.is_object() {
        if Reflect::get(&ctx.signal, &"aborted".into()).map(|a| a.is_truthy()).unwrap_or(false) {
            if let Some(tx) = ttx.borrow_mut().take() {
                let _ = tx.send(Err(abort_reason(&ctx.signal)));
            }
            None
        } else {
            let signal = ctx.signal.clone();
            let tx = ttx.clone();
            let callback = Closure::<dyn FnMut()>::new(move || {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Err(abort_reason(&signal)));
                }
            });
            call_method(
                &ctx.signal,
                "addEventListener",
                &[JsValue::from_str("abort"), callback.as_ref().clone()],
            );
            Some(AbortListener { signal: ctx.signal.clone(), callback })
        }
    } else {
        None
    };
    match select(rx, trx).await {
        Either::Left((Ok(v), _)) => v,
        Either::Left((Err(_), _)) => Err(shared
            .borrow()
            .failure
            .clone()
            .unwrap_or_else(|| Failure::new("CONNECTION_CLOSED", "the session ended"))),
        Either::Right((Ok(Ok(())), _)) | Either::Right((Err(_), _)) => {
            let f = Failure::new(
                "TIMEOUT",
                format!("no answer to {what} within {} ms; the session was dropped", js_number(ms)),
            );
            fail(shared, f.clone());
            Err(f)
        }
        Either::Right((Ok(Err(reason)), _)) => {
            fail(
                shared,
                Failure::new("CONNECTION_CLOSED", format!("{what} was aborted; the session was dropped")),
            );
            let mut f = Failure::new("CONNECTION_CLOSED", "aborted");
            f.abort_reason = Some(reason);
            Err(f)
        }
    }
}

fn enqueue_with(
    shared: &Shared,
    cmd: Command,
    sink: Option<Sink>,
) -> Result<(CommandId, oneshot::Receiver<Reply>), Failure> {
    let mut inner = shared.borrow_mut();
    if let Some(f) = &inner.failure {
        return Err(f.clone());
    }
    let id = match sink {
        Some(sink) => {
            let id = inner.session.enqueue_streaming(cmd)?;
            inner.sinks.insert(id, sink);
            id
        }
        None => inner.session.enqueue(cmd)?,
    };
    let (tx, rx) = oneshot::channel();
    inner.waiters.insert(id, tx);
    Ok((id, rx))
}

fn enqueue(shared: &Shared, cmd: Command) -> Result<oneshot::Receiver<Reply>, Failure> {
    enqueue_with(shared, cmd, None).map(|(_, rx)| rx)
}

/// Sends one command and waits for its complete answer (`-ERR` included).
async fn command(shared: &Shared, cmd: Command, ctx: &Ctx) -> Reply {
    let what = cmd.verb();
    let rx = enqueue(shared, cmd)?;
    dispatch(shared);
    wait(shared, rx, what, ctx).await
}

/// Queues a command whose multi-line body is collected in JavaScript (see
/// `Sink::Collect`), up to the core's `max_body`.
fn enqueue_collect(
    shared: &Shared,
    cmd: Command,
    on_progress: Option<Function>,
) -> Result<oneshot::Receiver<Gathered>, Failure> {
    let mut inner = shared.borrow_mut();
    if let Some(f) = &inner.failure {
        return Err(f.clone());
    }
    let id = inner.session.enqueue_streaming(cmd)?;
    let (tx, rx) = oneshot::channel();
    let sink = Sink::Collect {
        tx: Some(tx),
        blocks: Array::new(),
        filled: 0,
        len: 0,
        on_progress,
        total: JsValue::NULL,
    };
    inner.sinks.insert(id, sink);
    Ok(rx)
}

/// Sends one command and waits for its answer, the body collected.
async fn collect(shared: &Shared, cmd: Command, on_progress: Option<Function>, ctx: &Ctx) -> Gathered {
    let what = cmd.verb();
    let rx = enqueue_collect(shared, cmd, on_progress)?;
    dispatch(shared);
    wait(shared, rx, what, ctx).await
}

/// The body of a collected answer, or the server's `-ERR` as an error.
fn collected_body(c: Collected) -> Result<Uint8Array, Failure> {
    ok_or_server_error(c.response)?;
    Ok(c.body.unwrap_or_else(|| Uint8Array::new_with_length(0)))
}

/// STLS: asks, and after `+OK` waits for the handshake and for the CAPA the
/// core asks again under TLS, so the call ends with TLS up and the new
/// capabilities known. `-ERR` comes back as the server's answer.
async fn starttls(shared: &Shared, ctx: &Ctx, handshake: &Ctx) -> Reply {
    let (tls_tx, tls_rx) = oneshot::channel();
    shared.borrow_mut().on_tls = Some(tls_tx);
    let r = command(shared, Command::Stls, ctx).await;
    if !matches!(&r, Ok(r) if r.is_ok()) {
        shared.borrow_mut().on_tls = None;
        return r;
    }
    if let Some(capa) = wait(shared, tls_rx, "the TLS handshake", handshake).await? {
        wait(shared, capa, "CAPA", ctx).await?;
    }
    r
}

fn on_message(shared: &Shared, event: JsValue) {
    let data = Reflect::get(&event, &"data".into()).unwrap_or(JsValue::UNDEFINED);
    if let Some(text) = data.as_string() {
        return on_control(shared, &text);
    }
    let bytes = if data.is_instance_of::<js_sys::ArrayBuffer>() || data.is_instance_of::<Uint8Array>() {
        Uint8Array::new(&data).to_vec()
    } else {
        return fail(shared, Failure::new("PROTOCOL_ERROR", "the bridge sent a frame of an unknown kind"));
    };
    {
        let mut inner = shared.borrow_mut();
        inner.last_activity = js_sys::Date::now();
        inner.session.feed(&bytes);
    }
    dispatch(shared);
}

/// The bridge's control messages (JSON text frames).
fn on_control(shared: &Shared, text: &str) {
    let Ok(msg) = js_sys::JSON::parse(text) else {
        return fail(shared, Failure::new("PROTOCOL_ERROR", "the bridge sent a malformed control message"));
    };
    let field = |k: &str| Reflect::get(&msg, &k.into()).unwrap_or(JsValue::UNDEFINED);
    match field("type").as_string().as_deref() {
        Some("connected") => {
            let mut inner = shared.borrow_mut();
            inner.tls = field("tls");
            if let Some(tx) = inner.on_connected.take() {
                let _ = tx.send(Ok(()));
            }
        }
        Some("tls") => {
            {
                let mut inner = shared.borrow_mut();
                inner.tls = field("tls");
                if field("discarded").as_f64().is_some_and(|n| n > 0.0) {
                    inner.session.record_deviation(crate::proto::Deviation::DataAfterStls);
                }
                let capa = inner.session.tls_established().map(|id| {
                    let (tx, rx) = oneshot::channel();
                    inner.waiters.insert(id, tx);
                    rx
                });
                if let Some(tx) = inner.on_tls.take() {
                    let _ = tx.send(Ok(capa));
                }
            }
            dispatch(shared);
        }
        Some("error") => {
            let code = match field("code").as_string().as_deref() {
                Some("BRIDGE_REJECTED") => "BRIDGE_REJECTED",
                Some("CONNECT_FAILED") => "CONNECT_FAILED",
                Some("TLS_FAILED") => "TLS_FAILED",
                Some("TIMEOUT") => "TIMEOUT",
                Some("PROTOCOL_ERROR") => "PROTOCOL_ERROR",
                _ => "BRIDGE_REJECTED",
            };
            let message = field("message").as_string().unwrap_or_else(|| "the bridge refused".into());
            fail(shared, Failure::new(code, format!("bridge: {message}")));
        }
        // Unknown control messages are for newer clients; ignore them.
        _ => {}
    }
}

fn on_close(shared: &Shared, event: JsValue) {
    let (opened, bridge) = {
        let inner = shared.borrow();
        (inner.opened, inner.bridge.clone())
    };
    if !opened {
        return fail(
            shared,
            Failure::new("BRIDGE_UNREACHABLE", format!("could not open a WebSocket to {bridge}")),
        );
    }
    let code = Reflect::get(&event, &"code".into()).ok().and_then(|c| c.as_f64()).unwrap_or(0.0) as u16;
    {
        let mut inner = shared.borrow_mut();
        inner.socket = None;
        inner.session.connection_closed(&format!("the bridge closed the WebSocket (code {code})"));
        if inner.failure.is_none()
            && let Some(e) = inner.session.fatal().cloned()
        {
            inner.failure = Some(e.into());
        }
    }
    dispatch(shared);
    let f = shared.borrow().failure.clone();
    fail(shared, f.unwrap_or_else(|| Failure::new("CONNECTION_CLOSED", "the connection is closed")));
}

fn on_error(shared: &Shared, event: JsValue) {
    let (opened, bridge) = {
        let inner = shared.borrow();
        (inner.opened, inner.bridge.clone())
    };
    if opened {
        return; // a close event follows
    }
    // The `ws` package says why the handshake failed; browsers do not.
    let detail = Reflect::get(&event, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_default();
    let failure = if detail.contains("Unexpected server response: 403") {
        Failure::new("BRIDGE_REJECTED", format!("the bridge at {bridge} refused the WebSocket (HTTP 403)"))
    } else {
        let why = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        Failure::new("BRIDGE_UNREACHABLE", format!("could not open a WebSocket to {bridge}{why}"))
    };
    fail(shared, failure);
}

fn on_open(shared: &Shared, _event: JsValue) {
    let mut inner = shared.borrow_mut();
    inner.opened = true;
    if let Some(tx) = inner.on_open.take() {
        let _ = tx.send(Ok(()));
    }
}

/// A socket event handler. It is handed to JS for good (`into_js_value`):
/// the socket may fire events after the session is gone, and a dropped
/// closure must never be called. It holds the session weakly.
fn handler(weak: &Weak<RefCell<Inner>>, f: fn(&Shared, JsValue)) -> Function {
    let weak = weak.clone();
    Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        if let Some(shared) = weak.upgrade() {
            f(&shared, ev);
        }
    })
    .into_js_value()
    .unchecked_into()
}

fn get(o: &JsValue, k: &str) -> JsValue {
    if o.is_object() { Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED) } else { JsValue::UNDEFINED }
}

fn opt_string(o: &JsValue, k: &str) -> Result<Option<String>, Failure> {
    let v = get(o, k);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| Failure::invalid_argument(format!("`{k}` must be a string")))
}

/// A number as JavaScript writes it ("1500", "0.5"). Rust's own `f64`
/// formatting would add about 11 KiB of code to the .wasm.
fn js_number(n: f64) -> String {
    js_sys::Number::from(n).to_string_with_radix(10).map(String::from).unwrap_or_default()
}

/// An integer option from 1 to `max`; `None` when left out (null or undefined).
fn opt_count(o: &JsValue, k: &str, max: u32) -> Result<Option<usize>, Failure> {
    let v = get(o, k);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=f64::from(max)).contains(&n) => Ok(Some(n as usize)),
        _ => Err(Failure::invalid_argument(format!("`{k}` must be an integer from 1 to {max}"))),
    }
}

fn opt_ms(o: &JsValue, k: &str) -> Result<Option<f64>, Failure> {
    let v = get(o, k);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(t) if t > 0.0 && t.is_finite() => Ok(Some(t)),
        _ => Err(Failure::invalid_argument(format!("`{k}` must be a positive number of milliseconds"))),
    }
}

fn opt_function(o: &JsValue, k: &str) -> Result<Option<Function>, Failure> {
    match get(o, k) {
        v if v.is_undefined() || v.is_null() => Ok(None),
        v => v
            .dyn_into::<Function>()
            .map(Some)
            .map_err(|_| Failure::invalid_argument(format!("`{k}` must be a function"))),
    }
}

fn opt_signal(o: &JsValue) -> Result<JsValue, Failure> {
    let s = get(o, "signal");
    if s.is_undefined() || s.is_null() {
        return Ok(JsValue::UNDEFINED);
    }
    if !s.is_object() || !get(&s, "addEventListener").is_function() {
        return Err(Failure::invalid_argument("`signal` must be an AbortSignal"));
    }
    Ok(s)
}

/// The options object of `Pop3Client.connect`.
struct ConnectOptions {
    bridge: String,
    host: String,
    port: u16,
    tls: String,
    token: Option<String>,
    deadlines: Deadlines,
    signal: JsValue,
    websocket: JsValue,
    on_transcript: Option<Function>,
    allow_insecure_auth: bool,
    pipelining: bool,
    pipeline_window: usize,
    max_body: usize,
    keepalive_ms: Option<f64>,
}

impl ConnectOptions {
    fn read(o: &JsValue) -> Result<Self, Failure> {
        if !o.is_object() {
            return Err(Failure::invalid_argument("connect() takes an options object"));
        }
        let bridge = opt_string(o, "bridge")?.ok_or_else(|| {
            Failure::invalid_argument(
                "`bridge` (the ws-bridge URL, e.g. ws://127.0.0.1:8080/pop3) is required",
            )
        })?;
        let host = opt_string(o, "host")?
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Failure::invalid_argument("`host` is required"))?;
        let tls = opt_string(o, "tls")?.unwrap_or_else(|| "implicit".into());
        if !["implicit", "starttls", "none"].contains(&tls.as_str()) {
            return Err(Failure::invalid_argument("`tls` must be 'implicit', 'starttls' or 'none'"));
        }
        let port = match get(o, "port") {
            v if v.is_undefined() => {
                if tls == "implicit" {
                    995
                } else {
                    110
                }
            }
            v => match v.as_f64() {
                Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => p as u16,
                _ => return Err(Failure::invalid_argument("`port` must be an integer from 1 to 65535")),
            },
        };
        let base = opt_ms(o, "timeoutMs")?.unwrap_or(DEFAULT_TIMEOUT_MS);
        let t = get(o, "timeouts");
        let deadlines = Deadlines {
            connect: opt_ms(&t, "connect")?.unwrap_or(base),
            tls: opt_ms(&t, "tls")?.unwrap_or(base),
            greeting: opt_ms(&t, "greeting")?.unwrap_or(base),
            command: opt_ms(&t, "command")?.unwrap_or(base),
        };
        let pipeline_window =
            opt_count(o, "pipelineWindow", 4096)?.unwrap_or(Options::default().pipelining_window);
        let max_body = opt_count(o, "maxBodyBytes", MAX_BODY_LIMIT)?.unwrap_or(Options::default().max_body);
        Ok(Self {
            bridge,
            host,
            port,
            tls,
            token: opt_string(o, "token")?,
            deadlines,
            signal: opt_signal(o)?,
            websocket: get(o, "WebSocket"),
            on_transcript: opt_function(o, "onTranscript")?,
            allow_insecure_auth: get(o, "allowInsecureAuth").is_truthy(),
            pipelining: get(o, "pipelining").as_bool() != Some(false),
            pipeline_window,
            max_body,
            keepalive_ms: opt_ms(o, "keepaliveMs")?,
        })
    }
}

/// A plain JS object from key/value pairs (results are plain objects).
pub(super) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

pub(super) fn opt_str(v: &Option<String>) -> JsValue {
    v.as_deref().map_or(JsValue::NULL, JsValue::from_str)
}

pub(super) fn strings(v: &[String]) -> JsValue {
    v.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into()
}

fn capa_js(c: &Capabilities) -> JsValue {
    let expire = c.expire.as_ref().map(|(e, _)| match e {
        Expire::Never => "NEVER".to_string(),
        Expire::Days(d) => d.to_string(),
    });
    object(&[
        ("raw", strings(&c.raw)),
        ("top", c.top.into()),
        ("uidl", c.uidl.into()),
        ("user", c.user.into()),
        ("pipelining", c.pipelining.into()),
        ("respCodes", c.resp_codes.into()),
        ("authRespCode", c.auth_resp_code.into()),
        ("stls", c.stls.into()),
        ("sasl", strings(&c.sasl)),
        ("utf8", c.utf8.is_some().into()),
        ("utf8Args", strings(c.utf8.as_deref().unwrap_or_default())),
        ("loginDelay", c.login_delay.map_or(JsValue::NULL, |(s, _)| s.into())),
        ("expire", opt_str(&expire)),
        ("implementation", opt_str(&c.implementation)),
    ])
}

fn id_size(id: u32, size: u64) -> JsValue {
    object(&[("id", id.into()), ("size", (size as f64).into())])
}

fn id_uid(id: u32, uid: &str) -> JsValue {
    object(&[("id", id.into()), ("uid", uid.into())])
}

struct SummaryJs {
    id: u32,
    uid: Option<String>,
    size: Option<u64>,
    from: Option<String>,
    to: Option<String>,
    subject: Option<String>,
    date: Option<String>,
    message_id: Option<String>,
    /// Why this entry is incomplete (the server refused one of its commands).
    error: Option<String>,
}

fn msg_arg(v: &JsValue, what: &str) -> Result<u32, Failure> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(&n) => Ok(n as u32),
        _ => Err(Failure::invalid_argument(format!("{what} must be a message number (an integer from 1)"))),
    }
}

fn ids_arg(v: &JsValue, what: &str) -> Result<Vec<u32>, Failure> {
    if !Array::is_array(v) {
        return Err(Failure::invalid_argument(format!("{what} takes an array of message numbers")));
    }
    Array::from(v).iter().map(|id| msg_arg(&id, what)).collect()
}

type CallFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<JsValue, Failure>>>>;

/// One instance of the promise glue for every call: each call's future is
/// boxed, which keeps the module small (a generic here costs kilobytes per
/// method).
fn promise_boxed(f: CallFuture) -> Promise {
    future_to_promise(async move { f.await.map_err(JsValue::from) })
}

fn promise<F>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue, Failure>> + 'static,
{
    promise_boxed(Box::pin(f))
}

fn ok_or_server_error(r: Response) -> Result<Response, Failure> {
    r.into_result(false).map_err(Failure::from)
}

/// A POP3 session through ws-bridge (or, in Node, the direct transport that
/// speaks its wire format in-process). Create one with `Pop3Client.connect`.
#[wasm_bindgen]
pub struct Pop3Client {
    shared: Shared,
}

impl std::fmt::Debug for Pop3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client").field("session", &self.shared.borrow().session).finish()
    }
}

impl Drop for Pop3Client {
    fn drop(&mut self) {
        // Freed from JS: drop the connection, never commit.
        fail(&self.shared, Failure::new("CONNECTION_CLOSED", "the client was freed"));
    }
}

async fn connect(opts: ConnectOptions) -> Result<Pop3Client, Failure> {
    let ctor = websocket_constructor(opts.websocket.clone()).ok_or_else(|| {
        Failure::invalid_argument(
            "no WebSocket implementation: pass the `WebSocket` option (e.g. the `ws` package)",
        )
    })?;
    let session = Session::new(Options {
        transcript: opts.on_transcript.is_some(),
        stls_by_transport: true,
        pipelining: opts.pipelining,
        pipelining_window: opts.pipeline_window,
        max_body: opts.max_body,
        tls: opts.tls == "implicit",
        allow_insecure_auth: opts.allow_insecure_auth,
        ..Options::default()
    });
    let shared: Shared = Rc::new(RefCell::new(Inner {
        session,
        socket: None,
        waiters: IdMap::new(),
        started: IdMap::new(),
        sinks: IdMap::new(),
        sent_at: IdMap::new(),
        on_open: None,
        on_connected: None,
        on_greeting: None,
        on_tls: None,
        failure: None,
        opened: false,
        paused: false,
        tls: JsValue::NULL,
        transcript: opts.on_transcript.clone(),
        deadlines: opts.deadlines,
        bridge: opts.bridge.clone(),
        host: opts.host.clone(),
        port: opts.port,
        last_activity: js_sys::Date::now(),
        keepalive: None,
    }));
    let client = Pop3Client { shared: shared.clone() };
    let d = opts.deadlines;
    let phase = |ms: f64| Ctx { timeout_ms: ms, signal: opts.signal.clone() };

    let url = JsValue::from_str(&opts.bridge);
    let socket: Socket = Reflect::construct(&ctor, &Array::of2(&url, &Array::of1(&SUBPROTOCOL.into())))
        .map_err(|e| {
            let why = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
            Failure::invalid_argument(format!("cannot open a WebSocket to `{}`: {why}", opts.bridge))
        })?
        .unchecked_into();
    socket.set_binary_type("arraybuffer");
    let weak = Rc::downgrade(&shared);
    socket.set_onopen(&handler(&weak, on_open));
    socket.set_onmessage(&handler(&weak, on_message));
    socket.set_onclose(&handler(&weak, on_close));
    socket.set_onerror(&handler(&weak, on_error));
    let (open_tx, open_rx) = oneshot::channel();
    let (conn_tx, conn_rx) = oneshot::channel();
    let (greet_tx, greet_rx) = oneshot::channel();
    {
        let mut inner = shared.borrow_mut();
        inner.socket = Some(socket);
        inner.on_open = Some(open_tx);
        inner.on_connected = Some(conn_tx);
        inner.on_greeting = Some(greet_tx);
    }
    wait(&shared, open_rx, "the WebSocket handshake", &phase(d.connect)).await?;

    let hello = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&hello, &k.into(), &v);
    };
    set("type", "connect".into());
    set("v", 1.into());
    set("host", opts.host.clone().into());
    set("port", opts.port.into());
    set("tls", opts.tls.clone().into());
    if let Some(t) = &opts.token {
        set("token", t.into());
    }
    let hello = js_sys::JSON::stringify(&hello).map(String::from).unwrap_or_default();
    if let Some(s) = &shared.borrow().socket {
        let _ = s.send_text(&hello);
    }
    // The bridge answers once TCP (and, for implicit TLS, the handshake) is done.
    let connect_ms = if opts.tls == "implicit" { d.connect + d.tls } else { d.connect };
    wait(&shared, conn_rx, "the bridge's connect", &phase(connect_ms)).await?;
    wait(&shared, greet_rx, "the server greeting", &phase(d.greeting)).await?;

    // What the server offers decides STLS and the login mechanism. A server
    // without CAPA (RFC 1939 only) answers -ERR; that is not a failure.
    command(&shared, Command::Capa, &phase(d.command)).await?;

    if opts.tls == "starttls" {
        let r = starttls(&shared, &phase(d.command), &phase(d.tls)).await?;
        if !r.is_ok() {
            let f = Failure {
                code: "TLS_FAILED",
                message: format!("the server refused STLS: {}", r.text),
                resp_code: r.resp_code.clone(),
                server_text: Some(r.text.clone()),
                abort_reason: None,
            };
            fail(&shared, f.clone());
            return Err(f);
        }
    }
    if let Some(ms) = opts.keepalive_ms {
        start_keepalive(&shared, ms);
    }
    Ok(client)
}

/// NOOP when the session has been idle for `ms` (TRANSACTION state only):
/// keeps NATs and servers' autologout timers from ending a quiet session.
fn start_keepalive(shared: &Shared, ms: f64) {
    let weak = Rc::downgrade(shared);
    let interval = Interval::every((ms / 4.0).max(50.0), move || {
        let Some(shared) = weak.upgrade() else { return };
        let due = {
            let inner = shared.borrow();
            inner.failure.is_none()
                && inner.session.state() == State::Transaction
                && inner.session.outstanding() == 0
                && js_sys::Date::now() - inner.last_activity >= ms
        };
        if due {
            let _ = shared.borrow_mut().session.enqueue(Command::Noop);
            dispatch(&shared);
        }
    });
    shared.borrow_mut().keepalive = Some(interval);
}

/// Readable credentials need TLS to the server unless the caller opted out.
fn check_secure(shared: &Shared, what: &str) -> Result<(), Failure> {
    if shared.borrow().session.readable_credentials_allowed() {
        Ok(())
    } else {
        Err(Failure::new(
            "INSECURE_AUTH_REFUSED",
            format!(
                "{what} would send the password readable over a connection without TLS; use tls: 'implicit' or 'starttls', or pass allowInsecureAuth: true"
            ),
        ))
    }
}

fn client_nonce() -> Result<String, Failure> {
    use base64::Engine as _;
    let bytes = random_bytes(18)
        .ok_or_else(|| Failure::new("UNSUPPORTED", "no crypto.getRandomValues in this runtime"))?;
    // base64 has no ',' — what SCRAM's nonce must avoid.
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Unicode NFKC through the runtime's `String.prototype.normalize`.
fn js_nfkc(s: &str) -> String {
    js_sys::JsString::from(s).normalize("NFKC").into()
}

/// Credentials for a forced or chosen mechanism.
struct Credentials {
    username: String,
    password: Option<String>,
    token: Option<String>,
}

fn credential(v: JsValue, what: &str) -> Result<String, Failure> {
    v.as_string().ok_or_else(|| Failure::invalid_argument(format!("{what} must be a string")))
}

/// RFC 6856: offer UTF-8 mode when the server has it, before credentials
/// that are not ASCII go out.
async fn utf8_if_needed(shared: &Shared, creds: &Credentials, ctx: &Ctx) -> Result<(), Failure> {
    let offered = shared.borrow().session.capabilities().is_some_and(|c| c.utf8.is_some());
    let needed = !creds.username.is_ascii() || creds.password.as_deref().is_some_and(|p| !p.is_ascii());
    if offered && needed && !shared.borrow().session.utf8() {
        command(shared, Command::Utf8, ctx).await?;
    }
    Ok(())
}

/// Logs in with `mechanism`; `-ERR` is `AUTH_FAILED` (or `SERVER_ERROR` when
/// the response code says the credentials were not the problem).
async fn authenticate(
    shared: &Shared,
    mechanism: &str,
    creds: Credentials,
    ctx: &Ctx,
) -> Result<(), Failure> {
    if readable(mechanism) {
        check_secure(shared, mechanism)?;
    }
    let password = || {
        creds
            .password
            .clone()
            .map(Secret::new)
            .ok_or_else(|| Failure::invalid_argument(format!("{mechanism} needs `password`")))
    };
    let token = || {
        creds
            .token
            .clone()
            .map(Secret::new)
            .ok_or_else(|| Failure::invalid_argument(format!("{mechanism} needs `token`")))
    };
    let user = creds.username.as_str();
    utf8_if_needed(shared, &creds, ctx).await?;
    let mech: Box<dyn Mechanism> = match mechanism {
        "USER" => {
            let r = command(shared, Command::User { name: user.to_string() }, ctx).await?;
            r.into_result(true)?;
            let r = command(shared, Command::Pass { password: password()? }, ctx).await?;
            r.into_result(true)?;
            return after_login(shared, ctx).await;
        }
        "APOP" => {
            let stamp = shared.borrow().session.greeting().and_then(|g| g.apop_timestamp.clone());
            let stamp = stamp.ok_or_else(|| {
                Failure::new(
                    "UNSUPPORTED",
                    "the greeting has no valid APOP timestamp; the server does not offer APOP",
                )
            })?;
            let digest = apop_digest(&stamp, &password()?);
            let r = command(shared, Command::Apop { name: user.to_string(), digest }, ctx).await?;
            r.into_result(true)?;
            return after_login(shared, ctx).await;
        }
        "PLAIN" => Box::new(Plain::new(user, password()?)),
        "LOGIN" => Box::new(Login::new(user, password()?)),
        "CRAM-MD5" => Box::new(CramMd5::new(user, password()?)),
        "SCRAM-SHA-1" => {
            Box::new(Scram::new(ScramHash::Sha1, user, password()?, &client_nonce()?).with_nfkc(js_nfkc))
        }
        "SCRAM-SHA-256" => {
            Box::new(Scram::new(ScramHash::Sha256, user, password()?, &client_nonce()?).with_nfkc(js_nfkc))
        }
        "XOAUTH2" => Box::new(XOAuth2::new(user, token()?)),
        "OAUTHBEARER" => {
            let (host, port) = {
                let inner = shared.borrow();
                (inner.host.clone(), inner.port)
            };
            Box::new(OAuthBearer::new(user, token()?).with_target(&host, port))
        }
        other => return Err(Failure::new("UNSUPPORTED", format!("SASL mechanism {other} is not supported"))),
    };
    let r = command(shared, Command::Auth { mechanism: mech }, ctx).await?;
    r.into_result(true)?;
    after_login(shared, ctx).await
}

/// Waits for the CAPA the core asks after login (Gmail announces
/// PIPELINING only then), so `capabilities` and `pipelining` are current
/// when the login call resolves.
async fn after_login(shared: &Shared, ctx: &Ctx) -> Result<(), Failure> {
    let rx = {
        let mut inner = shared.borrow_mut();
        inner.session.take_recapa().map(|id| {
            let (tx, rx) = oneshot::channel();
            inner.waiters.insert(id, tx);
            rx
        })
    };
    if let Some(rx) = rx {
        dispatch(shared);
        wait(shared, rx, "CAPA", ctx).await?;
    }
    Ok(())
}

/// Parses `(…, opts)` where `opts` may also stand in the place of an
/// optional leading argument: `list()`, `list(3)`, `list({ signal })`.
fn split_optional(first: JsValue, second: JsValue) -> (JsValue, JsValue) {
    if first.is_object() && !Array::is_array(&first) && second.is_undefined() {
        (JsValue::UNDEFINED, first)
    } else {
        (first, second)
    }
}

impl Pop3Client {
    fn ctx(&self, opts: &JsValue) -> Result<Ctx, Failure> {
        let command_ms = self.shared.borrow().deadlines.command;
        Ok(Ctx { timeout_ms: opt_ms(opts, "timeoutMs")?.unwrap_or(command_ms), signal: opt_signal(opts)? })
    }

    fn call<F, Fut>(&self, opts: &JsValue, f: F) -> Promise
    where
        F: FnOnce(Shared, Ctx) -> Fut,
        Fut: std::future::Future<Output = Result<JsValue, Failure>> + 'static,
    {
        match self.ctx(opts) {
            Ok(ctx) => promise(f(self.shared.clone(), ctx)),
            Err(e) => promise(async move { Err(e) }),
        }
    }

    /// A streamed body: resolves once the server said `+OK`, with a
    /// `ReadableStream` of its chunks (backpressure pauses the socket).
    fn stream(&self, cmd: Command, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let controller: Rc<RefCell<JsValue>> = Rc::new(RefCell::new(JsValue::UNDEFINED));
            let source = Object::new();
            let start = {
                let controller = controller.clone();
                Closure::once_into_js(move |c: JsValue| {
                    *controller.borrow_mut() = c;
                })
            };
            let _ = Reflect::set(&source, &"start".into(), &start);
            let stream_ctor = Reflect::get(&js_sys::global(), &"ReadableStream".into())
                .ok()
                .and_then(|c| c.dyn_into::<Function>().ok())
                .ok_or_else(|| Failure::new("UNSUPPORTED", "no ReadableStream in this runtime"))?;
            let strategy = Object::new();
            let _ = Reflect::set(&strategy, &"highWaterMark".into(), &STREAM_HIGH_WATER.into());
            let size = Closure::<dyn Fn(JsValue) -> JsValue>::new(|chunk: JsValue| {
                Reflect::get(&chunk, &"byteLength".into()).unwrap_or(JsValue::from_f64(1.0))
            })
            .into_js_value();
            let _ = Reflect::set(&strategy, &"size".into(), &size);
            // pull and cancel reach the session weakly: the stream may outlive it.
            let weak = Rc::downgrade(&s);
            let id_cell: Rc<RefCell<Option<CommandId>>> = Rc::new(RefCell::new(None));
            let pull = {
                let weak = weak.clone();
                Closure::<dyn FnMut(JsValue)>::new(move |_c: JsValue| {
                    if let Some(shared) = weak.upgrade() {
                        let mut inner = shared.borrow_mut();
                        if inner.any_stream_wants_data() {
                            inner.set_paused(false);
                        }
                    }
                })
                .into_js_value()
            };
            let cancel = {
                let id_cell = id_cell.clone();
                Closure::<dyn FnMut(JsValue)>::new(move |_reason: JsValue| {
                    // The server sends the rest anyway: read and drop it.
                    if let (Some(shared), Some(id)) = (weak.upgrade(), *id_cell.borrow()) {
                        let mut inner = shared.borrow_mut();
                        if let Some(Sink::Stream { cancelled, .. }) = inner.sinks.get_mut(&id) {
                            *cancelled = true;
                        }
                        if inner.any_stream_wants_data() {
                            inner.set_paused(false);
                        }
                    }
                })
                .into_js_value()
            };
            let _ = Reflect::set(&source, &"pull".into(), &pull);
            let _ = Reflect::set(&source, &"cancel".into(), &cancel);
            let stream = Reflect::construct(&stream_ctor, &Array::of2(&source, &strategy))
                .map_err(|_| Failure::new("UNSUPPORTED", "could not create a ReadableStream"))?;
            let c = controller.borrow().clone();
            let (id, done) = enqueue_with(&s, cmd, Some(Sink::Stream { controller: c, cancelled: false }))?;
            *id_cell.borrow_mut() = Some(id);
            let (tx, started) = oneshot::channel();
            s.borrow_mut().started.insert(id, tx);
            dispatch(&s);
            wait(&s, started, "the command", &ctx).await?;
            // The rest of the body has no caller waiting: errors reach the stream.
            drop(done);
            Ok(stream)
        })
    }
}

#[wasm_bindgen]
impl Pop3Client {
    /// Opens a session: WebSocket to the bridge, the bridge's connection to
    /// the server, greeting, CAPA, and STLS when `tls: 'starttls'`.
    #[wasm_bindgen(js_name = connect)]
    pub fn connect_js(opts: JsValue) -> Promise {
        promise(async move {
            let opts = ConnectOptions::read(&opts)?;
            connect(opts).await.map(JsValue::from)
        })
    }

    /// The server's greeting text (after `+OK `).
    #[wasm_bindgen(getter)]
    pub fn greeting(&self) -> Option<String> {
        self.shared.borrow().session.greeting().map(|g| g.text.clone())
    }

    /// TLS to the server: `{ protocol, cipher, certificate: { subject, issuer, notAfter } }`, or null.
    #[wasm_bindgen(getter)]
    pub fn tls(&self) -> JsValue {
        self.shared.borrow().tls.clone()
    }

    /// The session's state: AUTHORIZATION, TRANSACTION or CLOSED.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        let inner = self.shared.borrow();
        let s = inner.session.state();
        if inner.failure.is_some() { State::Closed.name() } else { s.name() }.to_string()
    }

    /// Whether commands are being pipelined (the server announced PIPELINING).
    #[wasm_bindgen(getter)]
    pub fn pipelining(&self) -> bool {
        self.shared.borrow().session.pipelining()
    }

    /// Spec deviations the client tolerated so far: `[{ id, description }]`.
    #[wasm_bindgen(getter)]
    pub fn deviations(&self) -> JsValue {
        let inner = self.shared.borrow();
        let list: Array = inner
            .session
            .deviations()
            .iter()
            .map(|d| object(&[("id", d.id().into()), ("description", d.description().into())]))
            .collect();
        list.into()
    }

    /// The capabilities from the latest CAPA (`capa()`'s shape), or null
    /// (none asked yet, or the server has no CAPA).
    #[wasm_bindgen(getter)]
    pub fn capabilities(&self) -> JsValue {
        self.shared.borrow().session.capabilities().map_or(JsValue::NULL, capa_js)
    }

    /// `{ beforeStls, afterStls, afterLogin }`: the latest CAPA of each step
    /// of the session (`capa()`'s shape, or null where there was none).
    #[wasm_bindgen(getter, js_name = capaHistory)]
    pub fn capa_history(&self) -> JsValue {
        let inner = self.shared.borrow();
        let h = inner.session.capa_history();
        let step = |c: &Option<Capabilities>| c.as_ref().map_or(JsValue::NULL, capa_js);
        object(&[
            ("beforeStls", step(&h.before_stls)),
            ("afterStls", step(&h.after_stls)),
            ("afterLogin", step(&h.after_login)),
        ])
    }

    /// The mechanisms `login()` would try now, strongest first: those the
    /// server offers, less the readable ones without TLS (unless
    /// `allowInsecureAuth`); none once logged in.
    #[wasm_bindgen(getter, js_name = loginMechanisms)]
    pub fn login_mechanisms(&self) -> JsValue {
        let inner = self.shared.borrow();
        inner.session.login_mechanisms().into_iter().map(JsValue::from_str).collect::<Array>().into()
    }

    /// Whether the greeting has a valid RFC 1939 timestamp, the only case
    /// in which APOP is used (CVE-2007-1558).
    #[wasm_bindgen(getter, js_name = apopUsable)]
    pub fn apop_usable(&self) -> bool {
        self.shared.borrow().session.apop_usable()
    }

    /// Asks CAPA and returns the parsed capabilities.
    pub fn capa(&self, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let r = ok_or_server_error(command(&s, Command::Capa, &ctx).await?)?;
            let caps = Capabilities::parse(r.body.as_deref().unwrap_or_default());
            Ok(capa_js(&caps))
        })
    }

    /// Logs in with the strongest mechanism the server offers (SCRAM-SHA-256
    /// > SCRAM-SHA-1 > CRAM-MD5 > APOP > PLAIN > LOGIN > USER/PASS; the
    /// readable ones only over TLS unless `allowInsecureAuth`); resolves to
    /// the mechanism used.
    pub fn login(&self, user: JsValue, password: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let username = credential(user, "the user name")?;
            let password = credential(password, "the password")?;
            // The core's choice (proto::login), the same `loginMechanisms` shows.
            let (offered, usable) = {
                let inner = s.borrow();
                (inner.session.offered_mechanisms(), inner.session.login_mechanisms())
            };
            let chosen = usable.first().copied().ok_or_else(|| {
                if offered.is_empty() {
                    Failure::new("UNSUPPORTED", "the server offers no login mechanism this client knows")
                } else {
                    Failure::new(
                        "INSECURE_AUTH_REFUSED",
                        format!(
                            "the server offers only {} here, which would send the password readable without TLS; use tls: 'implicit' or 'starttls', or pass allowInsecureAuth: true",
                            offered.join(", ")
                        ),
                    )
                }
            })?;
            authenticate(&s, chosen, Credentials { username, password: Some(password), token: None }, &ctx).await?;
            Ok(JsValue::from_str(chosen))
        })
    }

    /// Logs in with a named mechanism: `auth('SCRAM-SHA-256', { username,
    /// password })`, `auth('XOAUTH2', { username, token })`; also `USER`
    /// and `APOP`.
    pub fn auth(&self, mechanism: JsValue, credentials: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let mechanism = credential(mechanism, "the mechanism")?.to_ascii_uppercase();
            let creds = Credentials {
                username: credential(get(&credentials, "username"), "`username`")?,
                password: opt_string(&credentials, "password")?,
                token: opt_string(&credentials, "token")?,
            };
            authenticate(&s, &mechanism, creds, &ctx).await?;
            Ok(JsValue::from_str(&mechanism))
        })
    }

    /// RFC 1939 APOP: only when the greeting carries a valid timestamp.
    pub fn apop(&self, user: JsValue, password: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let creds = Credentials {
                username: credential(user, "the user name")?,
                password: Some(credential(password, "the password")?),
                token: None,
            };
            authenticate(&s, "APOP", creds, &ctx).await?;
            Ok("APOP".into())
        })
    }

    pub fn stat(&self, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let r = ok_or_server_error(command(&s, Command::Stat, &ctx).await?)?;
            let (count, size) = parse_stat(&r.text)?;
            Ok(object(&[("count", (count as f64).into()), ("size", (size as f64).into())]))
        })
    }

    /// `list()` → `[{ id, size }]`; `list(n)` → `{ id, size }`.
    pub fn list(&self, msg: JsValue, opts: JsValue) -> Promise {
        let (msg, opts) = split_optional(msg, opts);
        self.call(&opts, |s, ctx| async move {
            let msg =
                if msg.is_undefined() || msg.is_null() { None } else { Some(msg_arg(&msg, "list(n)")?) };
            let r = ok_or_server_error(command(&s, Command::List { msg }, &ctx).await?)?;
            match msg {
                Some(_) => {
                    let (id, size) = parse_list_entry(&r.text)?;
                    Ok(id_size(id, size))
                }
                None => {
                    let list = parse_list(r.body.as_deref().unwrap_or_default())?;
                    Ok(list.into_iter().map(|(id, size)| id_size(id, size)).collect::<Array>().into())
                }
            }
        })
    }

    /// `uidl()` → `[{ id, uid }]`; `uidl(n)` → `{ id, uid }`.
    pub fn uidl(&self, msg: JsValue, opts: JsValue) -> Promise {
        let (msg, opts) = split_optional(msg, opts);
        self.call(&opts, |s, ctx| async move {
            let msg =
                if msg.is_undefined() || msg.is_null() { None } else { Some(msg_arg(&msg, "uidl(n)")?) };
            let r = ok_or_server_error(command(&s, Command::Uidl { msg }, &ctx).await?)?;
            match msg {
                Some(_) => {
                    let (id, uid) = parse_uidl_entry(&r.text)?;
                    Ok(id_uid(id, &uid))
                }
                None => {
                    let list = parse_uidl(r.body.as_deref().unwrap_or_default())?;
                    Ok(list.into_iter().map(|(id, uid)| id_uid(id, &uid)).collect::<Array>().into())
                }
            }
        })
    }

    /// The headers and the first `lines` body lines, as bytes.
    pub fn top(&self, msg: JsValue, lines: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let msg = msg_arg(&msg, "top(n, lines)")?;
            let lines = lines_arg(&lines)?;
            Ok(collected_body(collect(&s, Command::Top { msg, lines }, None, &ctx).await?)?.into())
        })
    }

    /// The whole message, byte-exact after dot-unstuffing. With
    /// `{ onProgress(received, total) }` progress is reported as it arrives
    /// (`total`: the size the server announced, or null).
    pub fn retr(&self, msg: JsValue, opts: JsValue) -> Promise {
        self.call(&opts.clone(), |s, ctx| async move {
            let msg = msg_arg(&msg, "retr(n)")?;
            let on_progress = opt_function(&opts, "onProgress")?;
            Ok(collected_body(collect(&s, Command::Retr { msg }, on_progress, &ctx).await?)?.into())
        })
    }

    /// `RETR n` as a `ReadableStream<Uint8Array>`: the message never sits
    /// whole in memory. Resolves when the server said `+OK`.
    #[wasm_bindgen(js_name = retrStream)]
    pub fn retr_stream(&self, msg: JsValue, opts: JsValue) -> Promise {
        match msg_arg(&msg, "retrStream(n)") {
            Ok(msg) => self.stream(Command::Retr { msg }, opts),
            Err(e) => promise(async move { Err(e) }),
        }
    }

    /// `TOP n lines` as a `ReadableStream<Uint8Array>`.
    #[wasm_bindgen(js_name = topStream)]
    pub fn top_stream(&self, msg: JsValue, lines: JsValue, opts: JsValue) -> Promise {
        match (msg_arg(&msg, "topStream(n, lines)"), lines_arg(&lines)) {
            (Ok(msg), Ok(lines)) => self.stream(Command::Top { msg, lines }, opts),
            (Err(e), _) | (_, Err(e)) => promise(async move { Err(e) }),
        }
    }

    /// For every message (or `ids`): size, UID and decoded headers, from
    /// LIST + UIDL + `TOP n 0`, pipelined. `{ onProgress(done, total) }`.
    pub fn summaries(&self, ids: JsValue, opts: JsValue) -> Promise {
        let (ids, opts) = split_optional(ids, opts);
        self.call(&opts.clone(), |s, ctx| async move {
            let on_progress = opt_function(&opts, "onProgress")?;
            let given = if ids.is_undefined() || ids.is_null() {
                None
            } else {
                Some(ids_arg(&ids, "summaries(ids)")?)
            };
            let mut entries: Vec<SummaryJs> = Vec::new();
            let mut tops = Vec::new();
            match given {
                None => {
                    let list = enqueue(&s, Command::List { msg: None })?;
                    let uidl = enqueue(&s, Command::Uidl { msg: None })?;
                    dispatch(&s);
                    let list = ok_or_server_error(wait(&s, list, "LIST", &ctx).await?)?;
                    let uidl = wait(&s, uidl, "UIDL", &ctx).await?;
                    let mut uids = match uidl.is_ok() {
                        true => parse_uidl(uidl.body.as_deref().unwrap_or_default())?,
                        false => Vec::new(),
                    };
                    uids.sort_unstable_by_key(|(id, _)| *id);
                    let uid_of =
                        |id: u32| uids.binary_search_by_key(&id, |(k, _)| *k).ok().map(|i| uids[i].1.clone());
                    for (id, size) in parse_list(list.body.as_deref().unwrap_or_default())? {
                        tops.push(enqueue(&s, Command::Top { msg: id, lines: 0 })?);
                        entries.push(SummaryJs::new(id, Some(size), uid_of(id)));
                    }
                    dispatch(&s);
                    fill_summaries(&s, &ctx, &mut entries, tops, on_progress).await?;
                }
                Some(ids) => {
                    let mut per_id = Vec::new();
                    for &id in &ids {
                        let list = enqueue(&s, Command::List { msg: Some(id) })?;
                        let uidl = enqueue(&s, Command::Uidl { msg: Some(id) })?;
                        tops.push(enqueue(&s, Command::Top { msg: id, lines: 0 })?);
                        per_id.push((list, uidl));
                        entries.push(SummaryJs::new(id, None, None));
                    }
                    dispatch(&s);
                    for (entry, (list, uidl)) in entries.iter_mut().zip(per_id) {
                        let list = wait(&s, list, "LIST", &ctx).await?;
                        match list.clone().into_result(false) {
                            Ok(r) => entry.size = Some(parse_list_entry(&r.text)?.1),
                            Err(e) => entry.error = Some(e.to_string()),
                        }
                        let uidl = wait(&s, uidl, "UIDL", &ctx).await?;
                        if uidl.is_ok() {
                            entry.uid = Some(parse_uidl_entry(&uidl.text)?.1);
                        }
                    }
                    fill_summaries(&s, &ctx, &mut entries, tops, on_progress).await?;
                }
            }
            Ok(entries.iter().map(SummaryJs::to_js).collect::<Array>().into())
        })
    }

    /// RETR for many messages, pipelined: `[{ id, body, error }]` in the
    /// order given (`body` null where the server refused).
    #[wasm_bindgen(js_name = retrMany)]
    pub fn retr_many(&self, ids: JsValue, opts: JsValue) -> Promise {
        self.call(&opts.clone(), |s, ctx| async move {
            let ids = ids_arg(&ids, "retrMany(ids)")?;
            let on_progress = opt_function(&opts, "onProgress")?;
            let rxs = ids
                .iter()
                .map(|&msg| enqueue_collect(&s, Command::Retr { msg }, None))
                .collect::<Result<Vec<_>, _>>()?;
            dispatch(&s);
            let out = Array::new();
            let total = ids.len() as f64;
            for (k, (id, rx)) in ids.iter().zip(rxs).enumerate() {
                let r = wait(&s, rx, "RETR", &ctx).await?;
                let o = Object::new();
                let _ = Reflect::set(&o, &"id".into(), &(*id).into());
                match collected_body(r) {
                    Ok(body) => {
                        let _ = Reflect::set(&o, &"body".into(), &body);
                        let _ = Reflect::set(&o, &"error".into(), &JsValue::NULL);
                    }
                    Err(f) => {
                        let _ = Reflect::set(&o, &"body".into(), &JsValue::NULL);
                        let _ = Reflect::set(&o, &"error".into(), &f.into());
                    }
                }
                out.push(&o);
                if let Some(f) = &on_progress {
                    let _ = f.call2(&JsValue::NULL, &((k + 1) as f64).into(), &total.into());
                }
            }
            Ok(out.into())
        })
    }

    /// DELE for many messages, pipelined: `[{ id, error }]` (`error` null
    /// when marked). Nothing is deleted until `quit()`.
    #[wasm_bindgen(js_name = deleMany)]
    pub fn dele_many(&self, ids: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let ids = ids_arg(&ids, "deleMany(ids)")?;
            let rxs =
                ids.iter().map(|&msg| enqueue(&s, Command::Dele { msg })).collect::<Result<Vec<_>, _>>()?;
            dispatch(&s);
            let out = Array::new();
            for (id, rx) in ids.iter().zip(rxs) {
                let r = wait(&s, rx, "DELE", &ctx).await?;
                let o = Object::new();
                let _ = Reflect::set(&o, &"id".into(), &(*id).into());
                let error = match ok_or_server_error(r) {
                    Ok(_) => JsValue::NULL,
                    Err(f) => f.into(),
                };
                let _ = Reflect::set(&o, &"error".into(), &error);
                out.push(&o);
            }
            Ok(out.into())
        })
    }

    /// Marks a message deleted; it goes only when `quit()` is answered.
    pub fn dele(&self, msg: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let msg = msg_arg(&msg, "dele(n)")?;
            let r = ok_or_server_error(command(&s, Command::Dele { msg }, &ctx).await?)?;
            Ok(r.text.into())
        })
    }

    pub fn rset(&self, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let r = ok_or_server_error(command(&s, Command::Rset, &ctx).await?)?;
            Ok(r.text.into())
        })
    }

    pub fn noop(&self, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let r = ok_or_server_error(command(&s, Command::Noop, &ctx).await?)?;
            Ok(r.text.into())
        })
    }

    /// Sends one command line as typed and returns the answer whatever it
    /// is: `{ ok, status, respCode, text, body }` (`body`: Uint8Array for
    /// multi-line answers, else null). `-ERR` does not reject.
    pub fn raw(&self, line: JsValue, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let line = credential(line, "the command line")?;
            let cmd = Command::parse_raw(&line)?;
            if matches!(cmd, Command::Pass { .. }) {
                check_secure(&s, "PASS")?;
            }
            let logs_in = matches!(cmd, Command::Pass { .. } | Command::Apop { .. });
            let (r, body) = match cmd {
                // Resolves once TLS is up (or with the server's -ERR).
                Command::Stls => {
                    let tls_ms = s.borrow().deadlines.tls;
                    let handshake = Ctx { timeout_ms: tls_ms, signal: ctx.signal.clone() };
                    (starttls(&s, &ctx, &handshake).await?, None)
                }
                // The core reads CAPA itself: its body stays in the core.
                Command::Capa => {
                    let r = command(&s, cmd, &ctx).await?;
                    let body = r.body.as_deref().map(Uint8Array::from);
                    (r, body)
                }
                cmd if cmd.is_multiline() => {
                    let c = collect(&s, cmd, None, &ctx).await?;
                    (c.response, c.body)
                }
                cmd => (command(&s, cmd, &ctx).await?, None),
            };
            if logs_in && r.is_ok() {
                // As login(): the call ends with the new capabilities known.
                after_login(&s, &ctx).await?;
            }
            let o = Object::new();
            let set = |k: &str, v: JsValue| {
                let _ = Reflect::set(&o, &k.into(), &v);
            };
            set("ok", r.is_ok().into());
            set("status", (if r.status == Status::Ok { "+OK" } else { "-ERR" }).into());
            set("respCode", r.resp_code.as_deref().map_or(JsValue::NULL, JsValue::from_str));
            set("text", r.text.as_str().into());
            set("body", body.map_or(JsValue::NULL, JsValue::from));
            Ok(o.into())
        })
    }

    /// QUIT: the server commits the deletions, then the connection closes.
    pub fn quit(&self, opts: JsValue) -> Promise {
        self.call(&opts, |s, ctx| async move {
            let r = command(&s, Command::Quit, &ctx).await;
            s.borrow_mut().close_socket("quit");
            let r = ok_or_server_error(r?)?;
            Ok(r.text.into())
        })
    }

    /// Drops the session without QUIT: nothing marked is deleted.
    pub fn close(&self) {
        fail(
            &self.shared,
            Failure::new("CONNECTION_CLOSED", "the session was closed by close(); nothing was committed"),
        );
    }
}

fn lines_arg(lines: &JsValue) -> Result<u32, Failure> {
    match lines.as_f64() {
        Some(l) if l.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&l) => Ok(l as u32),
        _ => Err(Failure::invalid_argument("lines must be an integer from 0")),
    }
}

impl SummaryJs {
    fn to_js(&self) -> JsValue {
        object(&[
            ("id", self.id.into()),
            ("uid", opt_str(&self.uid)),
            ("size", self.size.map_or(JsValue::NULL, |s| (s as f64).into())),
            ("from", opt_str(&self.from)),
            ("to", opt_str(&self.to)),
            ("subject", opt_str(&self.subject)),
            ("date", opt_str(&self.date)),
            ("messageId", opt_str(&self.message_id)),
            ("error", opt_str(&self.error)),
        ])
    }

    fn new(id: u32, size: Option<u64>, uid: Option<String>) -> Self {
        SummaryJs {
            id,
            uid,
            size,
            from: None,
            to: None,
            subject: None,
            date: None,
            message_id: None,
            error: None,
        }
    }
}

/// Waits for the `TOP n 0` answers in order and decodes their headers.
async fn fill_summaries(
    s: &Shared,
    ctx: &Ctx,
    entries: &mut [SummaryJs],
    tops: Vec<oneshot::Receiver<Reply>>,
    on_progress: Option<Function>,
) -> Result<(), Failure> {
    let total = entries.len() as f64;
    for (k, (entry, rx)) in entries.iter_mut().zip(tops).enumerate() {
        let r = wait(s, rx, "TOP", ctx).await?;
        match ok_or_server_error(r) {
            Ok(r) => {
                let h = summarize(r.body.as_deref().unwrap_or_default());
                entry.from = h.from;
                entry.to = h.to;
                entry.subject = h.subject;
                entry.date = h.date;
                entry.message_id = h.message_id;
            }
            Err(f) => {
                entry.error.get_or_insert(f.message);
            }
        }
        if let Some(f) = &on_progress {
            let _ = f.call2(&JsValue::NULL, &((k + 1) as f64).into(), &total.into());
        }
    }
    Ok(())
}
