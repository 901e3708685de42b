/**
 * The approval broker and the held path, without sockets: the engine marks `ask`, decideHeld holds
 * it only when the decider can, the broker's bounds (no approver, max_pending, timeout), identical
 * requests sharing one question, answers (404 / 409), remember: session with a rule that matches
 * exactly the identical requests, shutdown, the long poll, and the `approvals:` config section.
 */
import { describe, expect, it } from 'vitest';
import {
  dnsRequestEvent,
  httpRequestEvent,
  mcpRequestEvent,
  processExecEvent,
  type SecurityEvent,
} from '../../src/events/index.js';
import { decideAndRecordHeld, decideHeld } from '../../src/events/enforce.js';
import { NULL_SINK } from '../../src/events/sink.js';
import {
  ApprovalBroker,
  DEFAULT_APPROVALS,
  type ApprovalsConfig,
  type RememberedRule,
} from '../../src/control/approvals.js';
import { approvalTarget } from '../../src/policy/approval-target.js';
import { parseConfig } from '../../src/gateway/config.js';
import { engineWith } from '../policy/helpers.js';
import { describeApproval, parseAnswer } from '../../src/cli/approvals-commands.js';

const origin = { session_id: 's1', process_name: 'agent' };
const get = (path: string, host = 'api.test') =>
  httpRequestEvent(origin, { method: 'GET', scheme: 'https', host, port: 443, path });

function setup(config: Partial<ApprovalsConfig> = {}) {
  const { registry, engine } = engineWith([
    { id: 'ask-api', condition: 'http.request.host == "api.test"', action: 'ask', reason: 'api' },
    { id: 'ask-dns', condition: 'dns.request.qname == "x.test"', action: 'ask', reason: 'dns' },
  ]);
  const remembered: RememberedRule[] = [];
  const broker = new ApprovalBroker({
    config: { ...DEFAULT_APPROVALS, ...config },
    remember: (r) => {
      remembered.push(r);
      const out = registry.installRaw({ ...r, priority: -1000, tags: ['approval'] }, 'approvals');
      return out.ok ? null : JSON.stringify(out.issues);
    },
    ruleReason: (id) => registry.get(id)?.reason,
  });
  const decider = { decide: (e: SecurityEvent) => engine.decide(e), hold: broker.hold };
  const e = { decider, sink: NULL_SINK };
  return { broker, engine, registry, e, remembered };
}

