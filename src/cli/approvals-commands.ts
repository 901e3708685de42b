/**
 * `celgate approvals`: the human approver of `ask` rules (docs/approvals.md), a thin client of the
 * admin API (`GET /v1/approvals`, `POST /v1/approvals/:id`) over the gateway's Unix socket.
 *
 * - In a terminal: waits for held requests and asks allow / deny (and whether to remember the
 *   answer for the session) for each, until interrupted. While it runs the gateway counts an
 *   approver as present, so `ask` rules hold requests instead of blocking them.
 * - `--json`: prints the pending approvals as JSON and exits (`--wait` first waits for one).
 * - `approvals answer <id> allow|deny [--remember session]`: answers one, for scripts.
 *
 * No policy, no database access here.
 */
import { createInterface, type Interface } from 'node:readline/promises';
import type { Command } from 'commander';
import { CelgateError } from '../errors.js';
import {
  action,
  apiError,
  callControl as call,
  CLIENT_TIMEOUT_MS,
  socketPath,
  withSocket,
  type SocketFlags,
} from './admin-client.js';

/** A long poll waits at most 25 s on the server; the client allows for that and a margin. */
const POLL_TIMEOUT_MS = 35_000;
/** The interactive prompt re-reads the list this often, so the gateway keeps counting it present
 * while a question is on screen. */
const HEARTBEAT_MS = 10_000;

/** One pending approval as GET /v1/approvals lists it (src/control/approvals.ts ApprovalView). */
export interface PendingApproval {
  id: string;
  seq: number;
  protocol: string;
  target: string;
  detail: string;
  rule: string | null;
  reason: string;
  process_name: string;
  age_ms: number;
  timeout_ms: number;
}

interface ApprovalList {
  approvals: PendingApproval[];
  cursor: number;
}

async function list(socket: string, wait: boolean, after: number): Promise<ApprovalList> {
  const res = await call(
    socket,
    'GET',
    wait ? `/v1/approvals?wait=1&after=${after}` : '/v1/approvals',
    undefined,
    wait ? POLL_TIMEOUT_MS : CLIENT_TIMEOUT_MS,
  );
  if (res.status !== 200) throw apiError(res);
  return res.json as ApprovalList;
}

/** Answers approval `id`; returns the API's JSON, or throws with its error (404, 409, 400). */
export async function answerApproval(
  socket: string,
  id: string,
  decision: 'allow' | 'deny',
  remember: 'none' | 'session',
): Promise<any> {
  const res = await call(socket, 'POST', `/v1/approvals/${encodeURIComponent(id)}`, {
    decision,
    remember,
  });
  if (res.status !== 200) throw apiError(res);
  return res.json;
}

/** Control characters (C0, DEL, C1) and bidirectional overrides: a hostile guest could put them in a
 * host, path, command or process name to redraw the terminal or reorder what the approver reads. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every unsafe character shown as a `\u{…}` escape. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** The lines the prompt shows for one pending approval (guest-controlled text made printable). */
export function describeApproval(a: PendingApproval): string {
  return describeRaw({
    ...a,
    target: printable(a.target),
    detail: printable(a.detail),
    reason: printable(a.reason),
    process_name: printable(a.process_name),
  });
}

function describeRaw(a: PendingApproval): string {
  const left = Math.max(0, Math.round((a.timeout_ms - a.age_ms) / 1000));
  return [
    `${a.protocol.toUpperCase()}  ${a.target}`,
    ...(a.detail === '' ? [] : [`  ${a.detail}`]),
    `  rule ${a.rule ?? '(none)'}: ${a.reason}`,
    `  from ${a.process_name === '' ? 'an unknown process' : a.process_name}, waiting ${Math.round(a.age_ms / 1000)} s (blocked in ${left} s without an answer)`,
  ].join('\n');
}

