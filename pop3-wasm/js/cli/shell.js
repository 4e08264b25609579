// pop3 shell: an interactive POP3 console, like `telnet host 110` but with
// TLS (implicit or STLS, verified) and a transcript. Every line typed goes
// to the server as is (through c.raw); every line on the wire is shown as
// `C: …` / `S: …`, multi-line answers whole, passwords as [redacted].
import readline from 'node:readline';
import { Command, CommanderError, Option } from 'commander';
import { UsageError, askHidden, login, open, parseDuration, parsePort, target } from './common.js';
import { respCodeHint } from '../resp-codes.js';

const HELP = `Type POP3 commands as you would in telnet: CAPA, USER alice, STAT, LIST, RETR 1, QUIT.
  PASS            (without an argument) asks for the password without echo
  .login [USER]   logs in with the strongest mechanism offered (asks for the password)
  .tls            shows the TLS session and certificate
  .deviations     lists the spec deviations the client tolerated so far
  .help           this text
  .quit, Ctrl-D   leaves without sending QUIT (nothing marked is deleted)
Lines with a password (PASS, APOP, AUTH) are kept out of the history.`;

/** Lines that must not stay in the history. */
const SECRET = /^\s*(PASS|APOP|AUTH)\b/i;

export function program() {
  const p = new Command('pop3').description('POP3 tools built on pop3-wasm');
  p.command('shell')
    .description('interactive POP3 console with TLS: raw commands, C:/S: transcript, history')
    .argument('[url]', 'pop3s://[user@]host[:995] or pop3://[user@]host[:110][?tls=starttls|none]')
    .option('-H, --host <host>', 'server host name or address')
    .option('-p, --port <port>', 'server port (default 995 for implicit TLS, else 110)', parsePort)
    .addOption(new Option('--tls <mode>', 'implicit (default), starttls or none').choices(['implicit', 'starttls', 'none']))
    .option('-u, --user <name>', 'default user for .login')
    .option('--auth <mechanism>', 'mechanism .login uses (default: the strongest offered)')
    .option('--bridge <url>', 'go through ws-bridge, e.g. ws://127.0.0.1:8080/pop3')
    .option('--token-env <name>', 'environment variable holding the bridge access token')
    .option('--end-to-end', 'TLS in this client: a bridge relays only ciphertext (direct: the client\'s TLS instead of Node\'s)')
    .option('--ca-file <pem>', 'extra CA certificates to trust (direct connections, or --end-to-end)')
    .option('--insecure-auth', 'allow PASS and readable mechanisms without TLS')
    .addOption(new Option('-t, --timeout <duration>', 'deadline of each step and command').argParser(parseDuration).default(30_000, '30s'))
    .addHelpText('after', `\n${HELP}`)
    .action(async (url, o) => {
      p.exitCode = await shell(target(url, o), o);
    });
  return p;
}

/**
 * Runs the console until .quit, Ctrl-D, QUIT or the server hanging up.
 * The dialogue goes to `output`; the prompt, line editing and password
 * prompts to `ui`: `output` when it is a terminal, else standard error when
 * that is one (`pop3 shell … | tee log` still edits lines and hides the
 * password), else `output`.
 */
