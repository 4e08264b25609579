// The direct transport (Node only): an object shaped like a WebSocket that
// speaks the bridge's session wire format v1 (see the README) locally, over
// node:net / node:tls. The wasm client drives it exactly as it drives a
// WebSocket to ws-bridge, so the core, the client code, the errors and the
// STLS rules are the same in both modes; only the relay moves in-process.
//
//   client → transport  '{"type":"connect",...}'   TCP (+ TLS for implicit) to host:port
//   transport → client  '{"type":"connected","tls":…}' | '{"type":"error",…}' then close
//   client ⇄ transport  POP3 bytes (Uint8Array out, ArrayBuffer in)
//   client → transport  '{"type":"stls"}'          STLS\r\n, the reply line, then the handshake
//   transport → client  '{"type":"tls","tls":…}'
//
// No allowlist applies: in direct mode the caller is the operator.
// Events are always delivered asynchronously: the client calls send() and
// close() while it holds its own state, and must not be re-entered.
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { stlsReply } from '../pkg/pop3_wasm.js';

const SUBPROTOCOL = 'pop3-bridge.v1';
/** Chunks read from the server and not yet taken by the client before reading stops. */
const MAX_QUEUED = 8;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** `[::1]` → `::1`: the wire format carries IPv6 literals either way. */
function bareHost(host) {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Node's `O=x\nCN=y` as the bridge prints it: `O=x, CN=y`. */
function distinguishedName(s) {
  return s.split('\n').filter(Boolean).join(', ');
}

/** The `tls` object of `connected`/`tls`, in the bridge's shapes. */
export function tlsInfo(socket) {
  const protocol = socket.getProtocol() ?? 'unknown';
  const c = socket.getCipher();
  // rustls (the bridge) names TLS 1.3 suites TLS13_…; the IANA names otherwise.
  let cipher = c?.standardName || c?.name || 'unknown';
  if (protocol === 'TLSv1.3' && cipher.startsWith('TLS_')) cipher = `TLS13_${cipher.slice(4)}`;
  const raw = socket.getPeerCertificate()?.raw;
  let certificate = { subject: '', issuer: '', notAfter: '' };
  if (raw) {
    const x = new X509Certificate(raw);
    certificate = {
      subject: distinguishedName(x.subject),
      issuer: distinguishedName(x.issuer),
      notAfter: new Date(x.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
  }
  return { protocol, cipher, certificate };
}

/** A connect failure in the bridge's words. */
function describeConnectError(e) {
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return 'host name did not resolve';
    case 'ETIMEDOUT':
      return 'connection timed out';
    default:
      return `connection failed: ${e?.message ?? e}`;
  }
}

/** A TLS failure in the bridge's words: a sentence a postmaster can act on. */
function describeTlsError(e) {
  switch (e?.code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'certificate not trusted (unknown issuer)';
    case 'CERT_HAS_EXPIRED':
      return 'certificate expired';
    case 'CERT_NOT_YET_VALID':
      return 'certificate not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'certificate not valid for the host name';
    case 'CERT_REVOKED':
      return 'certificate revoked';
    case 'CERT_SIGNATURE_FAILURE':
      return 'certificate has a bad signature';
    case 'ECONNRESET':
      return 'server closed the connection during the TLS handshake';
    default:
      if (/socket disconnected|ECONNRESET|EOF/i.test(e?.message ?? '')) {
        return 'server closed the connection during the TLS handshake';
      }
      return `TLS handshake failed: ${e?.message ?? e}`;
  }
}

/**
 * A WebSocket constructor bound to these options (what `Pop3Client.connect`
 * takes as `WebSocket`).
 * @param {object} [o]
 * @param {string|Buffer|Array<string|Buffer>} [o.ca]  CA certificates trusted besides Node's roots
 * @param {(phase: 'tcp'|'tls', at: number) => void} [o.onPhase]  when TCP and TLS were established (performance.now())
 */
export function directWebSocket({ ca, onPhase } = {}) {
  const context = secureContextFor(ca);
  return class extends DirectSocket {
    constructor(url, protocols) {
      super(url, protocols, { context, onPhase });
    }
  };
}

/** Contexts already built, per `ca` object (a Buffer or an array): building one parses every root. */
const contexts = new WeakMap();

/**
 * The TLS context that trusts Node's roots plus `ca` (undefined: Node's
 * default, built per connection at no cost). Building one parses all of
 * Node's ~140 root certificates, some 30 ms of CPU: a monitor connecting
 * thousands of times with the same `ca` object builds it once.
 */
function secureContextFor(ca) {
  if (ca === undefined || ca === null) return undefined;
  const cached = typeof ca === 'object' ? contexts.get(ca) : undefined;
  if (cached) return cached;
  // `ca` replaces Node's roots; keep them, as the bridge keeps webpki's.
  const context = tls.createSecureContext({ ca: [...tls.rootCertificates, ...(Array.isArray(ca) ? ca : [ca])] });
  if (typeof ca === 'object') contexts.set(ca, context);
  return context;
}

export class DirectSocket {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  constructor(url, protocols, { context, onPhase } = {}) {
    this.url = String(url);
    const offered = protocols === undefined ? [] : [].concat(protocols);
    this.protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : '';
    this.binaryType = 'arraybuffer';
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this._context = context;
    this._onPhase = onPhase;
    this._socket = null; // net.Socket, then tls.TLSSocket
    this._target = null; // { host, port, tls }
    this._stage = 'hello'; // hello → connecting → relay ⇄ stls → closed
    this._stlsLine = [];
    this._paused = false;
    this._queue = []; // events not yet handed to the client: { data } | { close }
    this._scheduled = false;
    setImmediate(() => {
      if (this.readyState !== CONNECTING) return;
      this.readyState = OPEN;
      this._emit('onopen', { type: 'open' });
    });
  }

  // ------------------------------------------------------------- WebSocket face

  send(data) {
    if (this.readyState !== OPEN) return;
    if (typeof data === 'string') return this._control(data);
    if (this._stage !== 'relay') return; // like the bridge: data only once connected
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    this._socket.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  close(code = 1000, reason = '') {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    // The client is done: what is still queued for it is dropped.
    this._queue.length = 0;
    this._shut();
    this._queue.push({ close: { code, reason } });
    this._paused = false;
    this._schedule();
  }

  /**
   * Backpressure: no more events and no more reading from the server
   * until resume() (what was read stays queued, in order).
   */
  pause() {
    this._paused = true;
    this._socket?.pause();
  }

  resume() {
    this._paused = false;
    this._schedule(); // the queue first; reading resumes once it is empty
  }

  // ------------------------------------------------------------------ internals

  _emit(handler, event) {
    const f = this[handler];
    if (typeof f === 'function') f.call(this, event);
  }

  /** Queues a message event (string: a control message; Buffer: POP3 bytes). */
  _deliver(data) {
    // Node hands each read over in a fresh ArrayBuffer of its own: pass it
    // on as is when the Buffer spans all of it, copy only otherwise.
    let payload = data;
    if (typeof data !== 'string') {
      const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      payload = whole ? data.buffer : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    }
    this._queue.push({ data: payload });
    // Read no further ahead than a few chunks of what the client took.
    if (this._queue.length >= MAX_QUEUED) this._socket?.pause();
    this._schedule();
  }

  /** Events go out from a fresh task, never from inside a call of the client's. */
  _schedule() {
    if (this._scheduled) return;
    this._scheduled = true;
    setImmediate(() => {
      this._scheduled = false;
      this._pump();
    });
  }

  _pump() {
    // A handler may call pause() (a full stream): stop right there.
    while (this._queue.length && !this._paused) {
      const item = this._queue.shift();
      if (item.close) {
        this.readyState = CLOSED;
        const { code, reason } = item.close;
        this._emit('onclose', { type: 'close', code, reason, wasClean: code === 1000 });
        return;
      }
      if (this.readyState !== CLOSED) this._emit('onmessage', { type: 'message', data: item.data });
    }
    if (!this._paused && this._queue.length === 0) this._socket?.resume();
  }

  /** An error in the bridge's form, then a close with the bridge's code. */
  _fail(code, message, closeCode) {
    this._shut();
    this._deliver(JSON.stringify({ type: 'error', code, message }));
    this._queue.push({ close: { code: closeCode, reason: code } });
    this._schedule();
  }

  /** The server went away: the close follows every byte already queued. */
  _upstreamClosed() {
    if (this._stage === 'closed') return;
    this._shut();
    this._queue.push({ close: { code: 1000, reason: 'upstream closed' } });
    this._schedule();
  }

  /** Drops the connection to the server (once). */
  _shut() {
    if (this._stage === 'closed') return;
    this._stage = 'closed';
    this.readyState = CLOSING;
    const s = this._socket;
    this._socket = null;
    if (s) {
      s.removeAllListeners('data');
      s.on('error', () => {});
      s.destroy();
    }
  }

  _control(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return this._fail('PROTOCOL_ERROR', 'malformed control message', 4400);
    }
    if (this._stage === 'hello') {
      if (msg?.type !== 'connect') return this._fail('PROTOCOL_ERROR', 'the first message must be connect', 4400);
      if (msg.v !== 1) return this._fail('PROTOCOL_ERROR', `unsupported wire format version ${msg.v}`, 4400);
      return this._connect(msg);
    }
    if (msg?.type === 'stls' && this._stage === 'relay') {
      if (this._socket.encrypted) return this._fail('PROTOCOL_ERROR', 'stls on a session that already uses TLS', 4400);
      return this._stls();
    }
    // Anything else is for a newer peer; ignore it, as the bridge does.
  }

  _connect({ host, port, tls: mode }) {
    if (typeof host !== 'string' || !host || !Number.isInteger(port) || !['implicit', 'starttls', 'none'].includes(mode)) {
      return this._fail('PROTOCOL_ERROR', 'malformed connect message', 4400);
    }
    this._stage = 'connecting';
    this._target = { host: bareHost(host), port, tls: mode };
    const sock = net.connect({ host: this._target.host, port });
    this._socket = sock;
    sock.setNoDelay(true);
    sock.once('error', (e) => {
      if (this._socket === sock && this._stage === 'connecting') {
        this._fail('CONNECT_FAILED', describeConnectError(e), 4502);
      }
    });
    sock.once('connect', () => {
      if (this._socket !== sock) return;
      this._onPhase?.('tcp', performance.now());
      if (mode !== 'implicit') {
        this._relay(sock);
        this._deliver(JSON.stringify({ type: 'connected', tls: null }));
        return;
      }
      this._handshake(sock, (secure, info) => {
        this._relay(secure);
        this._deliver(JSON.stringify({ type: 'connected', tls: info }));
      });
    });
  }

  /** A verified TLS handshake over `sock`, SNI = the host unless it is an IP literal. */
  _handshake(sock, then) {
    const { host } = this._target;
    sock.removeAllListeners('data');
    sock.removeAllListeners('error');
    sock.on('error', () => {}); // the TLS socket reports
    const secure = tls.connect({
      socket: sock,
      host,
      servername: net.isIP(host) ? undefined : host,
      secureContext: this._context,
      rejectUnauthorized: true,
    });
    this._socket = secure;
    this._stage = 'handshake';
    secure.once('error', (e) => {
      if (this._socket === secure && this._stage === 'handshake') this._fail('TLS_FAILED', describeTlsError(e), 4525);
    });
    secure.once('secureConnect', () => {
      if (this._socket !== secure || this._stage !== 'handshake') return;
      this._onPhase?.('tls', performance.now());
      then(secure, tlsInfo(secure));
    });
  }

  /** Relays the server's bytes to the client until it closes. */
  _relay(sock) {
    this._stage = 'relay';
    if (this._paused) sock.pause();
    sock.removeAllListeners('error');
    sock.on('data', (d) => this._onData(d));
    sock.on('error', () => {}); // 'close' follows
    sock.once('close', () => {
      if (this._socket !== sock) return;
      // Closed before a whole STLS reply line: hand over what came, as the bridge.
      if (this._stage === 'stls' && this._stlsLine.length) this._deliver(Buffer.concat(this._stlsLine));
      this._upstreamClosed();
    });
  }

  _onData(d) {
    if (this._stage === 'relay') return this._deliver(d);
    if (this._stage !== 'stls') return; // after +OK to STLS: discarded
    // Waiting for the answer to STLS, judged by the core's rule (as the
    // bridge does): nothing after an +OK line is trusted.
    this._stlsLine.push(d);
    const got = Buffer.concat(this._stlsLine);
    const { verdict, lineLength, reason } = stlsReply(got);
    if (verdict === 'incomplete') return;
    this._stlsLine = [];
    const line = got.subarray(0, lineLength ?? 0);
    const rest = got.subarray(lineLength ?? got.length);
    if (line.length) this._deliver(line);
    if (verdict === 'unusable') return this._fail('TLS_FAILED', reason, 4525);
    if (verdict === 'refused') {
      // -ERR: the session goes on in plain text.
      this._stage = 'relay';
      if (rest.length) this._deliver(rest);
      return;
    }
    // +OK: whatever followed the line is dropped, then the handshake runs
    // over the same socket.
    const sock = this._socket;
    sock.removeAllListeners('close');
    const discarded = rest.length;
    this._handshake(sock, (secure, info) => {
      this._relay(secure);
      this._deliver(JSON.stringify({ type: 'tls', tls: info, discarded }));
    });
  }

  _stls() {
    this._stage = 'stls';
    this._stlsLine = [];
    this._socket.write('STLS\r\n');
  }
}

/**
 * The wasm client words the transport's errors as a bridge's ("bridge:
 * connection refused"); in direct mode there is no bridge. Rewrites the
 * message in place and returns the error.
 */
export function directError(e) {
  if (e && typeof e.message === 'string' && e.message.startsWith('bridge: ')) {
    e.message = e.message.slice('bridge: '.length);
  }
  return e;
}
