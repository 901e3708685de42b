/**
 * Path functions for rules (`cleanPath()`, `underPath(dir)`): the same table through the closure
 * compiler and the cel-js fallback, the review's bypass on an MCP argument, and the lint advice.
 */
import { describe, expect, it } from 'vitest';
import { conditionAdvice } from '../../src/policy/advice.js';
import { compileCondition } from '../../src/policy/compile.js';
import { cleanPath, underPath } from '../../src/policy/paths.js';
import { project } from '../../src/policy/projection.js';
import { engineWith, event } from './helpers.js';

const call = (args: Record<string, unknown>) =>
  event({
    common: { event_type: 'mcp.request' },
    mcp: {
      request: { method: 'tools/call', server_id: 'fs', tool_name: 'read_file', arguments: args },
    },
  });

const CLEAN: readonly [string, string][] = [
  ['/tmp/x/../../../../etc/hostname', '/etc/hostname'],
  ['/etc//passwd', '/etc/passwd'],
  ['/./etc/./passwd/', '/etc/passwd'],
  ['/..', '/'],
  ['/', '/'],
  ['a//b/./c/..', 'a/b'],
  ['../../x', '../../x'],
  ['a/../..', '..'],
  ['', '.'],
  ['.', '.'],
  ['/etc/pass..wd', '/etc/pass..wd'],
  ['/a/.../b', '/a/.../b'],
];

const UNDER: readonly [string, string, boolean][] = [
  ['/etc', '/etc', true],
  ['/etc/passwd', '/etc', true],
  ['/etc/passwd', '/etc/', true],
  ['/tmp/x/../../../../etc/hostname', '/etc', true],
  ['/etcetera/x', '/etc', false],
  ['/tmp/etc/x', '/etc', false],
  ['etc/passwd', '/etc', false],
  ['/anything', '/', true],
  ['relative/x', '/', false],
  ['a/b', '.', true],
  ['../a', '.', false],
];

function evaluate(text: string, args: Record<string, unknown>): unknown {
  const c = compileCondition(text);
  if (!c.ok) throw new Error(JSON.stringify(c.issues));
  return c.condition.program(project(call(args)));
}

describe('cleanPath()', () => {
  it.each(CLEAN)('%j → %j in both evaluators', (input, expected) => {
    expect(cleanPath(input)).toBe(expected);
    expect(
      evaluate('mcp.request.arguments.p.cleanPath() == mcp.request.arguments.want', {
        p: input,
        want: expected,
      }),
    ).toBe(true);
    const fallback = compileCondition(
      '[mcp.request.arguments.p].exists_one(x, x.cleanPath() == mcp.request.arguments.want)',
    );
    expect(fallback.ok && fallback.condition.engine).toBe('cel-js');
    expect(
      evaluate(
        '[mcp.request.arguments.p].exists_one(x, x.cleanPath() == mcp.request.arguments.want)',
        { p: input, want: expected },
      ),
    ).toBe(true);
  });
});

describe('underPath(dir)', () => {
  it.each(UNDER)('%j under %j is %s in both evaluators', (p, dir, expected) => {
    expect(underPath(p, dir)).toBe(expected);
    expect(evaluate(`mcp.request.arguments.p.underPath(${JSON.stringify(dir)})`, { p })).toBe(
      expected,
    );
    expect(
      evaluate('mcp.request.arguments.p.underPath(mcp.request.arguments.d)', { p, d: dir }),
    ).toBe(expected);
    expect(
      evaluate(`[mcp.request.arguments.p].exists_one(x, x.underPath(${JSON.stringify(dir)}))`, {
        p,
      }),
    ).toBe(expected);
  });

  it('is type-checked: it needs a string and a string argument', () => {
    const c = compileCondition('mcp.request.server_id.underPath(5)');
    expect(c.ok).toBe(false);
  });
});

describe('the review bypass on an MCP argument', () => {
  it('a startsWith rule is passed by a traversal; underPath is not', () => {
    const { engine } = engineWith([
      { id: 'naive', condition: 'mcp.request.arguments.path.startsWith("/etc")' },
      { id: 'careful', condition: 'mcp.request.arguments.path.underPath("/etc")' },
    ]);
    const d = engine.decide(call({ path: '/tmp/x/../../../../etc/hostname' }));
    expect(d.action).toBe('block');
    expect(d.rule_id).toBe('careful');
    expect(d.matches.map((m) => m.rule_id)).toEqual(['careful']);
    expect(engine.decide(call({ path: '/tmp/etc-notes' })).action).toBe('allow');
  });
});

describe('lint advice', () => {
  it.each([
    ['mcp.request.arguments.path.startsWith("/etc")', 1],
    ['mcp.request.arguments["file"].startsWith("/etc")', 1],
    ['mcp.request.arguments.target.startsWith("x") || process.activity.cwd.startsWith("/root")', 2],
    ['mcp.request.arguments.anything.startsWith("/var")', 1],
    ['mcp.request.arguments.path.underPath("/etc")', 0],
    ['mcp.request.arguments.path.cleanPath().startsWith("/etc")', 0],
    ['mcp.request.arguments.name.startsWith("a")', 0],
    ['http.request.path.startsWith("/admin")', 0],
  ])('%s → %i warning(s)', (text, n) => {
    const advice = conditionAdvice(text);
    expect(advice).toHaveLength(n);
    for (const a of advice) expect(a.message).toMatch(/not cleaned.*underPath/);
  });
});

describe('celgate rules lint', () => {
  it('prints the advice as a warning with the rule and position, and still passes the pack', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const file = join(mkdtempSync(join(tmpdir(), 'lint-')), 'p.yaml');
    writeFileSync(
      file,
      'id: p\nversion: "1"\ndefault_action: allow\nrules:\n  - id: no-etc\n    action: block\n    condition: mcp.request.arguments.path.startsWith("/etc")\n',
    );
    const main = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
    const out = execFileSync(process.execPath, [main, 'rules', 'lint', file], { encoding: 'utf8' });
    expect(out).toContain(`ok  ${file}: pack p@1, 1 rules`);
    expect(out).toMatch(
      /warning: .*p\.yaml: rule no-etc: mcp\.request\.arguments\.path\.startsWith\(…\) compares a path that was not cleaned.*underPath\("\/etc"\).*\(condition line 1, column 1\)/,
    );
  });
});
