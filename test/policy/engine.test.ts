import { describe, expect, it } from 'vitest';
import { engineWith, event, fixture } from './helpers.js';

const reference = fixture('reference-http.json');
const mcp = fixture('mcp-request.json');
const exec = fixture('process-exec.json');

describe('precedence', () => {
  it('lets the lowest priority number decide', () => {
    const { engine } = engineWith([
      {
        id: 'late-allow',
        condition: 'http.request.host == "googleapis.com"',
        action: 'allow',
        priority: 10,
      },
      {
        id: 'early-block',
        condition: 'http.request.host == "googleapis.com"',
        action: 'block',
        priority: -10,
      },
    ]);
    const d = engine.decide(reference);
    expect(d).toMatchObject({ action: 'block', rule_id: 'early-block', mode: 'enforce' });
    expect(d.reason).toBe('Blocked by rule "early-block": reason of early-block');
    expect(d.matches.map((m) => [m.rule_id, m.decisive])).toEqual([
      ['early-block', true],
      ['late-allow', false],
    ]);
  });

  it('breaks priority ties by rule id', () => {
    const { engine } = engineWith([
      { id: 'b-block', condition: 'http.request.method == "POST"', action: 'block', priority: 5 },
      { id: 'a-allow', condition: 'http.request.method == "POST"', action: 'allow', priority: 5 },
    ]);
    const d = engine.decide(reference);
    expect(d).toMatchObject({ action: 'allow', rule_id: 'a-allow' });
    expect(d.reason).toBe('Allowed by rule "a-allow": reason of a-allow');
  });

  it('applies the default action with a reason when nothing matches', () => {
    const block = engineWith(
      [{ id: 'x', condition: 'http.request.host == "other"' }],
      'block',
    ).engine.decide(reference);
    expect(block).toMatchObject({ action: 'block', rule_id: null, mode: 'default' });
    expect(block.reason).toContain('default action is block');
    const allow = engineWith([], 'allow').engine.decide(reference);
    expect(allow).toMatchObject({ action: 'allow', rule_id: null, mode: 'default', matches: [] });
  });

  it('runs rules that read only common on every event type', () => {
    const { engine } = engineWith([
      { id: 'by-process', condition: 'common.process_name == "claude"' },
    ]);
    expect(engine.decide(mcp).rule_id).toBe('by-process');
    expect(engine.decide(reference).rule_id).toBe(null);
  });
});

describe('shadow rules', () => {
  it('record a would-block match without changing the outcome', () => {
    const { engine, registry } = engineWith([
      { id: 'shadow-block', condition: 'http.request.host.contains("google")', mode: 'shadow' },
    ]);
    const d = engine.decide(reference);
    expect(d).toMatchObject({ action: 'allow', rule_id: null, mode: 'default' });
    expect(d.matches).toEqual([
      expect.objectContaining({
        rule_id: 'shadow-block',
        mode: 'shadow',
        action: 'block',
        decisive: false,
      }),
    ]);
    expect(registry.get('shadow-block')!.counters.matches).toBe(1);
  });

  it('do not fail the decision closed when they throw', () => {
    const { engine } = engineWith([
      { id: 'broken-shadow', condition: 'process.activity.argv[9] == "x"', mode: 'shadow' },
    ]);
    const d = engine.decide(exec);
    expect(d.action).toBe('allow');
    expect(d.errors).toEqual([expect.objectContaining({ rule_id: 'broken-shadow' })]);
  });
});

describe('ask', () => {
  it('blocks when no approver is configured and says so', () => {
    const { engine } = engineWith([
      {
        id: 'ask-upload',
        condition: 'http.request.method == "POST"',
        action: 'ask',
        reason: 'uploads need a human',
      },
    ]);
    const d = engine.decide(reference);
    expect(d).toMatchObject({ action: 'block', rule_id: 'ask-upload', mode: 'enforce' });
    expect(d.reason).toBe(
      'Rule "ask-upload" requires approval (uploads need a human), and no approver is configured, so this is blocked.',
    );
  });
});

