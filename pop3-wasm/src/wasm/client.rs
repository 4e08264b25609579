//! `Pop3Client`: the promise-based API of the README over the driver
//! ([`crate::driver`]), thin in automerge-wasm's way: each method reads its
//! JavaScript arguments, starts an operation in the driver, and converts
//! what comes back. Every decision (which mechanism, when to re-ask CAPA,
//! the deadlines, STLS, where TLS ends) is the driver's.
//!
//! ```text
//!   JS call ──► Request ──► Driver ──Transmit──► transport (WebSocket to ws-bridge, or Node's socket adapter)
//!   Promise ◄── Output  ◄── Driver ◄──inputs──── transport events; one timer at driver.poll_timeout()
//! ```
//!
//! `Inner` is shared by the transport's event handlers, the timer and the
//! calls. JS callbacks (promises, transcript, progress, stream controllers)
//! are collected while `Inner` is borrowed and run after the borrow ends,
//! so a callback may call back into the client.
//!
//! Message bodies (RETR, TOP, `raw`) never sit whole in the wasm memory,
//! which never shrinks once grown: the driver hands each decoded piece
//! over as it arrives, and it goes straight to JavaScript (a stream's
//! queue, or the blocks a collected body is joined from once, at the end).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::failure::js_error;
use super::js::{Socket, Timer, random_bytes, websocket_constructor};
use super::transport::{Handlers, Transport};
use crate::driver::{
    Config, Deadlines, Driver, Event, Failure, Millis, OpId, Output, PhaseMark, RawBody, Request, Route,
    Summary, TlsSummary, TransportFailure,
};
use crate::proto::{Capabilities, Command, Direction, ErrorCode, Expire, Status};
use crate::wire::{self, CertificateInfo, ConnectFailure, ServerMessage, TlsInfo, TlsMode, TlsReason, Token};

// The package's TypeScript types come from here, next to the code that
// makes each shape (wasm-bindgen writes them into pkg/pop3_wasm.d.ts;
// pop3-wasm/js/index.d.ts re-exports them). Every method is
// `skip_typescript`: the class is declared below, with its overloads.
#[wasm_bindgen(typescript_custom_section)]
const TS_IMPORTS: &'static str = r#"
import type { Pop3Error } from '../js/errors.js';
import type { TlsReason } from '../js/error-codes.js';
"#;

/// The largest `maxBodyBytes`: a wasm32 buffer holds at most `isize::MAX`.
const MAX_BODY_LIMIT: u32 = 2_147_483_647;
/// Bytes a `ReadableStream` may hold before the transport is paused.
const STREAM_HIGH_WATER: f64 = 1024.0 * 1024.0;
/// A collected body is gathered in JS blocks of this size (the first one
/// smaller, for the many small messages): big enough that the allocator
/// maps them on their own and hands them back to the system once dropped.
const COLLECT_FIRST_BLOCK: u32 = 64 * 1024;
const COLLECT_BLOCK: u32 = 1024 * 1024;

type Shared = Rc<RefCell<Inner>>;

/// How a finished operation's output becomes a JS value.
pub(super) enum Kind {
    Connect,
    /// `runDiagnosis`: resolves with a `Diagnosis` (the session is over).
    #[cfg(feature = "diagnose")]
    Diagnosis,
    /// Resolves with the converted output.
    Value,
    /// `retrMany`, `deleMany`: the ids, for the result objects.
    RetrMany(Vec<u32>),
    DeleMany(Vec<u32>),
    /// `retrStream`/`topStream`: the stream to resolve with.
    Stream(JsValue),
}

impl Kind {
    /// The session's first operation: until it ends, only CONNECTING
    /// holds the session.
    fn opens(&self) -> bool {
        match self {
            Kind::Connect => true,
            #[cfg(feature = "diagnose")]
            Kind::Diagnosis => true,
            _ => false,
        }
    }
}

/// A call waiting for its operation.
struct Pending {
    op: OpId,
    kind: Kind,
    resolve: Function,
    reject: Function,
    /// `retr`'s `onProgress(received, total)`, or `summaries`/`retrMany`'s
    /// `onProgress(done, total)`.
    on_progress: Option<Function>,
    /// The AbortSignal's reason, once it fired: the call rejects with it.
    aborted: Option<JsValue>,
    _abort: Option<AbortListener>,
}

/// A body collected for the caller, in JS blocks (`filled`: octets used in
/// the last one).
struct Blocks {
    op: OpId,
    part: usize,
    blocks: Array,
    filled: u32,
    len: usize,
    /// The size the server announced, for `onProgress`.
    total: JsValue,
}

/// A streamed body's `ReadableStream` controller.
struct StreamSink {
    op: OpId,
    controller: JsValue,
    cancelled: bool,
}

/// JS calls to make once `Inner` is no longer borrowed.
enum Action {
    Call(Function, Vec<JsValue>),
    Method(JsValue, &'static str, Vec<JsValue>),
}

struct Inner {
    driver: Driver,
    transport: Option<Transport>,
    pending: Vec<Pending>,
    blocks: Vec<Blocks>,
    streams: Vec<StreamSink>,
    transcript: Option<Function>,
    on_phase: Option<Function>,
    timer: Option<(Millis, Timer)>,
    paused: bool,
}

impl Inner {
    fn set_paused(&mut self, pause: bool) {
        if self.paused != pause {
            if let Some(t) = &self.transport {
                t.set_paused(pause);
            }
            self.paused = pause;
        }
    }

    /// Whether every streamed body can take more: otherwise the transport
    /// stays paused, where the runtime can.
    fn streams_want_data(&self) -> bool {
        self.streams.iter().all(|s| s.cancelled || desired_size(&s.controller) > 0.0)
    }

    fn take_pending(&mut self, op: OpId) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.op == op)?;
        Some(self.pending.remove(i))
    }

    fn take_blocks(&mut self, op: OpId, part: usize) -> Option<Blocks> {
        let i = self.blocks.iter().position(|b| b.op == op && b.part == part)?;
        Some(self.blocks.remove(i))
    }
}

fn now() -> Millis {
    js_sys::Date::now()
}

fn desired_size(controller: &JsValue) -> f64 {
    Reflect::get(controller, &"desiredSize".into()).ok().and_then(|v| v.as_f64()).unwrap_or(1.0)
}

thread_local! {
    /// Sessions still connecting: nothing else holds them until the
    /// `Pop3Client` exists (the transport's handlers hold them weakly).
    static CONNECTING: RefCell<Vec<Shared>> = const { RefCell::new(Vec::new()) };
}

/// Feeds the driver one input, then carries out what it asks for.
fn input(shared: &Shared, f: impl FnOnce(&mut Driver, Millis)) {
    f(&mut shared.borrow_mut().driver, now());
    pump(shared);
}

/// Carries out the driver's transmits and events, then sets the timer.
fn pump(shared: &Shared) {
    loop {
        let mut actions = Vec::new();
        let moved = {
            let mut guard = shared.borrow_mut();
            let inner = &mut *guard;
            let mut moved = false;
            while let Some(t) = inner.driver.poll_transmit() {
                moved = true;
                if let Some(transport) = &inner.transport {
                    transport.transmit(t);
                }
            }
            while let Some(ev) = inner.driver.poll_event() {
                moved = true;
                event(shared, inner, ev, &mut actions);
            }
            moved
        };
        let enqueued = actions.iter().any(|a| matches!(a, Action::Method(_, "enqueue", _)));
        for a in actions {
            match a {
                Action::Call(f, args) => {
                    let _ = f.apply(&JsValue::NULL, &args.iter().collect::<Array>());
                }
                Action::Method(obj, name, args) => call_method(&obj, name, &args),
            }
        }
        if enqueued {
            // Backpressure: a full stream pauses the transport (the `ws`
            // package and the socket adapter can; a browser WebSocket
            // cannot, and keeps delivering).
            let mut inner = shared.borrow_mut();
            let want = inner.streams_want_data();
            inner.set_paused(!want);
        }
        if !moved {
            break;
        }
    }
    schedule(shared);
}

