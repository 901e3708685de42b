import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { callerProcess } from '../../src/cli/guest-commands.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  Decider,
  Decision,
  EventSink,
  ExecRow,
  SecurityEvent,
} from '../../src/events/index.js';
import {
  gatedExec,
  parseExecInput,
  execHttpStatus,
  type ExecInput,
} from '../../src/transport/exec/gate.js';
import { serveExecConnection } from '../../src/transport/guest/exec-service.js';
import {
  listenHybridBase,
  type GuestPortListener,
} from '../../src/transport/guest/hybrid-endpoint.js';

/** A decider that blocks executables named in `blocked` with rule `deny-<name>`; records what it saw. */
function fakeDecider(blocked: string[], throwOn?: string): Decider & { seen: SecurityEvent[] } {
  const seen: SecurityEvent[] = [];
  return {
    seen,
    decide(event: SecurityEvent): Decision {
      seen.push(event);
      const exe = 'process' in event ? event.process.activity.executable : '';
      if (exe === throwOn) throw new Error('engine exploded');
      const hit = blocked.includes(exe);
      return {
        action: hit ? 'block' : 'allow',
        rule_id: hit ? `deny-${exe}` : null,
        reason: hit ? `${exe} is not allowed` : 'default allow',
        mode: hit ? 'enforce' : 'default',
        matches: [],
        findings: [],
        errors: [],
        generation: 1,
        eval_ns: 10,
      };
    },
  };
}

function recordingSink(): EventSink & { rows: ExecRow[]; decisions: Decision[] } {
  const rows: ExecRow[] = [];
  const decisions: Decision[] = [];
  return {
    rows,
    decisions,
    decision: (_e, d) => decisions.push(d),
    net() {},
    dns() {},
    mcp() {},
    exec: (r) => rows.push(r),
  };
}

const input = (argv: string[], extra: Partial<ExecInput> = {}): ExecInput => ({
  argv,
  cwd: '/',
  env: {},
  timeout_ms: 5000,
  stdin: '',
  process_name: 'agent',
  parent_executable: '',
  parent_command: '',
  ...extra,
});

