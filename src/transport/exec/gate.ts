/**
 * Process exec under policy (DESIGN §7, issue #7): turns an exec request into a `process.exec`
 * SecurityEvent, asks the Decider BEFORE anything is sent, and only on `allow` runs the command
 * through the guest exec service. A block or engine error is refused with the rule id and nothing
 * reaches the guest. Either way the decision and one `exec_events` row go to the EventSink.
 *
 * Owns: request validation for `POST /v1/exec`, the event, enforcement, the outcome shape.
 * Must not: decide itself, re-evaluate rules for the log, import the store or control plane.
 */
import { randomUUID } from 'node:crypto';
import { CelgateError, type Issue, type Validated } from '../../errors.js';
import {
  commandClass,
  policyFields,
  processExecEvent,
  type Decider,
  type Decision,
  type EventOrigin,
  type EventSink,
} from '../../events/index.js';
import { execOnGuest, type GuestExecTarget } from './client.js';
import {
  DEFAULT_EXEC_TIMEOUT_MS,
  isExecError,
  MAX_ARG_CHARS,
  MAX_ARGV_ITEMS,
  MAX_EXEC_TIMEOUT_MS,
  type ExecRequest,
} from './protocol.js';
import { decideAndRecordHeld } from '../../events/enforce.js';

/** What `POST /v1/exec` accepts. */
export interface ExecInput {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  timeout_ms: number;
  /** Base64 stdin. */
  stdin: string;
  /** Guest process name to attribute the event to (`common.process_name`). */
  process_name: string;
  /** The requesting process, the command's parent (`process.activity.parent_*`); '' when unknown. */
  parent_executable: string;
  parent_command: string;
}

/** Longest `parent_executable` / `parent_command` accepted. */
export const MAX_PARENT_CHARS = 4096;

export interface ExecOutcome {
  event_id: string;
  decision: Decision['action'];
  rule_id: string | null;
  reason: string;
  /** True when policy (or a failure before sending) kept the command from reaching the guest. */
  refused: boolean;
  /** True only when the guest exec service received the command. */
  reached_guest: boolean;
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timed_out: boolean;
  /** Set when the command was allowed but could not run (guest unreachable, spawn failure). */
  error: string | null;
  duration_ms: number;
}

export interface ExecGateDeps {
  decider: Decider;
  sink: EventSink;
  origin: EventOrigin;
  /** Where the guest exec service is; null when no guest is attached (allowed commands then fail). */
  target: GuestExecTarget | null;
  /** Aborted when the caller went away (the admin API request closed): a command held for an
   * approver then does not run. */
  signal?: AbortSignal | undefined;
}

type Obj = Record<string, unknown>;

/**
 * Validates a `POST /v1/exec` body: `{argv, cwd?, env?, timeout_ms?, stdin?, process_name?,
 * parent_executable?, parent_command?}`.
 */
export function parseExecInput(body: unknown): Validated<ExecInput> {
  const issues: Issue[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, issues: [{ path: '', message: 'body must be a JSON object' }] };
  }
  const o = body as Obj;
  const argv = o.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    issues.push({ path: 'argv', message: 'must be a non-empty list of strings' });
  } else if (
    argv.length > MAX_ARGV_ITEMS ||
    argv.some((a: string) => a.length > MAX_ARG_CHARS || a.includes('\0'))
  ) {
    issues.push({
      path: 'argv',
      message: `at most ${MAX_ARGV_ITEMS} items of at most ${MAX_ARG_CHARS} chars, no NUL`,
    });
  } else if (argv[0] === '') issues.push({ path: 'argv[0]', message: 'must not be empty' });
  const cwd = o.cwd ?? '/';
  if (typeof cwd !== 'string' || !cwd.startsWith('/'))
    issues.push({ path: 'cwd', message: 'must be an absolute path' });
  const env = o.env ?? {};
  if (
    typeof env !== 'object' ||
    env === null ||
    Array.isArray(env) ||
    !Object.values(env).every((v) => typeof v === 'string')
  ) {
    issues.push({ path: 'env', message: 'must be an object of strings' });
  }
  const timeout = o.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS;
  if (
    typeof timeout !== 'number' ||
    !Number.isInteger(timeout) ||
    timeout <= 0 ||
    timeout > MAX_EXEC_TIMEOUT_MS
  ) {
    issues.push({ path: 'timeout_ms', message: `must be an integer in 1..${MAX_EXEC_TIMEOUT_MS}` });
  }
  const stdin = o.stdin ?? '';
  if (typeof stdin !== 'string') issues.push({ path: 'stdin', message: 'must be base64 text' });
  const pname = o.process_name ?? '';
  if (typeof pname !== 'string' || pname.length > 256)
    issues.push({ path: 'process_name', message: 'must be a string of at most 256 chars' });
  const parent = (key: 'parent_executable' | 'parent_command'): string => {
    const v = o[key] ?? '';
    if (typeof v === 'string' && v.length <= MAX_PARENT_CHARS && !v.includes('\0')) return v;
    issues.push({
      path: key,
      message: `must be a string of at most ${MAX_PARENT_CHARS} chars, no NUL`,
    });
    return '';
  };
  const parentExecutable = parent('parent_executable');
  const parentCommand = parent('parent_command');
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      argv: argv as string[],
      cwd: cwd as string,
      env: env as Record<string, string>,
      timeout_ms: timeout as number,
      stdin: stdin as string,
      process_name: pname as string,
      parent_executable: parentExecutable,
      parent_command: parentCommand,
    },
  };
}

