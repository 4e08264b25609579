// The direct transport (Node only): a byte pipe to the POP3 server over
// node:net, with Node's TLS when the client asks for it. The client (the
// wasm core's driver) decides everything else: the connect sequence, STLS
// (it writes STLS and judges the answer itself), when TLS starts, the
// errors and their words. This file only moves bytes and translates Node's
// vocabulary into the core's:
//
//   client → pipe   write(bytes), startTls(), pause(), resume(), close()
//   pipe → client   open(), data(bytes), tls(info), error(failure), close()
//
// failure: { kind: 'connect', failure: 'refused'|'no-such-host'|'timed-out'|…, message }
//          { kind: 'tls', reason: 'untrusted'|'expired'|'wrong-name'|…, message? }
// info:    the wire format's TLS object { protocol, cipher, certificate: { subject, issuer, notAfter } }
//
// With `endToEnd: true` the client's own TLS (rustls, in the TLS-capable
// wasm module) runs over this pipe instead and startTls() is never called.
// Which of the two is the default for direct sessions was measured: see
// BENCHMARKS.md ("Direct mode: Node's TLS or the client's").
//
// Events are always delivered asynchronously: the client calls write() and
// close() while it holds its own state, and must not be re-entered.
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';

/** Chunks read from the server and not yet taken by the client before reading stops. */
const MAX_QUEUED = 8;

/** `[::1]` → `::1`. */
function bareHost(host) {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Node's `O=x\nCN=y` as the bridge prints it: `O=x, CN=y`. */
function distinguishedName(s) {
  return s.split('\n').filter(Boolean).join(', ');
}

/** The wire format's TLS object for a Node TLS socket (the bridge's shapes and names). */
function tlsInfo(socket) {
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

/** Node's connect errors in the core's words. */
function connectFailure(e) {
  const failure = {
    ECONNREFUSED: 'refused',
    ENOTFOUND: 'no-such-host',
    EAI_AGAIN: 'no-such-host',
    EAI_NONAME: 'no-such-host',
    EAI_FAIL: 'no-such-host',
    ETIMEDOUT: 'timed-out',
  }[e?.code];
  return { kind: 'connect', failure: failure ?? 'other', message: e?.message ?? String(e) };
}

/** OpenSSL's verification codes as `Pop3Error.reason`. */
const TLS_REASONS = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrusted',
  UNABLE_TO_GET_ISSUER_CERT: 'untrusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'untrusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'untrusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'untrusted',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not-yet-valid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'wrong-name',
  CERT_REVOKED: 'bad-certificate',
  CERT_SIGNATURE_FAILURE: 'bad-certificate',
};

/** A failed handshake in the core's words (the sentence is the core's, except for the unexpected). */
function tlsFailure(e) {
  const reason = TLS_REASONS[e?.code];
  if (reason) return { kind: 'tls', reason };
  if (e?.code === 'ECONNRESET' || /socket disconnected|ECONNRESET|EOF/i.test(e?.message ?? '')) {
    return { kind: 'tls', reason: 'truncated' };
  }
  return { kind: 'tls', reason: 'protocol', message: `TLS handshake failed: ${e?.message ?? e}` };
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

/**
 * The `transport` a direct session is opened with: `(host, port, handlers)
 * => pipe`. `ca`: CA certificates trusted besides Node's roots, for Node's
 * TLS (the client checked the option already).
 */
export function directTransport({ ca } = {}) {
  return (host, port, handlers) => new DirectPipe(bareHost(host), port, () => secureContextFor(ca), handlers);
}

class DirectPipe {
  constructor(host, port, context, handlers) {
    this._host = host;
    this._context = context;
    this._h = handlers;
    this._paused = false;
    this._closed = false;
    this._queue = []; // events not yet handed to the client: [name, arg]
    this._scheduled = false;
    const sock = net.connect({ host, port });
    this._socket = sock;
    sock.setNoDelay(true);
    sock.once('error', (e) => {
      if (this._socket === sock && !this._opened) this._fail(connectFailure(e));
    });
    sock.once('connect', () => {
      if (this._socket !== sock) return;
      this._opened = true;
      this._relay(sock);
      this._emit('open');
    });
  }

  write(bytes) {
    if (this._closed) return;
    this._socket.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  /** A verified TLS handshake over the socket, SNI = the host unless it is an IP literal. */
  startTls() {
    if (this._closed) return;
    const sock = this._socket;
    sock.removeAllListeners('data');
    sock.removeAllListeners('close');
    sock.removeAllListeners('error');
    sock.on('error', () => {}); // the TLS socket reports
    const secure = tls.connect({
      socket: sock,
      host: this._host,
      servername: net.isIP(this._host) ? undefined : this._host,
      secureContext: this._context(),
      rejectUnauthorized: true,
    });
    this._socket = secure;
    let up = false;
    secure.once('error', (e) => {
      if (this._socket === secure && !up) this._fail(tlsFailure(e));
    });
    secure.once('secureConnect', () => {
      if (this._socket !== secure) return;
      up = true;
      this._relay(secure);
      this._emit('tls', tlsInfo(secure));
    });
  }

  close() {
    if (this._closed) return;
    // The client is done: what is still queued for it is dropped.
    this._queue.length = 0;
    this._shut();
    this._paused = false;
    this._emit('close');
  }

  /** Backpressure: no more events and no more reading until resume() (what was read stays queued). */
  pause() {
    this._paused = true;
    this._socket?.pause();
  }

  resume() {
    this._paused = false;
    this._schedule(); // the queue first; reading resumes once it is empty
  }

  _relay(sock) {
    if (this._paused) sock.pause();
    sock.removeAllListeners('error');
    sock.on('data', (d) => this._emit('data', d));
    sock.on('error', () => {}); // 'close' follows
    sock.once('close', () => {
      if (this._socket !== sock) return;
      this._shut();
      this._emit('close');
    });
  }

  _fail(failure) {
    this._shut();
    this._emit('error', failure);
    this._emit('close');
  }

  /** Drops the connection to the server (once). */
  _shut() {
    if (this._closed) return;
    this._closed = true;
    const s = this._socket;
    if (s) {
      s.removeAllListeners('data');
      s.on('error', () => {});
      s.destroy();
    }
  }

  _emit(name, arg) {
    if (name === 'data') {
      // Node hands each read over in a fresh ArrayBuffer of its own: pass it
      // on as is when the Buffer spans all of it, copy only otherwise.
      const whole = arg.byteOffset === 0 && arg.byteLength === arg.buffer.byteLength;
      arg = whole ? arg.buffer : arg.buffer.slice(arg.byteOffset, arg.byteOffset + arg.byteLength);
      // Read no further ahead than a few chunks of what the client took.
      if (this._queue.length >= MAX_QUEUED) this._socket?.pause();
    }
    this._queue.push([name, arg]);
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
      const [name, arg] = this._queue.shift();
      this._h[name]?.(arg);
    }
    if (!this._paused && this._queue.length === 0 && !this._closed) this._socket?.resume();
  }
}
