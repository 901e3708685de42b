/**
 * Reloads that cannot hurt: hostile or half-written pack files are refused (counted, logged, the
 * running rules kept) on SIGHUP, POST /v1/reload and a file-watch reload, and the gateway stays up;
 * editors' rename saves keep being followed.
 */
import { renameSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PACK_DEPTH, MAX_PACK_LINES, parsePack } from '../../src/policy/packs.js';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';

function pack(prefix: string): string {
  return stringify({
    id: 'p',
    version: '1',
    default_action: 'allow',
    rules: [
      {
        id: `${prefix}-block`,
        condition: 'http.request.host == "target.example"',
        action: 'block',
      },
    ],
  });
}

const BILLION_LAUGHS = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
id: p
version: "1"
default_action: allow
rules: []
`;
const deep = (n: number) =>
  `id: p\nversion: "1"\ndefault_action: allow\nrules: []\nx:\n${Array.from({ length: n }, (_, i) => `${'  '.repeat(i + 1)}k${i}:`).join('\n')} 1\n`;
const junk = (n: number) =>
  `id: p\nversion: "1"\ndefault_action: allow\nrules: []\n${Array.from({ length: n }, (_, i) => `junk${i}: ${i}`).join('\n')}\n`;

describe('parsePack never throws', () => {
  it.each([
    ['an alias bomb', BILLION_LAUGHS, /alias|invalid YAML|unknown key/i],
    [
      'a 2,500-deep block structure',
      deep(2500),
      new RegExp(`nested|deeper than ${MAX_PACK_DEPTH}`),
    ],
    [
      'more lines than the bound',
      junk(MAX_PACK_LINES),
      new RegExp(`more than ${MAX_PACK_LINES} lines`),
    ],
    [
      'a duplicate key',
      'id: p\nid: q\nversion: "1"\ndefault_action: allow\nrules: []\n',
      /duplicate key "id"/,
    ],
    [
      'a file cut after rules:',
      'id: p\nversion: "1"\ndefault_action: block\nrules:\n',
      /must have a rules list/,
    ],
    ['a pack without default_action', 'id: p\nversion: "1"\nrules: []\n', /default_action/],
  ])('refuses %s as an issue', (_name, text, message) => {
    let out: ReturnType<typeof parsePack> | undefined;
    expect(() => (out = parsePack(text, 'p.yaml'))).not.toThrow();
    expect(out!.ok).toBe(false);
    if (!out!.ok) expect(out!.issues.map((i) => i.message).join('; ')).toMatch(message);
  });

  it('accepts an explicitly empty pack', () => {
    expect(parsePack('id: p\nversion: "1"\ndefault_action: allow\nrules: []\n', 'p.yaml').ok).toBe(
      true,
    );
  });
});

describe('reloads in a running gateway', () => {
  let gw: RunningTestGateway;
  let dir: string;
  let file: string;
  const decide = async () =>
    (
      await gw.api('POST', '/v1/evaluate', {
        event: { event_type: 'http.request', http: { request: { host: 'target.example' } } },
        record: false,
      })
    ).json.decision.rule_id;
  const refused = async () => (await gw.api('GET', '/v1/stats')).json.reload.refused as number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'celgate-reload-safe-'));
    file = join(dir, 'p.yaml');
    writeFileSync(file, pack('a'));
    gw = await startGateway({ config: { rules: [file], watch_rules: true } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("follows two rename saves in a row (an editor's atomic save)", async () => {
    for (const prefix of ['b', 'c']) {
      const tmp = join(dir, `.p.yaml.${prefix}.swp`);
      writeFileSync(tmp, pack(prefix));
      renameSync(tmp, file);
      await expect.poll(decide, { timeout: 10_000 }).toBe(`${prefix}-block`);
    }
  });

  it.each([
    ['an alias bomb', BILLION_LAUGHS],
    ['a 2,500-deep block structure', deep(2500)],
    ['200,000 junk keys', junk(200_000)],
    ['a file cut after rules:', 'id: p\nversion: "1"\ndefault_action: allow\nrules:\n'],
  ])(
    'refuses %s on SIGHUP and POST /v1/reload, stays up, and keeps the running rules',
    async (_name, text) => {
      const before = await refused();
      writeFileSync(file, text);
      gw.kill('SIGHUP');
      await expect.poll(refused, { timeout: 10_000 }).toBeGreaterThan(before);
      const r = await gw.api('POST', '/v1/reload');
      expect(r.status).toBe(422);
      expect(r.json.error.code).toBe('E_RULE_INVALID');
      expect(await decide()).toBe('c-block');
      expect(gw.process.exitCode).toBeNull();
    },
  );

  it('takes a good pack again afterwards', async () => {
    writeFileSync(file, pack('d'));
    await expect.poll(decide, { timeout: 10_000 }).toBe('d-block');
  });
});