describe('the engine and the held path', () => {
  it('marks a decision whose deciding rule says ask, and keeps it a block with the old reason', () => {
    const { engine } = setup();
    const d = engine.decide(get('/x'));
    expect(d).toMatchObject({ action: 'block', rule_id: 'ask-api', ask: true });
    expect(d.reason).toContain('no approver is configured');
    expect(engine.decide(get('/x', 'other.test')).ask).toBeUndefined();
    expect(engine.hasAsk('http.request')).toBe(true);
    expect(engine.hasAsk('process.exec')).toBe(false);
  });

  it('does not hold without a holding decider: decideHeld is the engine decision, synchronously', () => {
    const { engine } = setup();
    const d = decideHeld({ decider: engine, sink: NULL_SINK }, get('/x'));
    expect(d).not.toBeInstanceOf(Promise);
    expect(d).toMatchObject({ action: 'block', ask: true });
  });

  it('blocks at once while no approver is connected, saying so', () => {
    const { broker, e } = setup();
    const d = decideHeld(e, get('/x'));
    expect(d).not.toBeInstanceOf(Promise);
    expect(d).toMatchObject({ action: 'block', rule_id: 'ask-api' });
    expect((d as { reason: string }).reason).toContain('no approver is connected');
    expect(broker.counts.no_approver).toBe(1);
  });

  it('holds until an approver allows, then records the allow with who answered', async () => {
    const { broker, e } = setup();
    broker.list(); // an approver looked: present
    const recorded: unknown[] = [];
    const held = decideAndRecordHeld(
      { ...e, sink: { ...NULL_SINK, decision: (_ev, d) => void recorded.push(d) } },
      get('/x'),
    );
    expect(held).toBeInstanceOf(Promise);
    expect(recorded).toEqual([]);
    const [p] = broker.list();
    expect(p).toMatchObject({
      protocol: 'http',
      target: 'GET https://api.test/x',
      rule: 'ask-api',
      reason: 'api',
      process_name: 'agent',
    });
    expect(broker.answer(p!.id, 'allow', 'none', 'uid:1000')).toMatchObject({ ok: true, held: 1 });
    const d = await held;
    expect(d).toMatchObject({
      action: 'allow',
      rule_id: 'ask-api',
      approval: { answer: 'allow', by: 'uid:1000', remember: 'none', protocol: 'http' },
    });
    expect(d.reason).toBe('Allowed by an approver (uid:1000) for rule "ask-api" (api).');
    expect(recorded).toEqual([d]);
    expect(broker.answer(p!.id, 'deny', 'none', 'x')).toMatchObject({ ok: false, status: 409 });
    expect(broker.answer('nope', 'deny', 'none', 'x')).toMatchObject({ ok: false, status: 404 });
  });

  it('holds even with nobody connected when wait_without_approver is set, and times out', async () => {
    const { broker, e } = setup({ wait_without_approver: true, timeout_ms: 20 });
    const d = await decideHeld(e, get('/slow'));
    expect(d).toMatchObject({ action: 'block', approval: { answer: 'timeout', by: null } });
    expect(d.reason).toContain('no answer came within 20 ms');
    expect(broker.counts).toMatchObject({ asked: 1, timed_out: 1 });
    expect(broker.pendingCount).toBe(0);
  });

  it('blocks beyond max_pending, and identical requests share one question', async () => {
    const { broker, e } = setup({ max_pending: 2 });
    broker.list();
    const a = decideHeld(e, get('/same'));
    const b = decideHeld(e, get('/same'));
    const c = decideHeld(e, get('/other'));
    expect(c).not.toBeInstanceOf(Promise);
    expect(c).toMatchObject({ action: 'block', approval: { answer: 'overflow' } });
    expect(broker.list()).toHaveLength(1);
    expect(broker.pendingCount).toBe(2);
    const [p] = broker.list();
    expect(broker.answer(p!.id, 'deny', 'none', 'me')).toMatchObject({ held: 2 });
    for (const d of await Promise.all([a, b]))
      expect(d).toMatchObject({ action: 'block', approval: { answer: 'deny', id: p!.id } });
    expect(broker.counts).toMatchObject({ asked: 2, denied: 2, overflow: 1 });
  });

  it('remembers an answer for the session with a rule that matches exactly identical requests', async () => {
    const { broker, e, engine, remembered } = setup();
    broker.list();
    const held = decideHeld(e, get('/r'));
    const [p] = broker.list();
    const out = broker.answer(p!.id, 'allow', 'session', 'me');
    expect(out).toMatchObject({
      ok: true,
      remembered: expect.stringMatching(/^approval\.session\./),
    });
    expect((await held).action).toBe('allow');
    expect(remembered[0]!.condition).toBe(
      'http.request.method == "GET" && http.request.scheme == "https" && http.request.host == "api.test" && http.request.port == 443 && http.request.path == "/r"',
    );
    expect(engine.decide(get('/r'))).toMatchObject({
      action: 'allow',
      rule_id: out.ok ? out.remembered : '',
    });
    expect(engine.decide(get('/r2')).rule_id).toBe('ask-api');
  });

  it('answers every held request "closed" on shutdown and ends open long polls', async () => {
    const { broker, e } = setup();
    const poll = broker.wait(0, 10_000);
    const held = decideHeld(e, get('/bye'));
    await poll; // woke for the new approval
    broker.close();
    expect(await held).toMatchObject({ action: 'block', approval: { answer: 'closed' } });
    await broker.wait(broker.cursor(), 10_000); // returns at once once closed
  });

  it('long-polls: returns at once when something newer than `after` waits, else at the bound', async () => {
    const { broker, e } = setup();
    broker.list();
    const first = decideHeld(e, get('/1'));
    await broker.wait(0, 10_000);
    const cursor = broker.cursor();
    const t0 = Date.now();
    await broker.wait(cursor, 30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20);
    const ac = new AbortController();
    const aborted = broker.wait(cursor, 10_000, ac.signal);
    ac.abort();
    await aborted;
    broker.close();
    await first;
  });
});

