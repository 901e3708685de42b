/**
 * The closure compiler must agree with cel-js: for every expression and every fixture event that
 * carries the expression's roots, both evaluators give the same value, or both fail the same way
 * (absent vs other error).
 */
import { describe, expect, it } from 'vitest';
import { EVENT_ROOTS } from '../../src/policy/fields.js';
import { Absent, celContext, CEL_ENV } from '../../src/policy/celenv.js';
import { compileCondition } from '../../src/policy/compile.js';
import { project } from '../../src/policy/projection.js';
import { fixture, FULL_POLICY, REFERENCE_EXPRESSIONS } from './helpers.js';

const EVENTS = [
  'reference-http.json',
  'http-no-auth.json',
  'http-response.json',
  'dns-request.json',
  'mcp-request.json',
  'mcp-response.json',
  'process-exec.json',
].map((f) => [f, fixture(f)] as const);

const EXPRESSIONS = [
  ...REFERENCE_EXPRESSIONS,
  FULL_POLICY,
  'http.request.port == 443',
  'http.request.port != 443 || http.request.scheme == "https"',
  'http.request.method in ["GET", "HEAD"]',
  'http.request.headers["content-type"] == "text/plain"',
  'http.request.headers["x-missing"] == "a"',
  '"authorization" in http.request.headers',
  'http.request.body.size > 10 && http.request.body.size <= 4096',
  'http.request.body.text.matches("^token=[a-z]+$")',
  'http.request.host.lowerAscii().endsWith(".com")',
  'http.request.query.contains("source=") && !http.request.path.endsWith("/")',
  'http.request.header("accept").exists()',
  'http.request.header("content-type").value() == "text/plain"',
  'http.response.status >= 200 && http.response.status < 300',
  'http.response.header("set-cookie").exists() && http.request.host.startsWith("api.")',
  'http.response.body.text.contains("items")',
  'dns.request.qname.endsWith("googleapis.com") && dns.request.qtype == "A"',
  'dns.request.qtype in ["TXT", "ANY"]',
  'size(dns.request.qname) > 5',
  'mcp.request.tool_name == "read_file" && mcp.request.arguments.path.startsWith("/etc")',
  'mcp.request.arguments.limit > 5',
  'mcp.request.arguments.limit == 10',
  'mcp.request.arguments.flags.exists(f, f == "follow")',
  'mcp.request.arguments.flags.all(f, f.startsWith("f"))',
  'mcp.request.arguments.opts.binary == false',
  'has(mcp.request.arguments.path) && !has(mcp.request.arguments.missing)',
  'mcp.request.arguments.missing == "x" || mcp.request.server_id == "files"',
  'mcp.request.arguments.missing == "x" && mcp.request.server_id == "nope"',
  'mcp.request.arguments.path > 5',
  'size(mcp.request.arguments) == 4',
  'mcp.response.is_error || mcp.response.content_text.contains("root:")',
  'process.activity.command_class == "shell" && process.activity.argv.exists(a, a.contains("| sh"))',
  'process.activity.argv[0] == "/bin/sh"',
  'process.activity.argv[7] == "x"',
  'size(process.activity.argv) == 3',
  'common.process_name in ["curl", "claude", "agent"]',
  'common.timestamp_ms > 0 && common.event_type.startsWith(common.family)',
  'common.session_id == "fixture" ? common.family != "dns" : false',
] as const;

type Outcome = { value: unknown } | { error: 'absent' | 'fault' };

function classify(err: unknown): Outcome {
  const e = err as { code?: string; cause?: unknown };
  return {
    error:
      err instanceof Absent || e.code === 'no_such_key' || e.cause instanceof Absent
        ? 'absent'
        : 'fault',
  };
}

describe('closure compiler vs cel-js', () => {
  const cases = EXPRESSIONS.flatMap((text) => EVENTS.map(([name, e]) => [text, name, e] as const));
  it.each(cases)('%s on %s', (text, _name, e) => {
    const c = compileCondition(text);
    expect(c.ok, JSON.stringify(!c.ok && c.issues)).toBe(true);
    if (!c.ok) return;
    expect(c.condition.engine).toBe('closure');
    const carried = EVENT_ROOTS[e.common.event_type];
    if (!c.condition.roots.every((r) => carried.includes(r))) return; // never run there (tested elsewhere)
    let ours: Outcome;
    try {
      ours = { value: c.condition.program(project(e)) };
    } catch (err) {
      ours = classify(err);
    }
    let theirs: Outcome;
    try {
      theirs = { value: CEL_ENV.parse(text)(celContext(e)) };
    } catch (err) {
      theirs = classify(err);
    }
    expect(ours).toEqual(theirs);
  });
});