export async function shell(t, o, { input = process.stdin, output = process.stdout, ui } = {}) {
  ui ??= output.isTTY ? output : process.stderr.isTTY ? process.stderr : output;
  // Output may arrive while the prompt is shown (the CAPA the client asks
  // after a login, say): it goes above the prompt, which is drawn again.
  let rl = null;
  let prompting = false;
  const say = (s) => {
    if (rl && prompting && rl.terminal) {
      readline.clearLine(ui, 0);
      readline.cursorTo(ui, 0);
      output.write(`${s}\n`);
      rl.prompt(true);
    } else {
      output.write(`${s}\n`);
    }
  };
  say(`Connecting to ${t.host}:${t.port} (${t.tls === 'implicit' ? 'implicit TLS' : t.tls === 'starttls' ? 'STLS' : 'no TLS'}${t.bridge ? `, through ${t.bridge}` : ''})…`);
  let c;
  try {
    c = await open(t, { timeoutMs: o.timeout, onTranscript: ({ dir, line }) => say(`${dir}: ${line}`) });
  } catch (e) {
    say(`! ${e.code ?? 'ERROR'}: ${e.message}`);
    return 1;
  }
  if (c.tls) {
    say(`* TLS ${c.tls.protocol} ${c.tls.cipher}; certificate ${c.tls.certificate.subject}, expires ${c.tls.certificate.notAfter}`);
  } else {
    say('* no TLS: the password would travel readable');
  }
  say('* .help lists the shell commands; .quit or Ctrl-D leaves');

  rl = readline.createInterface({ input, output: ui, terminal: Boolean(input.isTTY && ui.isTTY), historySize: 500 });
  rl.setPrompt('pop3> ');
  // Keep password lines out of the history (readline adds them first).
  rl.on('history', (h) => {
    if (h.length && SECRET.test(h[0])) h.shift();
  });
  rl.on('SIGINT', () => {
    if (rl.listenerCount('SIGINT') > 1) return; // a password prompt handles it
    rl.write(null, { ctrl: true, name: 'u' }); // Ctrl-C clears the line
    ui.write('\n(.quit or Ctrl-D to leave)\n');
    prompt();
  });

  let closed = false;
  const ended = new Promise((resolve) => rl.once('close', resolve));
  const handle = async (line) => {
    const cmd = line.trim();
    if (!cmd) return;
    if (cmd.startsWith('.')) {
      const [name, ...args] = cmd.split(/\s+/);
      switch (name) {
        case '.quit':
        case '.exit':
          closed = true;
          return;
        case '.help':
          return say(HELP);
        case '.tls':
          return say(c.tls ? JSON.stringify(c.tls, null, 2) : 'no TLS');
        case '.deviations':
          return say(c.deviations.length ? c.deviations.map((d) => `${d.id}: ${d.description}`).join('\n') : 'none');
        case '.login': {
          const user = args[0] ?? t.user;
          if (!user) return say('! .login USER');
          const pw = await askHidden(`Password for ${user}: `, { rl });
          const mech = await login(c, { ...t, user }, { password: pw });
          return say(`* logged in with ${mech}`);
        }
        default:
          return say(`! unknown shell command ${name} (.help)`);
      }
    }
    let send = line;
    if (/^\s*PASS\s*$/i.test(line)) {
      send = `PASS ${await askHidden('Password: ', { rl })}`;
    }
    const r = await c.raw(send);
    if (/^\s*QUIT\s*$/i.test(line) && r.ok) closed = true;
    // -ERR is the server's answer, shown as is; a response code gets its meaning.
    const hint = r.ok ? null : respCodeHint(r.respCode);
    if (hint) say(`* ${hint.title} (${r.respCode.toUpperCase()}): ${hint.text}`);
  };

  const prompt = () => {
    prompting = true;
    rl.prompt();
  };
  rl.on('line', () => (prompting = false));
  prompt();
  for await (const line of rl) {
    try {
      await handle(line);
    } catch (e) {
      if (e instanceof UsageError) say(`! ${e.message}`);
      else {
        say(`! ${e.code ?? 'ERROR'}: ${e.message}`);
        const hint = respCodeHint(e.respCode);
        if (hint) say(`! ${hint.title} (${e.respCode.toUpperCase()}): ${hint.text}`);
      }
    }
    if (!closed && c.state === 'CLOSED') {
      say('* the connection is closed');
      closed = true;
    }
    if (closed) break;
    prompt();
  }
  if (!closed) ui.write('\n'); // Ctrl-D
  rl.close();
  await ended;
  c.close(); // no QUIT unless the user typed it
  return 0;
}

export async function main(argv) {
  const p = program();
  p.exitOverride();
  try {
    await p.parseAsync(argv, { from: 'user' });
    return p.exitCode ?? 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof UsageError) {
      process.stderr.write(`pop3: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