describe('approval targets', () => {
  it.each([
    [
      dnsRequestEvent(origin, { qname: 'x.test', qtype: 'TXT', qclass: 'IN', transport: 'udp' }),
      {
        protocol: 'dns',
        target: 'x.test TXT',
        condition: 'dns.request.qname == "x.test" && dns.request.qtype == "TXT"',
      },
    ],
    [
      mcpRequestEvent(origin, {
        method: 'tools/call',
        server_id: 'fs',
        tool_name: 'write',
        arguments: { path: '/etc/"x"' },
        request_id: '1',
      }),
      {
        protocol: 'mcp',
        target: 'fs tools/call write',
        detail: '{"path":"/etc/\\"x\\""}',
        condition:
          'mcp.request.server_id == "fs" && mcp.request.method == "tools/call" && mcp.request.tool_name == "write"',
      },
    ],
    [
      processExecEvent(origin, {
        executable: 'rm',
        argv: ['rm', '-rf', 'a b'],
        command: "rm -rf 'a b'",
        cwd: '/w',
        command_class: 'binary',
      }),
      {
        protocol: 'exec',
        target: "rm -rf 'a b'",
        detail: 'cwd /w',
        condition: 'process.activity.command == "rm -rf \'a b\'"',
      },
    ],
    [
      httpRequestEvent(origin, {
        method: 'POST',
        scheme: 'http',
        host: 'h.test',
        port: 8080,
        path: '/p',
      }),
      { protocol: 'http', target: 'POST http://h.test:8080/p' },
    ],
  ])('describes %#', (event, want) => {
    expect(approvalTarget(event)).toMatchObject(want);
  });

  it('remembered conditions compile and match their own event (quotes and backslashes escaped)', () => {
    const odd = httpRequestEvent(origin, {
      method: 'GET',
      scheme: 'https',
      host: 'api.test',
      port: 443,
      path: '/a"b\\c',
    });
    const t = approvalTarget(odd)!;
    const { engine } = engineWith([{ id: 'r', condition: t.condition, action: 'allow' }], 'block');
    expect(engine.decide(odd).action).toBe('allow');
    expect(engine.decide(get('/a"b')).action).toBe('block');
  });
});

describe('the approvals: config section', () => {
  it('has defaults, takes values, and refuses unknown keys and bad numbers', () => {
    expect(parseConfig({}).approvals).toEqual({
      max_pending: 64,
      timeout_ms: 30_000,
      wait_without_approver: false,
    });
    expect(
      parseConfig({ approvals: { max_pending: 3, timeout_ms: 500, wait_without_approver: true } })
        .approvals,
    ).toEqual({ max_pending: 3, timeout_ms: 500, wait_without_approver: true });
    expect(() => parseConfig({ approvals: { timeout: 5 } })).toThrow(
      /approvals\.timeout: unknown key/,
    );
    expect(() => parseConfig({ approvals: { timeout_ms: 0 } })).toThrow(/approvals\.timeout_ms/);
    expect(() => parseConfig({ approvals: { max_pending: -1 } })).toThrow(/approvals\.max_pending/);
  });
});

describe('the CLI prompt', () => {
  it.each([
    ['a', { decision: 'allow', remember: 'none' }],
    ['A', { decision: 'allow', remember: 'session' }],
    ['d', { decision: 'deny', remember: 'none' }],
    ['D', { decision: 'deny', remember: 'session' }],
    ['s', 'skip'],
    ['?', null],
  ])('reads %s', (text, want) => {
    expect(parseAnswer(text)).toEqual(want);
  });

  it('shows guest-controlled text with control and bidi characters escaped', () => {
    const text = describeApproval({
      id: 'i',
      seq: 1,
      protocol: 'exec',
      target: 'echo ok\u001b[2K\rGET https://safe.test/',
      detail: '',
      rule: 'r',
      reason: 'why',
      process_name: 'agent\u202e',
      age_ms: 0,
      timeout_ms: 1000,
    });
    expect(text).toContain('echo ok\\u{1b}[2K\\u{d}GET https://safe.test/');
    expect(text).toContain('agent\\u{202e}');
    for (const c of ['\u001b', '\r', '\u202e']) expect(text.includes(c)).toBe(false);
  });
});