/// One timer, at the driver's next deadline (or keepalive). A timer for
/// the keepalive alone does not keep a Node process alive.
fn schedule(shared: &Shared) {
    let mut inner = shared.borrow_mut();
    let at = inner.driver.poll_timeout();
    if inner.timer.as_ref().map(|(t, _)| *t) == at {
        return;
    }
    inner.timer = at.map(|at| {
        let weak = Rc::downgrade(shared);
        let timer = Timer::once((at - now()).max(0.0), move || {
            if let Some(shared) = weak.upgrade() {
                shared.borrow_mut().timer = None;
                input(&shared, |d, now| d.handle_timeout(now));
            }
        });
        if !inner.driver.waiting() {
            timer.unref();
        }
        (at, timer)
    });
}

/// One driver event: promises to settle, bodies to copy out, callbacks.
fn event(shared: &Shared, inner: &mut Inner, ev: Event, actions: &mut Vec<Action>) {
    match ev {
        Event::Done { op, result } => {
            let Some(p) = inner.take_pending(op) else { return };
            if p.kind.opens() {
                // From now on the session is held by its Pop3Client (or dropped).
                CONNECTING.with(|l| l.borrow_mut().retain(|s| !Rc::ptr_eq(s, shared)));
            }
            let value = match (result, &p.aborted) {
                (_, Some(reason)) => Err(reason.clone()),
                (Ok(out), None) => Ok(output(shared, inner, op, &p.kind, out)),
                (Err(f), None) => Err(js_error(&f)),
            };
            if value.is_err() {
                inner.blocks.retain(|b| b.op != op);
                inner.streams.retain(|s| s.op != op);
            }
            match value {
                Ok(v) => actions.push(Action::Call(p.resolve, vec![v])),
                Err(e) => actions.push(Action::Call(p.reject, vec![e])),
            }
        }
        Event::Transcript { dir, line, latency } => {
            if let Some(f) = &inner.transcript {
                let o = object(&[
                    ("dir", if dir == Direction::C { "C" } else { "S" }.into()),
                    ("line", line.into()),
                ]);
                if let Some(ms) = latency {
                    let _ = Reflect::set(&o, &"latencyMs".into(), &ms.into());
                }
                actions.push(Action::Call(f.clone(), vec![o]));
            }
        }
        Event::BodyStarted { op, part, size } => {
            if inner.streams.iter().any(|s| s.op == op) {
                return;
            }
            let total = size.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64));
            inner.blocks.push(Blocks { op, part, blocks: Array::new(), filled: 0, len: 0, total });
        }
        Event::Body { op, part, data } => {
            if let Some(s) = inner.streams.iter().find(|s| s.op == op) {
                if !s.cancelled {
                    let chunk = Uint8Array::from(&data[..]);
                    actions.push(Action::Method(s.controller.clone(), "enqueue", vec![chunk.into()]));
                }
                return;
            }
            let Some(b) = inner.blocks.iter_mut().find(|b| b.op == op && b.part == part) else { return };
            append(&b.blocks, &mut b.filled, &data);
            b.len += data.len();
            let (len, total) = (b.len, b.total.clone());
            // retr's onProgress(received, total); retrMany reports per message.
            if let Some(p) = inner.pending.iter().find(|p| p.op == op && matches!(p.kind, Kind::Value))
                && let Some(f) = &p.on_progress
            {
                actions.push(Action::Call(f.clone(), vec![(len as f64).into(), total]));
            }
        }
        Event::BodyEnded { op, result, .. } => {
            if let Some(i) = inner.streams.iter().position(|s| s.op == op) {
                let s = inner.streams.remove(i);
                if !s.cancelled {
                    match result {
                        Ok(()) => actions.push(Action::Method(s.controller, "close", vec![])),
                        Err(f) => actions.push(Action::Method(s.controller, "error", vec![js_error(&f)])),
                    }
                }
                if inner.streams.is_empty() {
                    inner.set_paused(false);
                }
            }
        }
        Event::Progress { op, done, total } => {
            if let Some(f) = inner.pending.iter().find(|p| p.op == op).and_then(|p| p.on_progress.clone()) {
                actions.push(Action::Call(f, vec![(done as f64).into(), (total as f64).into()]));
            }
        }
        Event::PhaseEnded(mark) => {
            if let Some(f) = &inner.on_phase {
                actions.push(Action::Call(f.clone(), vec![phase_js(&mark)]));
            }
        }
    }
}