describe('fail closed', () => {
  it('refuses when a decisive rule throws before any decision', () => {
    const { engine, registry } = engineWith([
      { id: 'argv-index', condition: 'process.activity.argv[9] == "sh"', priority: 0 },
      {
        id: 'allow-all-exec',
        condition: 'process.activity.executable != ""',
        action: 'allow',
        priority: 10,
      },
    ]);
    const d = engine.decide(exec);
    expect(d).toMatchObject({ action: 'error', rule_id: 'argv-index', mode: 'fail_closed' });
    expect(d.reason).toContain('failed to evaluate');
    expect(d.reason).toContain('fail closed');
    expect(d.errors[0]).toMatchObject({ rule_id: 'argv-index' });
    expect(registry.get('argv-index')!.counters.errors).toBe(1);
  });

  it('refuses when a rule compares values of the wrong type at run time', () => {
    const { engine } = engineWith([
      { id: 'limit-order', condition: 'mcp.request.arguments.path > 5' },
    ]);
    expect(engine.decide(mcp).action).toBe('error');
  });

  it('refuses when a cel-js-evaluated rule throws', () => {
    const { engine } = engineWith([
      { id: 'div', condition: 'mcp.request.arguments.limit / 0 == 1' },
    ]);
    expect(engine.decide(mcp)).toMatchObject({ action: 'error', rule_id: 'div' });
  });

  it('ignores an error in a rule that comes after the decision', () => {
    const { engine } = engineWith([
      { id: 'a-block-all', condition: 'process.activity.command_class == "shell"', priority: -5 },
      { id: 'z-broken', condition: 'process.activity.argv[9] == "sh"', priority: 5 },
    ]);
    const d = engine.decide(exec);
    expect(d).toMatchObject({ action: 'block', rule_id: 'a-block-all' });
    expect(d.errors).toHaveLength(1);
  });
});

describe('findings', () => {
  it('reports a finding for an enforcement rule with a severity', () => {
    const { engine } = engineWith([
      {
        id: 'exfil',
        condition: 'http.request.body.text.contains("secret")',
        severity: 'high',
        tags: ['attack.exfiltration'],
        description: 'secret in body',
      },
    ]);
    const d = engine.decide(reference);
    expect(d.findings).toEqual([
      {
        event_id: 'evt-reference-0001',
        rule_id: 'exfil',
        pack_id: 'runtime',
        severity: 'high',
        confidence: 1,
        title: 'secret in body',
        tags: ['attack.exfiltration'],
        matched_fields: ['http.request.body.text'],
      },
    ]);
  });
});

describe('absent is false', () => {
  const missing = event({
    common: { event_type: 'mcp.request' },
    mcp: { request: { tool_name: 't', arguments: {} } },
  });
  const cases = [
    'mcp.request.arguments.path == "/etc"',
    'mcp.request.arguments.path != "/etc"',
    'mcp.request.arguments.path > "a"',
    'mcp.request.arguments.path < "a"',
    'mcp.request.arguments.path.startsWith("/")',
    'mcp.request.arguments.path.contains("x")',
    'mcp.request.arguments.path.endsWith("x")',
    'mcp.request.arguments.path.matches("^/")',
    '!mcp.request.arguments.path.startsWith("/")',
    '!(mcp.request.arguments.path == "x")',
    'mcp.request.arguments.path in ["a", "b"]',
    'mcp.request.arguments["path"] == "a"',
    'size(mcp.request.arguments.list) == 0',
    'mcp.request.arguments.list.exists(x, x == "a")',
    'mcp.request.arguments.nested.deeper == 1',
    'mcp.request.arguments.path == "x" ? true : true',
    'mcp.request.arguments.path == "x" || false',
    'false || mcp.request.arguments.path != "x"',
    'true && mcp.request.arguments.path != "x"',
    'mcp.request.arguments.count + 1 == 2',
    'http.request.host == "x"',
    'http.request.header("x").value() == ""',
    '!http.request.header("x").value().startsWith("a")',
    'dns.request.qname != "x" || mcp.request.arguments.path != "y"',
  ];
  it.each(cases)('%s is false on an event without the field', (text) => {
    const { engine } = engineWith([{ id: 'r', condition: text }]);
    const d = engine.decide(missing);
    expect(d).toMatchObject({ action: 'allow', mode: 'default', errors: [], matches: [] });
  });

  it('still lets a true branch of || match when the other side is absent', () => {
    const { engine } = engineWith([
      { id: 'r', condition: 'mcp.request.arguments.path == "x" || mcp.request.tool_name == "t"' },
    ]);
    expect(engine.decide(missing).rule_id).toBe('r');
  });

  it('has() answers presence without an error', () => {
    const { engine } = engineWith([{ id: 'r', condition: '!has(mcp.request.arguments.path)' }]);
    expect(engine.decide(missing).rule_id).toBe('r');
  });
});

describe('responses under a deny-by-default profile', () => {
  it('keep the request allow when no rule matches the response', () => {
    const { engine } = engineWith(
      [{ id: 'allow-api', condition: 'http.request.host == "api.example.com"', action: 'allow' }],
      'block',
    );
    const d = engine.decide(fixture('http-response.json'));
    expect(d).toMatchObject({ action: 'allow', rule_id: null, mode: 'default' });
    expect(d.reason).toBe('No rule matched the response; the request it answers was allowed.');
    expect(engine.decide(fixture('mcp-response.json')).action).toBe('allow');
  });

  it('are still refused by a rule that matches them', () => {
    const { engine } = engineWith(
      [{ id: 'no-cookies', condition: 'http.response.header("set-cookie").exists()' }],
      'block',
    );
    expect(engine.decide(fixture('http-response.json'))).toMatchObject({
      action: 'block',
      rule_id: 'no-cookies',
    });
  });
});