/** A readable one-line command: arguments with spaces or quotes are single-quoted. */
export function displayCommand(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** Decides, enforces and records one exec. Never throws for guest or policy failures. */
export async function gatedExec(input: ExecInput, deps: ExecGateDeps): Promise<ExecOutcome> {
  const started = performance.now();
  const executable = input.argv[0]!;
  const origin: EventOrigin =
    input.process_name === '' ? deps.origin : { ...deps.origin, process_name: input.process_name };
  const event = processExecEvent(origin, {
    executable,
    argv: [...input.argv],
    command: displayCommand(input.argv),
    cwd: input.cwd,
    command_class: commandClass(executable),
    parent_executable: input.parent_executable,
    parent_command: input.parent_command,
  });
  // Recorded before anything runs: a ledger that refuses an allow turns it into a refusal. An `ask`
  // may be held for an approver first (docs/approvals.md).
  const decision = await decideAndRecordHeld(deps, event);
  const outcome: ExecOutcome = {
    event_id: event.common.event_id,
    decision: decision.action,
    rule_id: decision.rule_id,
    reason: decision.reason,
    refused: decision.action !== 'allow',
    reached_guest: false,
    exit_code: null,
    signal: null,
    stdout: '',
    stderr: '',
    truncated: false,
    timed_out: false,
    error: null,
    duration_ms: 0,
  };
  if (decision.action === 'allow') {
    if (deps.target === null) {
      outcome.error = 'no guest exec service is configured for this gateway';
    } else if (deps.signal?.aborted === true) {
      // The caller went away while the command was held for an approver: nothing runs.
      outcome.error = 'the caller went away before the command was approved; it did not run';
    } else {
      const req: ExecRequest = {
        v: 1,
        id: randomUUID(),
        argv: input.argv,
        cwd: input.cwd,
        env: input.env,
        timeout_ms: input.timeout_ms,
        stdin: input.stdin,
      };
      try {
        const r = await execOnGuest(deps.target, req);
        outcome.reached_guest = true;
        if (isExecError(r)) outcome.error = `${r.error.code}: ${r.error.message}`;
        else {
          Object.assign(outcome, {
            exit_code: r.exit_code,
            signal: r.signal,
            stdout: r.stdout,
            stderr: r.stderr,
            truncated: r.truncated,
            timed_out: r.timed_out,
          });
          outcome.error = r.spawn_error;
        }
      } catch (err) {
        outcome.error = err instanceof CelgateError ? `${err.code}: ${err.message}` : String(err);
      }
    }
  }
  outcome.duration_ms = performance.now() - started;
  const a = event.process.activity;
  deps.sink.exec({
    ...policyFields(event, decision),
    executable: a.executable,
    argv: a.argv,
    command: a.command,
    cwd: a.cwd,
    command_class: a.command_class,
    exit_code: outcome.exit_code,
    duration_ms: outcome.duration_ms,
  });
  return outcome;
}

/** The HTTP status `POST /v1/exec` answers with for an outcome. */
export function execHttpStatus(o: ExecOutcome): number {
  if (o.decision === 'block') return 403;
  if (o.decision === 'error') return 500;
  return o.reached_guest ? 200 : 502;
}