/// An operation's output as the JS value its call resolves to.
fn output(shared: &Shared, inner: &mut Inner, op: OpId, kind: &Kind, out: Output) -> JsValue {
    match (kind, out) {
        (Kind::Connect, _) => JsValue::from(Pop3Client { shared: shared.clone() }),
        #[cfg(feature = "diagnose")]
        (_, Output::Diagnosis(facts)) => super::diagnose::diagnosis_js(facts),
        (Kind::Stream(stream), _) => stream.clone(),
        (Kind::RetrMany(ids), Output::RetrMany(results)) => ids
            .iter()
            .zip(results)
            .enumerate()
            .map(|(part, (id, r))| {
                let body = inner.take_blocks(op, part);
                let (body, error) = match r {
                    Ok(()) => {
                        (body.map_or_else(|| Uint8Array::new_with_length(0), joined).into(), JsValue::NULL)
                    }
                    Err(f) => (JsValue::NULL, js_error(&f)),
                };
                object(&[("id", (*id).into()), ("body", body), ("error", error)])
            })
            .collect::<Array>()
            .into(),
        (_, Output::Connected) => JsValue::UNDEFINED,
        (_, Output::Text(t)) => t.into(),
        (_, Output::Capabilities(c)) => capa_js(&c),
        (_, Output::Stat { count, size }) => {
            object(&[("count", (count as f64).into()), ("size", (size as f64).into())])
        }
        (_, Output::List(list)) => {
            list.into_iter().map(|(id, size)| id_size(id, size)).collect::<Array>().into()
        }
        (_, Output::ListOne(id, size)) => id_size(id, size),
        (_, Output::Uidl(list)) => {
            list.into_iter().map(|(id, uid)| id_uid(id, &uid)).collect::<Array>().into()
        }
        (_, Output::UidlOne(id, uid)) => id_uid(id, &uid),
        (_, Output::Collected) => {
            inner.take_blocks(op, 0).map_or_else(|| Uint8Array::new_with_length(0), joined).into()
        }
        (_, Output::LoggedIn(m)) => m.into(),
        (_, Output::Summaries(list)) => list.iter().map(summary_js).collect::<Array>().into(),
        (Kind::DeleMany(ids), Output::DeleMany(results)) => ids
            .iter()
            .zip(results)
            .map(|(id, r)| {
                object(&[("id", (*id).into()), ("error", r.err().map_or(JsValue::NULL, |f| js_error(&f)))])
            })
            .collect::<Array>()
            .into(),
        (_, Output::Raw { response: r, body }) => {
            let body = match body {
                RawBody::None => JsValue::NULL,
                RawBody::Inline => r.body.as_deref().map_or(JsValue::NULL, |b| Uint8Array::from(b).into()),
                RawBody::Collected => {
                    inner.take_blocks(op, 0).map_or_else(|| Uint8Array::new_with_length(0), joined).into()
                }
            };
            object(&[
                ("ok", r.is_ok().into()),
                ("status", (if r.status == Status::Ok { "+OK" } else { "-ERR" }).into()),
                ("respCode", opt_str(&r.resp_code)),
                ("text", r.text.as_str().into()),
                ("body", body),
            ])
        }
        (_, Output::StreamOpen | Output::RetrMany(_) | Output::DeleMany(_)) => JsValue::UNDEFINED,
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

/// One `Uint8Array` of exactly the body's octets.
fn joined(b: Blocks) -> Uint8Array {
    let out = Uint8Array::new_with_length(b.len as u32);
    let last = b.blocks.length().saturating_sub(1);
    let mut at = 0;
    for (i, block) in b.blocks.iter().enumerate() {
        let block: Uint8Array = block.unchecked_into();
        let used = if i as u32 == last { b.filled } else { block.length() };
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

/// Removes the abort listener when the call ends.
struct AbortListener {
    signal: JsValue,
    callback: Closure<dyn FnMut()>,
}

impl Drop for AbortListener {
    fn drop(&mut self) {
        call_method(
            &self.signal,
            "removeEventListener",
            &[JsValue::from_str("abort"), self.callback.as_ref().clone()],
        );
    }
}

fn abort_reason(signal: &JsValue) -> JsValue {
    let reason = Reflect::get(signal, &"reason".into()).unwrap_or(JsValue::UNDEFINED);
    if reason.is_undefined() { js_sys::Error::new("The operation was aborted").into() } else { reason }
}

/// The caller aborted `op`: the session is dropped (no QUIT) and the call
/// rejects with the signal's reason.
fn on_abort(shared: &Shared, op: OpId, signal: &JsValue) {
    {
        let mut inner = shared.borrow_mut();
        let Some(p) = inner.pending.iter_mut().find(|p| p.op == op) else { return };
        p.aborted = Some(abort_reason(signal));
    }
    input(shared, |d, now| d.abort(now, op));
}

/// Starts `request` and returns the promise of its result.
fn call(shared: &Shared, request: Request, ctx: Ctx, kind: Kind, on_progress: Option<Function>) -> Promise {
    call_then(shared, request, ctx, kind, on_progress, |_, _| {})
}

/// `call`, with `register` run once the operation has its id, before any
/// of its events are handled.
fn call_then(
    shared: &Shared,
    request: Request,
    ctx: Ctx,
    kind: Kind,
    on_progress: Option<Function>,
    register: impl FnOnce(&mut Inner, OpId),
) -> Promise {
    let mut settle = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let Some((resolve, reject)) = settle else { return promise };
    let op = {
        let mut inner = shared.borrow_mut();
        let op = inner.driver.start(now(), request, ctx.timeout_ms);
        register(&mut inner, op);
        op
    };
    let abort = if ctx.signal.is_object() {
        let weak = Rc::downgrade(shared);
        let signal = ctx.signal.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = weak.upgrade() {
                on_abort(&shared, op, &signal);
            }
        });
        call_method(
            &ctx.signal,
            "addEventListener",
            &[JsValue::from_str("abort"), callback.as_ref().clone()],
        );
        Some(AbortListener { signal: ctx.signal.clone(), callback })
    } else {
        None
    };
    shared.borrow_mut().pending.push(Pending {
        op,
        kind,
        resolve,
        reject,
        on_progress,
        aborted: None,
        _abort: abort,
    });
    if Reflect::get(&ctx.signal, &"aborted".into()).is_ok_and(|a| a.is_truthy()) {
        on_abort(shared, op, &ctx.signal);
    }
    pump(shared);
    promise
}

pub(super) fn rejected(e: impl Into<JsValue>) -> Promise {
    Promise::reject(&e.into())
}

/// A call's deadline and abort signal.
struct Ctx {
    timeout_ms: Option<Millis>,
    signal: JsValue,
}

impl Ctx {
    fn read(opts: &JsValue) -> Result<Ctx, Failure> {
        Ok(Ctx { timeout_ms: opt_ms(opts, "timeoutMs")?, signal: opt_signal(opts)? })
    }
}

// ------------------------------------------------------- transport events

fn on_open(shared: &Shared, _event: JsValue) {
    let protocol = shared.borrow().transport.as_ref().map(Transport::protocol).unwrap_or_default();
    input(shared, |d, now| d.opened(now, &protocol));
}

fn on_message(shared: &Shared, event: JsValue) {
    let data = Reflect::get(&event, &"data".into()).unwrap_or(JsValue::UNDEFINED);
    if let Some(text) = data.as_string() {
        return on_control(shared, &text);
    }
    if data.is_instance_of::<js_sys::ArrayBuffer>() || data.is_instance_of::<Uint8Array>() {
        let bytes = Uint8Array::new(&data).to_vec();
        input(shared, |d, now| d.data(now, &bytes));
    } else {
        input(shared, |d, now| d.malformed_control(now, "a frame of an unknown kind"));
    }
}

/// The bridge's control messages (JSON text frames), read with the
/// runtime's JSON.parse into the wire format's types.
fn on_control(shared: &Shared, text: &str) {
    let Ok(msg) = js_sys::JSON::parse(text) else {
        return input(shared, |d, now| d.malformed_control(now, "a malformed control message"));
    };
    let field = |k: &str| get(&msg, k);
    let message = match field("type").as_string().as_deref() {
        Some("connected") => ServerMessage::Connected {
            tls: tls_info(&field("tls")),
            end_to_end: field("endToEnd").as_bool() == Some(true),
        },
        Some("tls") => ServerMessage::Tls {
            tls: tls_info(&field("tls")).unwrap_or_default(),
            discarded: field("discarded").as_f64().unwrap_or(0.0) as usize,
        },
        Some("error") => ServerMessage::Error {
            code: field("code").as_string().unwrap_or_default(),
            message: field("message").as_string().unwrap_or_else(|| "the bridge refused".into()),
        },
        // Unknown control messages are for newer clients; ignore them.
        _ => return,
    };
    input(shared, |d, now| d.control(now, message));
}

/// The wire format's `tls` object.
fn tls_info(v: &JsValue) -> Option<TlsInfo> {
    if !v.is_object() {
        return None;
    }
    let s = |o: &JsValue, k: &str| get(o, k).as_string().unwrap_or_default();
    let cert = get(v, "certificate");
    Some(TlsInfo {
        protocol: s(v, "protocol"),
        cipher: s(v, "cipher"),
        certificate: CertificateInfo {
            subject: s(&cert, "subject"),
            issuer: s(&cert, "issuer"),
            not_after: s(&cert, "notAfter"),
        },
    })
}

fn on_close(shared: &Shared, event: JsValue) {
    let code = get(&event, "code").as_f64().map(|c| c as u16);
    shared.borrow_mut().transport = None;
    input(shared, |d, now| d.closed(now, code));
}

fn on_error(shared: &Shared, event: JsValue) {
    // The `ws` package says why the handshake failed; browsers do not.
    let detail = get(&event, "message").as_string().unwrap_or_default();
    let why = if detail.contains("Unexpected server response: 403") {
        TransportFailure::Refused { status: 403 }
    } else {
        TransportFailure::Unreachable { detail }
    };
    input(shared, |d, now| d.transport_failed(now, why));
}

/// Bytes from the pipe (Uint8Array or ArrayBuffer).
fn on_pipe_data(shared: &Shared, data: JsValue) {
    let bytes = Uint8Array::new(&data).to_vec();
    input(shared, |d, now| d.data(now, &bytes));
}

/// The pipe's own TLS is up: the wire format's `tls` shape.
fn on_pipe_tls(shared: &Shared, info: JsValue) {
    let info = tls_info(&info).unwrap_or_default();
    input(shared, |d, now| d.transport_tls(now, info));
}

/// The pipe failed: `{ kind: 'connect', failure, message }` (failure:
/// `refused`, `no-such-host`, `timed-out`, else the message), or
/// `{ kind: 'tls', reason, message }` (`reason` as `Pop3Error.reason`).
fn on_pipe_failed(shared: &Shared, e: JsValue) {
    let message = get(&e, "message").as_string();
    let why = match get(&e, "kind").as_string().as_deref() {
        Some("tls") => TransportFailure::Tls {
            reason: get(&e, "reason")
                .as_string()
                .and_then(|r| TlsReason::parse(&r))
                .unwrap_or(TlsReason::Protocol),
            detail: message,
        },
        _ => TransportFailure::Connect(match get(&e, "failure").as_string().as_deref() {
            Some("refused") => ConnectFailure::Refused,
            Some("no-such-host") => ConnectFailure::NoSuchHost,
            Some("timed-out") => ConnectFailure::TimedOut,
            _ => ConnectFailure::Other(message.unwrap_or_default()),
        }),
    };
    input(shared, |d, now| d.transport_failed(now, why));
}

/// A transport event handler. It is handed to JS for good
/// (`into_js_value`): the transport may fire events after the session is
/// gone, and a dropped closure must never be called. It holds the session
/// weakly.
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

// ---------------------------------------------------------------- options

pub(super) fn get(o: &JsValue, k: &str) -> JsValue {
    if o.is_object() { Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED) } else { JsValue::UNDEFINED }
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

pub(super) fn opt_string(o: &JsValue, k: &str) -> Result<Option<String>, Failure> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    v.as_string().map(Some).ok_or_else(|| Failure::invalid_argument(format!("`{k}` must be a string")))
}

/// An integer option from 1 to `max`; `None` when left out.
fn opt_count(o: &JsValue, k: &str, max: u32) -> Result<Option<usize>, Failure> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=f64::from(max)).contains(&n) => Ok(Some(n as usize)),
        _ => Err(Failure::invalid_argument(format!("`{k}` must be an integer from 1 to {max}"))),
    }
}