/** What a typed answer means: a = allow, d = deny, A / D = the same for the rest of the session. */
export function parseAnswer(
  text: string,
): { decision: 'allow' | 'deny'; remember: 'none' | 'session' } | 'skip' | null {
  switch (text.trim()) {
    case 'a':
    case 'allow':
      return { decision: 'allow', remember: 'none' };
    case 'A':
      return { decision: 'allow', remember: 'session' };
    case 'd':
    case 'deny':
      return { decision: 'deny', remember: 'none' };
    case 'D':
      return { decision: 'deny', remember: 'session' };
    case 's':
    case '':
      return 'skip';
    default:
      return null;
  }
}

async function interactive(socket: string): Promise<void> {
  const rl: Interface = createInterface({ input: process.stdin, output: process.stdout });
  let stopped = false;
  rl.on('close', () => {
    stopped = true;
  });
  const heartbeat = setInterval(() => {
    list(socket, false, 0).catch(() => {});
  }, HEARTBEAT_MS);
  process.stdout.write(`Waiting for requests that need approval (Ctrl-C to stop)…\n`);
  let after = 0;
  try {
    while (!stopped) {
      const page = await list(socket, true, after);
      const fresh = page.approvals.filter((a) => a.seq > after);
      after = Math.max(after, page.cursor);
      for (const a of fresh) {
        if (stopped) break;
        process.stdout.write(`\n${describeApproval(a)}\n`);
        let answer = null as ReturnType<typeof parseAnswer>;
        while (answer === null && !stopped) {
          answer = parseAnswer(
            await rl.question(
              '[a]llow, [d]eny, [A]llow or [D]eny for the rest of the session, [s]kip? ',
            ),
          );
          if (answer === null) process.stdout.write('Type a, d, A, D or s.\n');
        }
        if (answer === null || answer === 'skip') continue;
        try {
          const out = await answerApproval(socket, a.id, answer.decision, answer.remember);
          process.stdout.write(
            `${answer.decision === 'allow' ? 'allowed' : 'denied'}${out.remembered === null ? '' : ` (remembered as rule ${out.remembered})`}${out.warning === undefined ? '' : `; ${out.warning}`}\n`,
          );
        } catch (err) {
          // Answered elsewhere, or timed out while the question was on screen.
          process.stdout.write(`not answered: ${(err as Error).message}\n`);
        }
      }
    }
  } finally {
    clearInterval(heartbeat);
    rl.close();
  }
}

export function registerApprovalsCommands(program: Command): void {
  const approvals = withSocket(
    program
      .command('approvals')
      .description(
        'Answer requests that `ask` rules hold: an interactive prompt in a terminal, or --json for scripts.',
      )
      .option('--json', 'print the pending approvals as JSON and exit')
      .option('--wait', 'with --json: first wait (up to 25 s) for a pending approval')
      .option('--prompt', 'ask even when stdin is not a terminal (answers read line by line)'),
  ).action(
    action(async (flags: SocketFlags & { json?: boolean; wait?: boolean; prompt?: boolean }) => {
      const socket = socketPath(flags);
      if (flags.json === true || (!process.stdin.isTTY && flags.prompt !== true)) {
        const page = await list(socket, flags.wait === true, 0);
        if (flags.json === true) process.stdout.write(`${JSON.stringify(page.approvals)}\n`);
        else
          for (const a of page.approvals) process.stdout.write(`${a.id}\n${describeApproval(a)}\n`);
        return;
      }
      await interactive(socket);
    }),
  );
  withSocket(
    approvals
      .command('answer <id> <decision>')
      .description('Answer one pending approval: allow or deny.')
      .option(
        '--remember <scope>',
        'none, or session: answer identical requests the same way',
        'none',
      ),
  ).action(
    action(async (id: string, decision: string, flags: SocketFlags & { remember: string }) => {
      if (decision !== 'allow' && decision !== 'deny')
        throw new CelgateError('E_CONFIG', `decision must be allow or deny, not "${decision}"`);
      if (flags.remember !== 'none' && flags.remember !== 'session')
        throw new CelgateError('E_CONFIG', `--remember must be none or session`);
      // Options given after the subcommand may land on the parent (commander's default).
      const where = { ...(approvals.opts() as SocketFlags), ...flags };
      const out = await answerApproval(socketPath(where), id, decision, flags.remember);
      process.stdout.write(`${JSON.stringify(out)}\n`);
    }),
  );
}