describe('gated exec through the guest exec service (hybrid-vsock base socket)', () => {
  let dir: string;
  let listener: GuestPortListener;
  let connections = 0;
  const target = () => ({ mode: 'uds' as const, udsBase: join(dir, 'vsock'), port: 5000 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-exec-'));
    listener = await listenHybridBase(
      join(dir, 'vsock'),
      new Map([
        [
          5000,
          (s) => {
            connections++;
            serveExecConnection(s);
          },
        ],
      ]),
    );
  });
  afterAll(async () => {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs an allowed command in the guest and returns output and exit code', async () => {
    const sink = recordingSink();
    const out = await gatedExec(input(['sh', '-c', 'echo out; echo err >&2; exit 3']), {
      decider: fakeDecider([]),
      sink,
      origin: { session_id: 's1' },
      target: target(),
    });
    expect(out).toMatchObject({
      decision: 'allow',
      refused: false,
      reached_guest: true,
      exit_code: 3,
      error: null,
    });
    expect(Buffer.from(out.stdout, 'base64').toString()).toBe('out\n');
    expect(Buffer.from(out.stderr, 'base64').toString()).toBe('err\n');
    expect(sink.rows).toHaveLength(1);
    expect(sink.rows[0]).toMatchObject({
      decision: 'allow',
      exit_code: 3,
      command_class: 'shell',
      process_name: 'agent',
      event_id: out.event_id,
    });
    expect(execHttpStatus(out)).toBe(200);
  });

  it('refuses a blocked command with the rule id and never contacts the guest', async () => {
    const sink = recordingSink();
    const before = connections;
    const out = await gatedExec(input(['curl', 'http://x']), {
      decider: fakeDecider(['curl']),
      sink,
      origin: { session_id: 's1' },
      target: target(),
    });
    expect(out).toMatchObject({
      decision: 'block',
      refused: true,
      reached_guest: false,
      rule_id: 'deny-curl',
      exit_code: null,
    });
    expect(connections).toBe(before);
    expect(sink.rows[0]).toMatchObject({
      decision: 'block',
      rule_id: 'deny-curl',
      executable: 'curl',
      command: 'curl http://x',
    });
    expect(sink.decisions[0]!.rule_id).toBe('deny-curl');
    expect(execHttpStatus(out)).toBe(403);
  });

  it('fails closed when the engine throws', async () => {
    const sink = recordingSink();
    const before = connections;
    const out = await gatedExec(input(['boom']), {
      decider: fakeDecider([], 'boom'),
      sink,
      origin: { session_id: 's1' },
      target: target(),
    });
    expect(out).toMatchObject({ decision: 'error', refused: true, reached_guest: false });
    expect(out.reason).toMatch(/fail closed/);
    expect(connections).toBe(before);
    expect(sink.rows[0]!.decision).toBe('error');
  });

  it('reports a command that cannot start without crashing', async () => {
    const out = await gatedExec(input(['/nonexistent/celgate-xyz']), {
      decider: fakeDecider([]),
      sink: recordingSink(),
      origin: { session_id: 's1' },
      target: target(),
    });
    expect(out.reached_guest).toBe(true);
    expect(out.exit_code).toBeNull();
    expect(out.error).toMatch(/ENOENT/);
  });

  it('passes stdin and kills a command that outlives its timeout', async () => {
    const deps = {
      decider: fakeDecider([]),
      sink: recordingSink(),
      origin: { session_id: 's1' },
      target: target(),
    };
    const cat = await gatedExec(
      input(['cat'], { stdin: Buffer.from('piped').toString('base64') }),
      deps,
    );
    expect(Buffer.from(cat.stdout, 'base64').toString()).toBe('piped');
    const slow = await gatedExec(input(['sleep', '5'], { timeout_ms: 200 }), deps);
    expect(slow).toMatchObject({ timed_out: true, signal: 'SIGKILL', exit_code: null });
  });

  it('answers 502 when the guest is unreachable', async () => {
    const out = await gatedExec(input(['true']), {
      decider: fakeDecider([]),
      sink: recordingSink(),
      origin: { session_id: 's1' },
      target: { mode: 'uds', udsBase: join(dir, 'missing'), port: 5000 },
    });
    expect(out.reached_guest).toBe(false);
    expect(out.error).toMatch(/E_UPSTREAM/);
    expect(execHttpStatus(out)).toBe(502);
  });

  it.each([
    [{}, 'argv'],
    [{ argv: [] }, 'argv'],
    [{ argv: ['ls'], cwd: 'rel' }, 'cwd'],
    [{ argv: ['ls'], timeout_ms: -1 }, 'timeout_ms'],
    [{ argv: ['ls'], parent_executable: 7 }, 'parent_executable'],
    [{ argv: ['ls'], parent_command: 'x'.repeat(4097) }, 'parent_command'],
    [[], ''],
  ])('rejects the API body %j at %s', (body, path) => {
    const r = parseExecInput(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]!.path).toBe(path);
  });

  it('carries the requesting process into the event as the parent, for rules to read', async () => {
    const r = parseExecInput({
      argv: ['/usr/bin/trufflehog', 'filesystem', '/'],
      parent_executable: '/usr/bin/node',
      parent_command: 'node agent.js',
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const decider = fakeDecider(['/usr/bin/trufflehog']);
    const out = await gatedExec(r.value, {
      decider,
      sink: recordingSink(),
      origin: { session_id: 's1' },
      target: target(),
    });
    expect(out.refused).toBe(true);
    const seen = decider.seen[0]!;
    expect('process' in seen && seen.process.activity).toMatchObject({
      executable: '/usr/bin/trufflehog',
      parent_executable: '/usr/bin/node',
      parent_command: 'node agent.js',
    });
    const none = parseExecInput({ argv: ['ls'] });
    expect(none.ok && [none.value.parent_executable, none.value.parent_command]).toEqual(['', '']);
  });

  it.skipIf(process.platform !== 'linux')(
    'celgate exec reads its caller from /proc (the parent it reports)',
    () => {
      const me = callerProcess(process.pid);
      expect(me.executable).toBe(realpathSync(process.execPath));
      expect(me.command.split(' ')[0]).toBe(process.argv0);
      expect(callerProcess(2 ** 22 + 1)).toEqual({ executable: '', command: '' });
    },
  );
});