fn opt_ms(o: &JsValue, k: &str) -> Result<Option<f64>, Failure> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    match v.as_f64() {
        Some(t) if t > 0.0 && t.is_finite() => Ok(Some(t)),
        _ => Err(Failure::invalid_argument(format!("`{k}` must be a positive number of milliseconds"))),
    }
}

fn opt_function(o: &JsValue, k: &str) -> Result<Option<Function>, Failure> {
    match get(o, k) {
        v if absent(&v) => Ok(None),
        v => v
            .dyn_into::<Function>()
            .map(Some)
            .map_err(|_| Failure::invalid_argument(format!("`{k}` must be a function"))),
    }
}

fn opt_signal(o: &JsValue) -> Result<JsValue, Failure> {
    let s = get(o, "signal");
    if absent(&s) {
        return Ok(JsValue::UNDEFINED);
    }
    if !s.is_object() || !get(&s, "addEventListener").is_function() {
        return Err(Failure::invalid_argument("`signal` must be an AbortSignal"));
    }
    Ok(s)
}

/// `ca`: a PEM string, or PEM/DER bytes (an array of them: concatenated).
fn opt_ca(o: &JsValue) -> Result<Vec<u8>, Failure> {
    let v = get(o, "ca");
    let one = |v: &JsValue| -> Option<Vec<u8>> {
        v.as_string().map(String::into_bytes).or_else(|| v.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec))
    };
    if absent(&v) {
        return Ok(Vec::new());
    }
    if Array::is_array(&v) {
        let mut all = Vec::new();
        for item in Array::from(&v).iter() {
            let mut bytes = one(&item).ok_or_else(ca_error)?;
            all.append(&mut bytes);
            all.push(b'\n');
        }
        return Ok(all);
    }
    one(&v).ok_or_else(ca_error)
}

fn ca_error() -> Failure {
    Failure::invalid_argument("`ca` must be a PEM string or bytes, or an array of them")
}

#[wasm_bindgen(typescript_custom_section)]
const TS_CONNECT_OPTIONS: &'static str = r#"
export type TlsMode = 'implicit' | 'starttls' | 'none';

export interface TranscriptLine {
  /** `C`: client to server; `S`: server to client. */
  dir: 'C' | 'S';
  /** The line without CRLF; passwords and SASL data read `[redacted]`. */
  line: string;
  /** On the status line that answers a command: ms since the command was sent. */
  latencyMs?: number;
}

/** A step of the session as the client timed it (`onPhase`, `c.phases`). */
export interface Phase {
  name: 'connect' | 'tls' | 'greeting' | 'capa' | 'stls' | 'auth' | 'stat';
  /** When it started, in ms since `connect` was called. */
  startMs: number;
  /** How long it took (null while it runs). */
  ms: number | null;
  /** It ended without a failure. */
  ok: boolean;
}

/** Options every call takes as its last argument. */
export interface CallOptions {
  /** Aborting drops the session (no QUIT) and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** This call's deadline; default: the connection's `timeouts.command`. */
  timeoutMs?: number;
}

export interface ConnectOptions {
  /**
   * The ws-bridge URL, e.g. `ws://127.0.0.1:8080/pop3`. Required in browsers;
   * in Node, leaving it out connects directly (node:net).
   */
  bridge?: string;
  host: string;
  /** Default: 995 for `implicit`, 110 otherwise. */
  port?: number;
  /** Default: `implicit`. */
  tls?: TlsMode;
  /**
   * TLS in the client (rustls, the TLS-capable module, loaded on the first
   * session that asks): the bridge relays ciphertext only and never holds a
   * key; STLS is done by the client too. Needs `tls: 'implicit'` or
   * `'starttls'`, and a bridge that speaks wire v2. In Node without `bridge`:
   * the client's TLS over node:net instead of Node's.
   */
  endToEnd?: boolean;
  /**
   * With `tls: 'starttls'`: connect stops after the first CAPA, in plain text,
   * and `raw('STLS')` starts TLS (the playground's "STLS by hand"). End to
   * end, only CAPA and STLS may be sent before TLS.
   */
  manualStls?: boolean;
  /**
   * CA certificates (PEM, or DER bytes) trusted for the server's certificate
   * besides the built-in roots: with `endToEnd` (browsers too), and in Node's
   * direct mode. Not with bridge-side TLS (the bridge trusts its --ca-file).
   */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  /** Bridge access token, when the bridge requires one. */
  token?: string;
  /** Deadline for each step and each command, in ms. Default 30000. */
  timeoutMs?: number;
  /** Per phase deadlines, each defaulting to `timeoutMs`. */
  timeouts?: { connect?: number; tls?: number; greeting?: number; command?: number };
  /** Aborts connecting (and drops the session). */
  signal?: AbortSignal;
  /** Set false to stay in lockstep even when the server offers PIPELINING. */
  pipelining?: boolean;
  /**
   * The most commands in flight at once when pipelining (1–4096, default
   * 4096). Below this cap, at most 16 KiB of commands are sent and not yet
   * answered, which is what decides with the default.
   */
  pipelineWindow?: number;
  /**
   * The longest body `retr()` and `top()` collect whole, in octets (an
   * integer up to 2147483647). Default 134217728 (128 MiB). A longer body
   * ends the session with `PROTOCOL_ERROR` (no QUIT, nothing deleted);
   * `retrStream()` and `topStream()` have no such limit.
   */
  maxBodyBytes?: number;
  /** Send NOOP after this many idle ms in TRANSACTION state. */
  keepaliveMs?: number;
  /** A WebSocket constructor for runtimes without a global one. */
  WebSocket?: unknown;
  onTranscript?: (line: TranscriptLine) => void;
  /** Each step of the connect sequence (and each login and STAT) as it ends. */
  onPhase?: (phase: Phase) => void;
  /** Allow readable credentials (USER/PASS, PLAIN) without TLS to the server. */
  allowInsecureAuth?: boolean;
}
"#;

