import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadPackFiles, parsePack } from '../../src/policy/packs.js';
import { parseCaseFile, runCases } from '../../src/policy/pack-tests.js';

const header = `id: test-pack\nversion: "1"\ndefault_action: allow\nrules:\n`;
const rule = (lines: string) =>
  `${header}  - id: r1\n    condition: http.request.host == "x"\n    action: block\n${lines}`;

describe('pack loading', () => {
  it('accepts a valid pack', () => {
    const v = parsePack(rule('    priority: 10\n    reason: because\n'), 'ok.yaml');
    expect(v.ok).toBe(true);
    if (v.ok)
      expect(v.value.pack.rules[0]).toMatchObject({
        id: 'r1',
        priority: 10,
        mode: 'enforce',
        enabled: true,
      });
  });

  it.each([
    ['bad YAML', `${header}  - id: r1\n    id: r2\n    condition: x\n`, 6, 'invalid YAML'],
    [
      'an unknown key',
      rule('    priorty: 3\n'),
      8,
      'unknown key "priorty"; did you mean "priority"?',
    ],
    [
      'a bad id',
      `${header}  - id: Bad_Id\n    condition: http.request.host == "x"\n    action: block\n`,
      5,
      'must match',
    ],
    ['a priority out of range', rule('    priority: 5000\n'), 8, 'out of range'],
    [
      'a condition that does not compile',
      `${header}  - id: r1\n    action: block\n    condition: http.request.hots == "x"\n`,
      7,
      'did you mean "http.request.host"',
    ],
    [
      'a duplicate id',
      `${rule('')}  - id: r1\n    condition: http.request.host == "y"\n    action: allow\n`,
      8,
      'duplicate rule id "r1"',
    ],
    [
      'an unknown action',
      rule('').replace('action: block', 'action: deny'),
      7,
      'action must be allow, block or ask',
    ],
    [
      'a revoked pack',
      rule('').replace('version: "1"', 'version: "1"\nstatus: revoked'),
      3,
      'revoked',
    ],
  ])('rejects %s with file, line and reason', (_name, text, line, message) => {
    const v = parsePack(text, 'pack.yaml');
    expect(v.ok).toBe(false);
    if (v.ok) return;
    const issue = v.issues.find((i) => i.message.includes(message));
    expect(issue, JSON.stringify(v.issues)).toBeDefined();
    expect(issue).toMatchObject({ file: 'pack.yaml', line });
  });

  it('rejects the whole set when one pack of several is bad', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-packs-'));
    writeFileSync(join(dir, 'a.yaml'), rule(''));
    writeFileSync(
      join(dir, 'b.yaml'),
      rule('').replace('test-pack', 'other-pack').replace('id: r1', 'id: r2').replace('"x"', '1'),
    );
    const v = loadPackFiles([dir]);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.issues[0]).toMatchObject({ file: join(dir, 'b.yaml') });
  });

  it('refuses the same rule id in two packs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-packs-'));
    writeFileSync(join(dir, 'a.yaml'), rule(''));
    writeFileSync(join(dir, 'b.yaml'), rule('').replace('test-pack', 'other-pack'));
    const v = loadPackFiles([dir]);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.issues[0]!.message).toContain('also defined in pack "test-pack"');
  });

  it('takes the most restrictive default action across packs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-packs-'));
    writeFileSync(join(dir, 'a.yaml'), rule(''));
    writeFileSync(join(dir, 'b.yaml'), `id: b\nversion: "1"\ndefault_action: block\nrules: []\n`);
    const v = loadPackFiles([dir]);
    expect(v.ok && v.value.defaultAction).toBe('block');
  });
});

describe('the shipped presets', () => {
  it.each(['balanced', 'locked'])('%s passes its own cases', (name) => {
    const root = new URL('../../rules/', import.meta.url);
    const cases = parseCaseFile(
      readFileSync(new URL(`${name}.test.yaml`, root), 'utf8'),
      `${name}.test.yaml`,
    );
    expect(cases.ok).toBe(true);
    const set = loadPackFiles([new URL(`${name}.yaml`, root).pathname]);
    expect(set.ok).toBe(true);
    if (!cases.ok || !set.ok) return;
    expect(cases.value.cases.length).toBeGreaterThan(5);
    const results = runCases(set.value, cases.value.cases);
    expect(results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.message}`)).toEqual([]);
  });

  it('compiles every preset rule to closures (no interpreter on the request path)', () => {
    const set = loadPackFiles([new URL('../../rules/', import.meta.url).pathname]);
    expect(set.ok).toBe(true);
    if (set.ok)
      for (const c of set.value.compiled.values()) expect(c.engine, c.text).toBe('closure');
  });
});
