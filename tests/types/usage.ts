// Compiled (never run) by tests/e2e/types.test.mjs: the package's types
// must accept what the README shows and reject what is wrong.
import {
  ErrorCode,
  Pop3Client,
  Pop3Error,
  TlsReason,
  diagnose,
  reportMarkdown,
  type Capabilities,
  type Diagnosis,
  type DiagnosisStep,
  type CertificateDetails,
  type Mechanism,
  type Phase,
  type Summary,
  type TranscriptLine,
} from 'pop3-wasm';

async function main(): Promise<void> {
  const lines: TranscriptLine[] = [];
  const c = await Pop3Client.connect({
    bridge: 'ws://127.0.0.1:8080/pop3',
    host: 'pop.example.com',
    port: 995,
    tls: 'implicit',
    timeouts: { connect: 5000, command: 10000 },
    onTranscript: (l) => lines.push(l),
  });
  const tls: string | undefined = c.tls?.certificate.notAfter;
  const mech: string = await c.login('alice', 'secret');
  const { count, size }: { count: number; size: number } = await c.stat();
  const one: { id: number; size: number } = await c.list(1);
  const all: Array<{ id: number; uid: string }> = await c.uidl();
  const body: Uint8Array = await c.retr(1, { onProgress: (received: number, total: number | null) => void [received, total] });
  const stream: ReadableStream<Uint8Array> = await c.retrStream(1, { signal: AbortSignal.timeout(1000) });
  const summaries: Summary[] = await c.summaries({ onProgress: (done, total) => void [done, total] });
  const subject: string | null = summaries[0].subject;
  const batch = await c.retrMany([1, 2]);
  const err: Pop3Error | null = batch[0].error;
  const raw = await c.raw('LIST');
  const ok: boolean = raw.ok;
  // What the client learnt on the way (no command is sent for these).
  const caps: Capabilities | null = c.capabilities;
  const beforeStls: string[] | undefined = c.capaHistory.beforeStls?.raw;
  const afterLogin: Capabilities | null = c.capaHistory.afterLogin;
  const mechanisms: Mechanism[] = c.loginMechanisms;
  const apop: boolean = c.apopUsable;
  void [caps, beforeStls, afterLogin, mechanisms, apop];
  // @ts-expect-error: read-only
  c.apopUsable = true;
  await c.quit();
  c.close();
  // End-to-end TLS: the client's own, the bridge relays ciphertext; `ca` works in browsers too.
  const phases: Phase[] = [];
  const e = await Pop3Client.connect({
    bridge: 'ws://127.0.0.1:8080/pop3',
    host: 'pop.example.com',
    tls: 'starttls',
    endToEnd: true,
    ca: new Uint8Array([48]),
    onPhase: (p) => phases.push(p),
  });
  const endToEnd: boolean | undefined = e.tls?.endToEnd;
  const chain: CertificateDetails[] | undefined = e.tls?.chain;
  const names: string[] | undefined = chain?.[0].dnsNames;
  const steps: Array<Phase['name']> = e.phases.map((p) => p.name);
  void [endToEnd, names, steps];
  e.close();
  try {
    await e.noop();
  } catch (err) {
    if (err instanceof Pop3Error && err.code === ErrorCode.TLS_FAILED && err.reason === TlsReason.WRONG_NAME) console.log(err.message);
  }
  // @ts-expect-error: endToEnd is a boolean
  await Pop3Client.connect({ host: 'x', endToEnd: 'yes' });
  // @ts-expect-error: phase names are a closed list
  const step: Phase['name'] = 'dns';
  void step;
  // Node: the direct transport.
  const d = await Pop3Client.connect({ host: 'pop.example.com', port: 995, ca: '-----BEGIN CERTIFICATE-----', maxBodyBytes: 1 << 20 });
  d.close();
  try {
    await c.noop();
  } catch (e) {
    if (e instanceof Pop3Error && e.code === 'TIMEOUT') console.log(e.respCode, e.serverText);
  }
  void [tls, mech, count, size, one, all, body, stream, subject, err, ok, lines];
  // The analyzer: the same options as connect, plus what to log in with.
  const report: Diagnosis = await diagnose({
    bridge: 'ws://127.0.0.1:8080/pop3',
    host: 'pop.example.com',
    tls: 'starttls',
    endToEnd: true,
    user: 'alice',
    password: 'secret',
    timeouts: { greeting: 5000 },
  });
  const failed: DiagnosisStep | undefined = report.steps.find((s) => s.status === 'fail');
  const hint: string | null | undefined = failed?.hint;
  const chainNames: string[] | undefined = report.tls?.chain?.[0].dnsNames;
  const markdown: string = reportMarkdown(report);
  void [hint, chainNames, markdown, report.capabilities.changes[0]?.added, report.uidl];
  await diagnose({ host: 'pop.office365.example', user: 'a@b.example', oauthToken: 'ya29.x', mechanism: 'XOAUTH2' });
  // @ts-expect-error: step statuses are a closed list
  const status: DiagnosisStep['status'] = 'maybe';
  // @ts-expect-error: the password is a string
  await diagnose({ host: 'x', user: 'u', password: 42 });
  void status;
  // @ts-expect-error: maxBodyBytes is a number of octets
  await Pop3Client.connect({ host: 'x', maxBodyBytes: '1 MiB' });
  // @ts-expect-error: tls takes three values only
  await Pop3Client.connect({ host: 'x', tls: 'sometimes' });
  // @ts-expect-error: error codes are a closed list
  const bad: Pop3Error['code'] = 'NOPE';
  void bad;
}
void main;