/// What `Pop3Client.connect` needs besides the driver's config.
pub(super) struct Connect {
    pub(super) config: Config,
    websocket: JsValue,
    pipe: JsValue,
    signal: JsValue,
    on_transcript: Option<Function>,
    on_phase: Option<Function>,
}

/// The options object of `Pop3Client.connect`, read into the driver's config.
pub(super) fn read_connect(o: &JsValue) -> Result<Connect, Failure> {
    if !o.is_object() {
        return Err(Failure::invalid_argument("connect() takes an options object"));
    }
    let pipe = get(o, "transport");
    let route = match opt_string(o, "bridge")? {
        Some(url) => Route::Bridge { url, token: opt_string(o, "token")?.map(Token::new) },
        None if pipe.is_function() => Route::Direct,
        None => {
            return Err(Failure::invalid_argument(
                "`bridge` (the ws-bridge URL, e.g. ws://127.0.0.1:8080/pop3) is required",
            ));
        }
    };
    let host = opt_string(o, "host")?.unwrap_or_default();
    let tls = match opt_string(o, "tls")? {
        None => TlsMode::Implicit,
        Some(t) => TlsMode::parse(&t)
            .ok_or_else(|| Failure::invalid_argument("`tls` must be 'implicit', 'starttls' or 'none'"))?,
    };
    let mut config = Config::new(route, host, tls);
    let port = get(o, "port");
    if !port.is_undefined() {
        config.port = match port.as_f64() {
            Some(p) if p.fract() == 0.0 && (1.0..=65535.0).contains(&p) => p as u16,
            _ => return Err(Failure::invalid_argument("`port` must be an integer from 1 to 65535")),
        };
    }
    let base = opt_ms(o, "timeoutMs")?.unwrap_or(crate::driver::DEFAULT_TIMEOUT);
    let t = get(o, "timeouts");
    config.deadlines = Deadlines {
        connect: opt_ms(&t, "connect")?.unwrap_or(base),
        tls: opt_ms(&t, "tls")?.unwrap_or(base),
        greeting: opt_ms(&t, "greeting")?.unwrap_or(base),
        command: opt_ms(&t, "command")?.unwrap_or(base),
    };
    config.end_to_end = get(o, "endToEnd").is_truthy();
    config.manual_stls = get(o, "manualStls").is_truthy();
    config.ca = opt_ca(o)?;
    config.keepalive = opt_ms(o, "keepaliveMs")?;
    config.pipelining = get(o, "pipelining").as_bool() != Some(false);
    if let Some(w) = opt_count(o, "pipelineWindow", 4096)? {
        config.pipelining_window = w;
    }
    if let Some(m) = opt_count(o, "maxBodyBytes", MAX_BODY_LIMIT)? {
        config.max_body = m;
    }
    config.allow_insecure_auth = get(o, "allowInsecureAuth").is_truthy();
    let on_transcript = opt_function(o, "onTranscript")?;
    config.transcript = on_transcript.is_some();
    config.random = random_bytes;
    config.nfkc = js_nfkc;
    config.validate()?;
    Ok(Connect {
        config,
        websocket: get(o, "WebSocket"),
        pipe,
        signal: opt_signal(o)?,
        on_transcript,
        on_phase: opt_function(o, "onPhase")?,
    })
}

/// Unicode NFKC through the runtime's `String.prototype.normalize`.
fn js_nfkc(s: &str) -> String {
    js_sys::JsString::from(s).normalize("NFKC").into()
}

/// Opens the session: the transport, then the driver's connect sequence.
fn connect(c: Connect) -> Result<Promise, Failure> {
    open(c, Request::Connect, Kind::Connect)
}

/// Opens the transport and starts `request` (the connect sequence, or a
/// diagnosis that runs it itself) as the session's first operation.
pub(super) fn open(c: Connect, request: Request, kind: Kind) -> Result<Promise, Failure> {
    let route_is_bridge = matches!(c.config.route, Route::Bridge { .. });
    let (url, host, port) = match &c.config.route {
        Route::Bridge { url, .. } => (url.clone(), c.config.host.clone(), c.config.port),
        Route::Direct => (String::new(), c.config.host.clone(), c.config.port),
    };
    let shared: Shared = Rc::new(RefCell::new(Inner {
        driver: Driver::new(c.config, now()),
        transport: None,
        pending: Vec::new(),
        blocks: Vec::new(),
        streams: Vec::new(),
        transcript: c.on_transcript,
        on_phase: c.on_phase,
        timer: None,
        paused: false,
    }));
    let weak = Rc::downgrade(&shared);
    let handlers = Handlers {
        open: handler(&weak, on_open),
        message: handler(&weak, on_message),
        close: handler(&weak, on_close),
        error: handler(&weak, on_error),
        data: handler(&weak, on_pipe_data),
        tls: handler(&weak, on_pipe_tls),
        failed: handler(&weak, on_pipe_failed),
    };
    let transport = if route_is_bridge {
        let ctor = websocket_constructor(c.websocket).ok_or_else(|| {
            Failure::invalid_argument(
                "no WebSocket implementation: pass the `WebSocket` option (e.g. the `ws` package)",
            )
        })?;
        let protocols: Array = wire::SUBPROTOCOLS.iter().map(|p| JsValue::from_str(p)).collect();
        let socket: Socket = Reflect::construct(&ctor, &Array::of2(&JsValue::from_str(&url), &protocols))
            .map_err(|e| {
                let why = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
                Failure::invalid_argument(format!("cannot open a WebSocket to `{url}`: {why}"))
            })?
            .unchecked_into();
        Transport::websocket(socket, &handlers)
    } else {
        Transport::pipe(&c.pipe, &host, port, &handlers).map_err(|why| {
            Failure::invalid_argument(format!("the direct transport failed to start: {why}"))
        })?
    };
    shared.borrow_mut().transport = Some(transport);
    CONNECTING.with(|l| l.borrow_mut().push(shared.clone()));
    Ok(call(&shared, request, Ctx { timeout_ms: None, signal: c.signal }, kind, None))
}

// ------------------------------------------------------------ the class

#[wasm_bindgen(typescript_custom_section)]
const TS_POP3_CLIENT: &'static str = r#"
export interface RawReply {
  ok: boolean;
  status: '+OK' | '-ERR';
  respCode: string | null;
  text: string;
  /** The unstuffed body of a multi-line answer, else null. */
  body: Uint8Array | null;
}

export interface Deviation {
  id: string;
  description: string;
}

export type Progress = (done: number, total: number | null) => void;

export type Mechanism =
  | 'SCRAM-SHA-256'
  | 'SCRAM-SHA-1'
  | 'CRAM-MD5'
  | 'APOP'
  | 'PLAIN'
  | 'LOGIN'
  | 'USER'
  | 'XOAUTH2'
  | 'OAUTHBEARER';

