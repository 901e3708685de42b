import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { fastYaml } from '../../src/detection/fast-yaml.js';
import { ROOT } from './helpers.js';

function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory()
      ? yamlFiles(join(dir, d.name))
      : /\.ya?ml$/.test(d.name)
        ? [join(dir, d.name)]
        : [],
  );
}

/** The contract: when the fast parser answers, it answers exactly what `yaml` does. */
function agrees(text: string): boolean {
  const fast = fastYaml(text);
  if (fast === undefined) return true;
  let full: unknown;
  try {
    full = parse(text, { uniqueKeys: true });
  } catch {
    return false; // the fast parser accepted something yaml rejects
  }
  expect(fast.value).toEqual(full);
  return true;
}

describe('fast YAML subset parser', () => {
  const files = [
    ...yamlFiles('detection-ir'),
    ...yamlFiles('test/fixtures/detection'),
    ...yamlFiles('test/fixtures/sigma'),
    ...yamlFiles('rules'),
  ];

  it.each(files)('agrees with yaml on %s', (file) => {
    expect(agrees(readFileSync(join(ROOT, file), 'utf8'))).toBe(true);
  });

  it('handles the shipped packs itself (the fast path is actually taken)', () => {
    for (const f of [
      'detection-ir/google-secret-egress.yaml',
      'test/fixtures/detection/hundred-rules.ir.yaml',
    ]) {
      expect(fastYaml(readFileSync(join(ROOT, f), 'utf8'))).toBeDefined();
    }
  });

  it.each([
    'a: &x 1\nb: *x',
    'a: |\n  text\n',
    'a: >-\n  folded\n',
    '---\na: 1',
    'a: !tag x',
    'a: b\n  continued',
    'a: "multi\n  line"',
    'a: 1\na: 2',
    '? complex\n: key',
    'a: 0x1F',
    'a: .inf',
    'a:\tb',
    'a: 99999999999999999999',
  ])('falls back on %j', (text) => {
    expect(fastYaml(text)).toBeUndefined();
  });

  it.each([
    [
      "a: 1\nb: -2.5\nc: true\nd: ~\ne: null\nf: \"x\\ny\"\ng: 'it''s'",
      { a: 1, b: -2.5, c: true, d: null, e: null, f: 'x\ny', g: "it's" },
    ],
    [
      'list:\n- a\n- b # comment\n-   c: 1\n    d: [x, "y", {z: 1}]',
      { list: ['a', 'b', { c: 1, d: ['x', 'y', { z: 1 }] }] },
    ],
    ['k: v#not-a-comment\nurl: http://x/y?a=1', { k: 'v#not-a-comment', url: 'http://x/y?a=1' }],
    ['- - a\n  - b\n- c', [['a', 'b'], 'c']],
    [
      'version: 1.0.0\ndate: 2023/05/18\nid: 0f2c1a7e-0001',
      { version: '1.0.0', date: '2023/05/18', id: '0f2c1a7e-0001' },
    ],
  ])('parses %j', (text, value) => {
    expect(fastYaml(text)?.value).toEqual(value);
    expect(agrees(text)).toBe(true);
  });

  it('agrees with yaml on generated documents', () => {
    const key = fc.string({ minLength: 1, maxLength: 12 });
    const scalar = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom(
        '1.0',
        'null',
        'true',
        '- x',
        'a: b',
        '#x',
        "'q'",
        '"d"',
        'x #y',
        ' lead',
        'trail ',
        '[x]',
        '{y}',
        '*a',
        '&b',
        '!t',
        '%p',
        '@q',
        '|',
        '>',
      ),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        scalar,
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(key, tie('node'), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(
        fc.dictionary(key, value, { minKeys: 1, maxKeys: 5 }),
        fc.boolean(),
        (doc, flowLevel) => {
          // Block style from yaml itself, or one JSON (= YAML flow) value per top-level key.
          const text = flowLevel
            ? Object.entries(doc)
                .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`)
                .join('\n')
            : stringify(doc);
          return agrees(text);
        },
      ),
      { numRuns: 500 },
    );
  });
});
