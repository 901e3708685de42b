import { describe, expect, it } from 'vitest';
import { loadPackTexts } from '../../src/detection/install.js';
import { validatePackText, validatePackValue } from '../../src/detection/validate.js';
import { packWith, readRepo } from './helpers.js';

const OK_PRED = { field: 'http.request.host', equals: ['a.com'] };

function issuesOf(text: string) {
  const r = validatePackText(text, { file: 'p.yaml' });
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.issues;
}

describe('validation reports every problem with its path and line, never throws', () => {
  it('accepts the reference pack', () => {
    expect(validatePackText(readRepo('detection-ir/google-secret-egress.yaml')).ok).toBe(true);
  });

  it.each([
    [
      'unknown key in a predicate',
      { field: 'http.request.host', equals: ['a'], nocase: true },
      'rules[0].match.nocase',
      /unknown key "nocase"/,
    ],
    [
      'unknown field for the event type',
      { field: 'http.request.hots', equals: ['a'] },
      'rules[0].match.field',
      /unknown field "http.request.hots".*did you mean "http.request.host"/,
    ],
    [
      'field of another event type',
      { field: 'dns.request.qname', equals: ['a'] },
      'rules[0].match.field',
      /not carried by http.request/,
    ],
    [
      'empty value list',
      { field: 'http.request.host', contains: [] },
      'rules[0].match.contains',
      /empty value list/,
    ],
    [
      'bad regex',
      { field: 'http.request.path', matches: ['(unclosed'] },
      'rules[0].match.matches[0]',
      /not a valid RE2 pattern: missing \)/,
    ],
    [
      'a regex RE2 does not have',
      { field: 'http.request.path', matches: ['^(a)\\1$'] },
      'rules[0].match.matches[0]',
      /back-references .* not supported.*at offset 4/,
    ],
    [
      'bad cidr',
      { field: 'http.request.host', cidr: ['10.0.0.0/40'] },
      'rules[0].match.cidr[0]',
      /prefix/,
    ],
    [
      'two operators',
      { field: 'http.request.host', equals: ['a'], contains: ['b'] },
      'rules[0].match',
      /exactly one operator/,
    ],
    ['no operator', { field: 'http.request.host' }, 'rules[0].match', /needs one operator/],
    [
      'string op on an int',
      { field: 'http.request.port', contains: ['44'] },
      'rules[0].match.contains',
      /applies to string fields/,
    ],
    [
      'wrong value type',
      { field: 'http.request.port', equals: ['443'] },
      'rules[0].match.equals[0]',
      /integers/,
    ],
    [
      'case_insensitive on cidr',
      { field: 'http.request.host', cidr: ['10.0.0.0/8'], case_insensitive: true },
      'rules[0].match.case_insensitive',
      /applies to string operators/,
    ],
    [
      'a map field without a key',
      { field: 'http.request.headers', exists: true },
      'rules[0].match.field',
      /name one header/,
    ],
    ['empty all', { all: [] }, 'rules[0].match.all', /non-empty list/],
    [
      'mixed combinators',
      { all: [OK_PRED], any: [OK_PRED] },
      'rules[0].match',
      /exactly one of all, any, not/,
    ],
  ])('%s', (_name, match, path, message) => {
    const issues = issuesOf(packWith(match));
    expect(issues).toContainEqual(
      expect.objectContaining({ file: 'p.yaml', path, message: expect.stringMatching(message) }),
    );
    expect(issues.every((i) => typeof i.line === 'number')).toBe(true);
  });

  it('names the line of an unknown key', () => {
    const text = [
      'schema: celgate.detection-ir/v1',
      'id: p',
      'version: "1"',
      'status: active',
      'owner: me',
      'colour: blue',
      'rules: []',
    ].join('\n');
    const issues = issuesOf(text);
    expect(issues).toContainEqual(
      expect.objectContaining({
        path: 'colour',
        line: 6,
        message: expect.stringMatching(/unknown key "colour"/),
      }),
    );
    expect(issues).toContainEqual(
      expect.objectContaining({ path: 'rules', message: expect.stringMatching(/non-empty/) }),
    );
  });

  it('reports duplicate rule ids within a pack and across packs', () => {
    const twice = packWith(OK_PRED).replace(
      'rules:\n',
      'rules:\n  - id: r1\n    title: again\n    event_type: http.request\n    severity: low\n    confidence: 1\n    match: { field: http.request.host, equals: [b] }\n',
    );
    expect(issuesOf(twice)).toContainEqual(
      expect.objectContaining({
        path: 'rules[1].id',
        message: expect.stringMatching(/duplicate rule id "r1"/),
      }),
    );
    const other = packWith(OK_PRED).replace('id: test-pack', 'id: other-pack');
    const set = loadPackTexts([
      { text: packWith(OK_PRED), file: 'a.yaml' },
      { text: other, file: 'b.yaml' },
    ]);
    expect(set.ok).toBe(false);
    if (!set.ok)
      expect(set.issues).toContainEqual(
        expect.objectContaining({
          file: 'b.yaml',
          message: expect.stringMatching(/duplicate rule id "r1" \(also in pack "test-pack"\)/),
        }),
      );
  });

  it('refuses a revoked pack', () => {
    const issues = issuesOf(packWith(OK_PRED).replace('status: active', 'status: revoked'));
    expect(issues).toContainEqual(
      expect.objectContaining({ path: 'status', message: expect.stringMatching(/revoked/) }),
    );
  });

  it('checks the envelope: schema, id syntax, severity, confidence, action', () => {
    const bad = packWith(OK_PRED, {
      severity: 'severe',
      confidence: 2,
      action: 'allow',
      id: 'Bad Id',
    }).replace('celgate.detection-ir/v1', 'v0');
    const paths = issuesOf(bad).map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'schema',
        'rules[0].id',
        'rules[0].severity',
        'rules[0].confidence',
        'rules[0].action',
      ]),
    );
  });

  it('reports YAML syntax errors with a line instead of throwing', () => {
    const issues = issuesOf('schema: x\nrules: [\n  - a: b: c\n');
    expect(issues[0]!.message).toMatch(/^YAML/);
    expect(issues[0]!.line).toBeGreaterThan(0);
  });

  it.each([null, 42, 'text', [], { rules: 'x' }])('never throws on hostile value %j', (value) => {
    expect(validatePackValue(value).ok).toBe(false);
  });

  it('bounds match tree depth', () => {
    let node: unknown = OK_PRED;
    for (let i = 0; i < 40; i++) node = { not: node };
    expect(issuesOf(packWith(node))).toContainEqual(
      expect.objectContaining({ message: expect.stringMatching(/nests at most/) }),
    );
  });
});