export class Pop3Client {
  private constructor();
  static connect(options: ConnectOptions): Promise<Pop3Client>;
  /** The greeting text after `+OK `. */
  readonly greeting: string | undefined;
  /** TLS to the server, and where it ends (`endToEnd`), or null. */
  readonly tls: TlsInfo | null;
  readonly state: 'AUTHORIZATION' | 'TRANSACTION' | 'CLOSED';
  /** Whether commands are pipelined (the server announced PIPELINING). */
  readonly pipelining: boolean;
  /** Spec deviations of the server that the client tolerated. */
  readonly deviations: Deviation[];
  /** The latest CAPA the client has (it asks at connect, after STLS and after login), or null. */
  readonly capabilities: Capabilities | null;
  /** The latest CAPA of each step: before STLS, after STLS, after login. */
  readonly capaHistory: CapaHistory;
  /**
   * The mechanisms `login()` would try now, strongest first: those offered,
   * less the readable ones without TLS unless `allowInsecureAuth` (none once
   * logged in).
   */
  readonly loginMechanisms: Mechanism[];
  /** Whether the greeting has a valid RFC 1939 timestamp: the only case APOP is used (CVE-2007-1558). */
  readonly apopUsable: boolean;
  /** The steps so far, timed by the client: connect, tls, greeting, capa, stls, auth, stat. */
  readonly phases: Phase[];
  capa(options?: CallOptions): Promise<Capabilities>;
  /**
   * Logs in with the strongest mechanism offered (SCRAM-SHA-256 > SCRAM-SHA-1 >
   * CRAM-MD5 > APOP > PLAIN > LOGIN > USER; readable ones only over TLS unless
   * allowInsecureAuth); resolves to its name.
   */
  login(user: string, password: string, options?: CallOptions): Promise<Mechanism>;
  /** A forced mechanism; OAuth ones take `token` instead of `password`. */
  auth(
    mechanism: Mechanism | string,
    credentials: { username: string; password?: string; token?: string },
    options?: CallOptions,
  ): Promise<Mechanism>;
  apop(user: string, password: string, options?: CallOptions): Promise<'APOP'>;
  stat(options?: CallOptions): Promise<{ count: number; size: number }>;
  list(options?: CallOptions): Promise<Array<{ id: number; size: number }>>;
  list(id: number, options?: CallOptions): Promise<{ id: number; size: number }>;
  uidl(options?: CallOptions): Promise<Array<{ id: number; uid: string }>>;
  uidl(id: number, options?: CallOptions): Promise<{ id: number; uid: string }>;
  top(id: number, lines: number, options?: CallOptions): Promise<Uint8Array>;
  retr(id: number, options?: CallOptions & { onProgress?: (received: number, total: number | null) => void }): Promise<Uint8Array>;
  /** The body as a stream (resolves on `+OK`); the transport pauses while the stream is full. */
  retrStream(id: number, options?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  topStream(id: number, lines: number, options?: CallOptions): Promise<ReadableStream<Uint8Array>>;
  /** LIST + UIDL + TOP n 0, pipelined, headers decoded. */
  summaries(options?: CallOptions & { onProgress?: Progress }): Promise<Summary[]>;
  summaries(ids: number[], options?: CallOptions & { onProgress?: Progress }): Promise<Summary[]>;
  retrMany(
    ids: number[],
    options?: CallOptions & { onProgress?: Progress },
  ): Promise<Array<{ id: number; body: Uint8Array | null; error: Pop3Error | null }>>;
  /** Marks many messages; nothing is deleted until `quit()`. */
  deleMany(ids: number[], options?: CallOptions): Promise<Array<{ id: number; error: Pop3Error | null }>>;
  dele(id: number, options?: CallOptions): Promise<string>;
  rset(options?: CallOptions): Promise<string>;
  noop(options?: CallOptions): Promise<string>;
  /** One command line as typed; `-ERR` resolves (ok: false) rather than rejects. */
  raw(line: string, options?: CallOptions): Promise<RawReply>;
  /** QUIT: commits deletions and closes. */
  quit(options?: CallOptions): Promise<string>;
  /** Drops the session without QUIT: nothing marked is deleted. */
  close(): void;
  /** Frees the wasm side (closes without QUIT). */
  free(): void;
}
"#;

/// A POP3 session through ws-bridge or, in Node, straight to the server.
/// Create one with `Pop3Client.connect`.
#[wasm_bindgen(skip_typescript)]
pub struct Pop3Client {
    shared: Shared,
}

impl std::fmt::Debug for Pop3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client").field("driver", &self.shared.borrow().driver).finish()
    }
}

impl Drop for Pop3Client {
    fn drop(&mut self) {
        // Freed from JS: drop the connection, never commit.
        let f = Failure::new(ErrorCode::ConnectionClosed, "the client was freed");
        input(&self.shared, |d, now| d.close(now, f));
    }
}

impl Pop3Client {
    /// Starts `request` with the call's options (not generic: one copy for
    /// every method, which keeps the wasm module small).
    fn run(&self, opts: &JsValue, request: Result<Request, Failure>, kind: Kind, progress: bool) -> Promise {
        let prepared = (|| {
            let ctx = Ctx::read(opts)?;
            let on_progress = if progress { opt_function(opts, "onProgress")? } else { None };
            Ok::<_, Failure>((ctx, on_progress, request?))
        })();
        match prepared {
            Ok((ctx, on_progress, request)) => call(&self.shared, request, ctx, kind, on_progress),
            Err(f) => rejected(f),
        }
    }

    fn command(&self, opts: &JsValue, cmd: Result<Command, Failure>) -> Promise {
        self.run(opts, cmd.map(Request::Command), Kind::Value, false)
    }

    /// A streamed body: resolves at `+OK` with a `ReadableStream` of its
    /// pieces (backpressure pauses the transport).
    fn stream(&self, opts: &JsValue, cmd: Result<Command, Failure>) -> Promise {
        let (ctx, cmd) = match Ctx::read(opts).and_then(|ctx| Ok((ctx, cmd?))) {
            Ok(v) => v,
            Err(f) => return rejected(f),
        };
        let (stream, controller, op_cell) = match readable_stream(&self.shared) {
            Ok(v) => v,
            Err(f) => return rejected(f),
        };
        call_then(&self.shared, Request::Stream(cmd), ctx, Kind::Stream(stream), None, move |inner, op| {
            *op_cell.borrow_mut() = Some(op);
            inner.streams.push(StreamSink { op, controller, cancelled: false });
        })
    }
}

/// A `ReadableStream`, its controller, and the cell its callbacks find the
/// operation in.
#[allow(clippy::type_complexity)]
fn readable_stream(shared: &Shared) -> Result<(JsValue, JsValue, Rc<RefCell<Option<OpId>>>), Failure> {
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
        .ok_or_else(|| Failure::new(ErrorCode::Unsupported, "no ReadableStream in this runtime"))?;
    let strategy = Object::new();
    let _ = Reflect::set(&strategy, &"highWaterMark".into(), &STREAM_HIGH_WATER.into());
    let size = Closure::<dyn Fn(JsValue) -> JsValue>::new(|chunk: JsValue| {
        Reflect::get(&chunk, &"byteLength".into()).unwrap_or(JsValue::from_f64(1.0))
    })
    .into_js_value();
    let _ = Reflect::set(&strategy, &"size".into(), &size);
    // pull and cancel reach the session weakly: the stream may outlive it.
    let weak = Rc::downgrade(shared);
    let op_cell: Rc<RefCell<Option<OpId>>> = Rc::new(RefCell::new(None));
    let pull = {
        let weak = weak.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_c: JsValue| {
            if let Some(shared) = weak.upgrade() {
                let mut inner = shared.borrow_mut();
                if inner.streams_want_data() {
                    inner.set_paused(false);
                }
            }
        })
        .into_js_value()
    };
    let cancel = {
        let op_cell = op_cell.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_reason: JsValue| {
            // The server sends the rest anyway: read and drop it.
            if let (Some(shared), Some(op)) = (weak.upgrade(), *op_cell.borrow()) {
                let mut inner = shared.borrow_mut();
                if let Some(s) = inner.streams.iter_mut().find(|s| s.op == op) {
                    s.cancelled = true;
                }
                if inner.streams_want_data() {
                    inner.set_paused(false);
                }
            }
        })
        .into_js_value()
    };
    let _ = Reflect::set(&source, &"pull".into(), &pull);
    let _ = Reflect::set(&source, &"cancel".into(), &cancel);
    let stream = Reflect::construct(&stream_ctor, &Array::of2(&source, &strategy))
        .map_err(|_| Failure::new(ErrorCode::Unsupported, "could not create a ReadableStream"))?;
    let c = controller.borrow().clone();
    Ok((stream, c, op_cell))
}

fn msg_arg(v: &JsValue, what: &str) -> Result<u32, Failure> {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=u32::MAX as f64).contains(&n) => Ok(n as u32),
        _ => Err(Failure::invalid_argument(format!("{what} must be a message number (an integer from 1)"))),
    }
}

fn opt_msg(v: &JsValue, what: &str) -> Result<Option<u32>, Failure> {
    if absent(v) { Ok(None) } else { msg_arg(v, what).map(Some) }
}

fn ids_arg(v: &JsValue, what: &str) -> Result<Vec<u32>, Failure> {
    if !Array::is_array(v) {
        return Err(Failure::invalid_argument(format!("{what} takes an array of message numbers")));
    }
    Array::from(v).iter().map(|id| msg_arg(&id, what)).collect()
}

fn lines_arg(lines: &JsValue) -> Result<u32, Failure> {
    match lines.as_f64() {
        Some(l) if l.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&l) => Ok(l as u32),
        _ => Err(Failure::invalid_argument("lines must be an integer from 0")),
    }
}

fn credential(v: &JsValue, what: &str) -> Result<String, Failure> {
    v.as_string().ok_or_else(|| Failure::invalid_argument(format!("{what} must be a string")))
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

#[wasm_bindgen]
impl Pop3Client {
    /// Opens a session: the transport, the bridge's connection to the
    /// server, TLS, greeting, CAPA, and STLS when `tls: 'starttls'`.
    #[wasm_bindgen(js_name = connect, skip_typescript)]
    pub fn connect_js(opts: JsValue) -> Promise {
        match read_connect(&opts).and_then(connect) {
            Ok(p) => p,
            Err(f) => rejected(f),
        }
    }

    /// The server's greeting text (after `+OK `).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn greeting(&self) -> Option<String> {
        self.shared.borrow().driver.session().greeting().map(|g| g.text.clone())
    }

    /// TLS to the server: `{ protocol, cipher, certificate, endToEnd, chain? }`, or null.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn tls(&self) -> JsValue {
        self.shared.borrow().driver.tls().map_or(JsValue::NULL, |t| tls_js(&t))
    }

    /// The session's state: AUTHORIZATION, TRANSACTION or CLOSED.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn state(&self) -> String {
        self.shared.borrow().driver.state().name().to_string()
    }

    /// Whether commands are being pipelined (the server announced PIPELINING).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn pipelining(&self) -> bool {
        self.shared.borrow().driver.session().pipelining()
    }

    /// Spec deviations the client tolerated so far: `[{ id, description }]`.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn deviations(&self) -> JsValue {
        let inner = self.shared.borrow();
        let session = inner.driver.session();
        let list: Array = session
            .deviations()
            .iter()
            .map(|d| object(&[("id", d.id().into()), ("description", d.description().into())]))
            .collect();
        list.into()
    }

    /// The capabilities from the latest CAPA (`capa()`'s shape), or null.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn capabilities(&self) -> JsValue {
        self.shared.borrow().driver.session().capabilities().map_or(JsValue::NULL, capa_js)
    }

    /// `{ beforeStls, afterStls, afterLogin }`: the latest CAPA of each step.
    #[wasm_bindgen(getter, js_name = capaHistory, skip_typescript)]
    pub fn capa_history(&self) -> JsValue {
        let inner = self.shared.borrow();
        let session = inner.driver.session();
        let h = session.capa_history();
        let step = |c: &Option<Capabilities>| c.as_ref().map_or(JsValue::NULL, capa_js);
        object(&[
            ("beforeStls", step(&h.before_stls)),
            ("afterStls", step(&h.after_stls)),
            ("afterLogin", step(&h.after_login)),
        ])
    }

    /// The mechanisms `login()` would try now, strongest first.
    #[wasm_bindgen(getter, js_name = loginMechanisms, skip_typescript)]
    pub fn login_mechanisms(&self) -> JsValue {
        let inner = self.shared.borrow();
        let list = inner.driver.session().login_mechanisms();
        list.into_iter().map(JsValue::from_str).collect::<Array>().into()
    }

    /// Whether the greeting has a valid RFC 1939 timestamp.
    #[wasm_bindgen(getter, js_name = apopUsable, skip_typescript)]
    pub fn apop_usable(&self) -> bool {
        self.shared.borrow().driver.session().apop_usable()
    }

    /// The steps so far: `[{ name, startMs, ms, ok }]`.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn phases(&self) -> JsValue {
        self.shared.borrow().driver.phases().iter().map(phase_js).collect::<Array>().into()
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn capa(&self, opts: JsValue) -> Promise {
        self.command(&opts, Ok(Command::Capa))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn login(&self, user: JsValue, password: JsValue, opts: JsValue) -> Promise {
        let request = (|| {
            Ok(Request::Login {
                user: credential(&user, "the user name")?,
                password: credential(&password, "the password")?,
            })
        })();
        self.run(&opts, request, Kind::Value, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn auth(&self, mechanism: JsValue, credentials: JsValue, opts: JsValue) -> Promise {
        let request = (|| {
            Ok(Request::Auth {
                mechanism: credential(&mechanism, "the mechanism")?,
                username: credential(&get(&credentials, "username"), "`username`")?,
                password: opt_string(&credentials, "password")?,
                token: opt_string(&credentials, "token")?,
            })
        })();
        self.run(&opts, request, Kind::Value, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn apop(&self, user: JsValue, password: JsValue, opts: JsValue) -> Promise {
        let request = (|| {
            Ok(Request::Auth {
                mechanism: "APOP".into(),
                username: credential(&user, "the user name")?,
                password: Some(credential(&password, "the password")?),
                token: None,
            })
        })();
        self.run(&opts, request, Kind::Value, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn stat(&self, opts: JsValue) -> Promise {
        self.command(&opts, Ok(Command::Stat))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn list(&self, msg: JsValue, opts: JsValue) -> Promise {
        let (msg, opts) = split_optional(msg, opts);
        self.command(&opts, opt_msg(&msg, "list(n)").map(|msg| Command::List { msg }))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn uidl(&self, msg: JsValue, opts: JsValue) -> Promise {
        let (msg, opts) = split_optional(msg, opts);
        self.command(&opts, opt_msg(&msg, "uidl(n)").map(|msg| Command::Uidl { msg }))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn top(&self, msg: JsValue, lines: JsValue, opts: JsValue) -> Promise {
        let cmd = msg_arg(&msg, "top(n, lines)")
            .and_then(|msg| Ok(Command::Top { msg, lines: lines_arg(&lines)? }));
        self.run(&opts, cmd.map(Request::Collect), Kind::Value, false)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn retr(&self, msg: JsValue, opts: JsValue) -> Promise {
        let cmd = msg_arg(&msg, "retr(n)").map(|msg| Command::Retr { msg });
        self.run(&opts, cmd.map(Request::Collect), Kind::Value, true)
    }

    #[wasm_bindgen(js_name = retrStream, skip_typescript)]
    pub fn retr_stream(&self, msg: JsValue, opts: JsValue) -> Promise {
        self.stream(&opts, msg_arg(&msg, "retrStream(n)").map(|msg| Command::Retr { msg }))
    }

    #[wasm_bindgen(js_name = topStream, skip_typescript)]
    pub fn top_stream(&self, msg: JsValue, lines: JsValue, opts: JsValue) -> Promise {
        let cmd = msg_arg(&msg, "topStream(n, lines)")
            .and_then(|msg| Ok(Command::Top { msg, lines: lines_arg(&lines)? }));
        self.stream(&opts, cmd)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn summaries(&self, ids: JsValue, opts: JsValue) -> Promise {
        let (ids, opts) = split_optional(ids, opts);
        let ids = if absent(&ids) { Ok(None) } else { ids_arg(&ids, "summaries(ids)").map(Some) };
        self.run(&opts, ids.map(Request::Summaries), Kind::Value, true)
    }

    #[wasm_bindgen(js_name = retrMany, skip_typescript)]
    pub fn retr_many(&self, ids: JsValue, opts: JsValue) -> Promise {
        match ids_arg(&ids, "retrMany(ids)") {
            Ok(ids) => self.run(&opts, Ok(Request::RetrMany(ids.clone())), Kind::RetrMany(ids), true),
            Err(f) => rejected(f),
        }
    }

    #[wasm_bindgen(js_name = deleMany, skip_typescript)]
    pub fn dele_many(&self, ids: JsValue, opts: JsValue) -> Promise {
        match ids_arg(&ids, "deleMany(ids)") {
            Ok(ids) => self.run(&opts, Ok(Request::DeleMany(ids.clone())), Kind::DeleMany(ids), false),
            Err(f) => rejected(f),
        }
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn dele(&self, msg: JsValue, opts: JsValue) -> Promise {
        self.command(&opts, msg_arg(&msg, "dele(n)").map(|msg| Command::Dele { msg }))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn rset(&self, opts: JsValue) -> Promise {
        self.command(&opts, Ok(Command::Rset))
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn noop(&self, opts: JsValue) -> Promise {
        self.command(&opts, Ok(Command::Noop))
    }

    /// One command line as typed: `{ ok, status, respCode, text, body }`.
    #[wasm_bindgen(skip_typescript)]
    pub fn raw(&self, line: JsValue, opts: JsValue) -> Promise {
        self.run(&opts, credential(&line, "the command line").map(Request::Raw), Kind::Value, false)
    }

    /// QUIT: the server commits the deletions, then the connection closes.
    #[wasm_bindgen(skip_typescript)]
    pub fn quit(&self, opts: JsValue) -> Promise {
        self.command(&opts, Ok(Command::Quit))
    }

    /// Drops the session without QUIT: nothing marked is deleted.
    #[wasm_bindgen(skip_typescript)]
    pub fn close(&self) {
        let f = Failure::new(
            ErrorCode::ConnectionClosed,
            "the session was closed by close(); nothing was committed",
        );
        input(&self.shared, |d, now| d.close(now, f));
    }
}

// ------------------------------------------------------------ conversions

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

#[wasm_bindgen(typescript_custom_section)]
const TS_CAPABILITIES: &'static str = r#"
export interface Capabilities {
  /** Every CAPA line as sent. */
  raw: string[];
  top: boolean;
  uidl: boolean;
  user: boolean;
  pipelining: boolean;
  respCodes: boolean;
  authRespCode: boolean;
  stls: boolean;
  /** SASL mechanisms, upper case. */
  sasl: string[];
  utf8: boolean;
  utf8Args: string[];
  loginDelay: number | null;
  /** `NEVER` or a number of days. */
  expire: string | null;
  implementation: string | null;
}

/** The latest CAPA of each step of a session (null where there was none). */
export interface CapaHistory {
  /** In AUTHORIZATION before any STLS (on implicit TLS: before login). */
  beforeStls: Capabilities | null;
  /** In AUTHORIZATION after STLS upgraded the connection. */
  afterStls: Capabilities | null;
  /** In TRANSACTION. */
  afterLogin: Capabilities | null;
}
"#;

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

#[wasm_bindgen(typescript_custom_section)]
const TS_TLS_INFO: &'static str = r#"
/** One certificate as the server sent it (end-to-end TLS: `c.tls.chain`). */
export interface CertificateDetails {
  subject: string;
  issuer: string;
  dnsNames: string[];
  ipAddresses: string[];
  /** RFC 3339, UTC. */
  notBefore: string;
  notAfter: string;
  /** `RSA`, `EC`, `Ed25519`, … */
  keyType: string;
  keyBits: number;
  curve: string | null;
  signatureAlgorithm: string;
  /** SHA-256 over the DER, as `openssl x509 -fingerprint -sha256` prints it. */
  sha256: string;
  /** Set when this certificate could not be parsed (the other fields are empty). */
  parseError: string | null;
}

export interface TlsInfo {
  protocol: string;
  cipher: string;
  certificate: { subject: string; issuer: string; notAfter: string };
  /**
   * Where TLS ends: true, in the client (the bridge relayed ciphertext only);
   * false, in the bridge (or, direct, in Node's TLS).
   */
  endToEnd: boolean;
  /** End to end only: every certificate the server sent, leaf first. */
  chain?: CertificateDetails[];
}

/** `Pop3Error.reason` on `TLS_FAILED`. */
export type { TlsReason };
"#;

fn tls_js(t: &TlsSummary) -> JsValue {
    let c = &t.info.certificate;
    let o = object(&[
        ("protocol", t.info.protocol.as_str().into()),
        ("cipher", t.info.cipher.as_str().into()),
        (
            "certificate",
            object(&[
                ("subject", c.subject.as_str().into()),
                ("issuer", c.issuer.as_str().into()),
                ("notAfter", c.not_after.as_str().into()),
            ]),
        ),
        ("endToEnd", t.end_to_end.into()),
    ]);
    #[cfg(feature = "tls")]
    if t.end_to_end {
        let _ = Reflect::set(&o, &"chain".into(), &super::tls::chain_js(&t.chain));
    }
    o
}

fn phase_js(m: &PhaseMark) -> JsValue {
    object(&[
        ("name", m.phase.as_str().into()),
        ("startMs", m.start.into()),
        ("ms", m.end.map_or(JsValue::NULL, |e| (e - m.start).into())),
        ("ok", m.ok.into()),
    ])
}

fn id_size(id: u32, size: u64) -> JsValue {
    object(&[("id", id.into()), ("size", (size as f64).into())])
}

fn id_uid(id: u32, uid: &str) -> JsValue {
    object(&[("id", id.into()), ("uid", uid.into())])
}

#[wasm_bindgen(typescript_custom_section)]
const TS_SUMMARY: &'static str = r#"
export interface Summary {
  id: number;
  uid: string | null;
  size: number | null;
  /** `Name <address>` or the bare address, decoded (RFC 2047). */
  from: string | null;
  to: string | null;
  subject: string | null;
  /** RFC 3339 with the header's own offset. */
  date: string | null;
  /** Without angle brackets. */
  messageId: string | null;
  /** Set when the server refused one of this message's commands. */
  error: string | null;
}
"#;

fn summary_js(s: &Summary) -> JsValue {
    let h = &s.headers;
    object(&[
        ("id", s.id.into()),
        ("uid", opt_str(&s.uid)),
        ("size", s.size.map_or(JsValue::NULL, |s| (s as f64).into())),
        ("from", opt_str(&h.from)),
        ("to", opt_str(&h.to)),
        ("subject", opt_str(&h.subject)),
        ("date", opt_str(&h.date)),
        ("messageId", opt_str(&h.message_id)),
        ("error", opt_str(&s.error)),
    ])
}
