/**
 * The parts of secret substitution, without a gateway: the config section and its errors, reading
 * values, where a placeholder is found and substituted, the guard's decisions, response scrubbing
 * across chunk boundaries, MCP upstream headers and `celgate secrets list`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/gateway/config.js';
import { withMcpSecrets } from '../../src/gateway/services.js';
import type { Decision } from '../../src/events/decision.js';
import { httpRequestEvent } from '../../src/events/index.js';
import { SECRET_GUARD_RULE, secretHostMatches, withSecretGuard } from '../../src/policy/secrets.js';
import {
  parseSecretsConfig,
  readSecret,
  SecretStore,
  secretStatuses,
  type SecretSpec,
} from '../../src/transport/secrets.js';
import { MAIN_JS } from '../support/gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'celgate-secret-units-'));
const VALUE = 'sk-unit-0123456789abcdef';
const spec = (over: Partial<SecretSpec> = {}): SecretSpec => ({
  id: 'svc',
  env: 'UNIT_SVC',
  file: null,
  hosts: ['api.test'],
  in_body: false,
  allow_plain_http: false,
  ...over,
});
const store = (
  specs: SecretSpec[] = [spec()],
  env: NodeJS.ProcessEnv = { UNIT_SVC: VALUE, UNIT_BODY: 'body-value-xyz' },
) => SecretStore.load(specs, env);

describe('the secrets config section', () => {
  it.each([
    [{ secrets: {} }, /secrets: must be a list/],
    [{ secrets: [{ id: 'bad-id', env: 'X', hosts: ['a.test'] }] }, /secrets\[0\]\.id: must match/],
    [
      { secrets: [{ id: 'a', hosts: ['a.test'] }] },
      /secret "a" needs exactly one source: env or file/,
    ],
    [
      { secrets: [{ id: 'a', env: 'X', file: 'f', hosts: ['a.test'] }] },
      /needs exactly one source/,
    ],
    [
      { secrets: [{ id: 'a', env: 'X', hosts: [] }] },
      /secrets\[0\]\.hosts: must be a non-empty list/,
    ],
    [
      { secrets: [{ id: 'a', env: 'X', hosts: ['https://a.test/'] }] },
      /"https:\/\/a\.test\/" is not a host name/,
    ],
    [
      { secrets: [{ id: 'a', env: 'X', hosts: ['a.test'], inbody: true }] },
      /secrets\[0\]\.inbody: unknown key/,
    ],
    [
      { secrets: [{ id: 'a', env: 'X', hosts: ['a.test'], in_body: 'yes' }] },
      /secrets\[0\]\.in_body: must be true or false/,
    ],
    [
      {
        secrets: [
          { id: 'a', env: 'X', hosts: ['a.test'] },
          { id: 'a', env: 'Y', hosts: ['b.test'] },
        ],
      },
      /"a" is configured twice/,
    ],
  ])('%j is refused: %s', (raw, message) => {
    expect(() => parseConfig(raw, '/etc/celgate/gateway.yaml')).toThrow(message);
  });

  it('errors name the config file; file paths resolve against it; hosts are canonical', () => {
    expect(() => parseSecretsConfig({}, '/etc/celgate/gateway.yaml')).toThrow(
      /^\/etc\/celgate\/gateway\.yaml: secrets:/,
    );
    const [s] = parseSecretsConfig(
      [{ id: 'gh', file: 'keys/gh', hosts: ['API.GitHub.com.', '*.githubusercontent.com'] }],
      '/etc/celgate/gateway.yaml',
    );
    expect(s).toMatchObject({
      file: '/etc/celgate/keys/gh',
      hosts: ['api.github.com', '*.githubusercontent.com'],
      in_body: false,
      allow_plain_http: false,
    });
  });
});

describe('reading a value', () => {
  it('a missing variable or file is an error naming the secret, never a value', () => {
    expect(() => readSecret(spec(), {})).toThrow(
      'secret "svc": the environment variable UNIT_SVC is not set',
    );
    expect(() => readSecret(spec({ env: null, file: join(dir, 'absent') }))).toThrow(
      /secret "svc": cannot read .*absent: ENOENT/,
    );
    writeFileSync(join(dir, 'multi'), 'line1\nline2\n');
    expect(() => readSecret(spec({ env: null, file: join(dir, 'multi') }))).toThrow(/line break/);
  });

  it('a file value loses its final newline; the status shows a length, not the value', () => {
    writeFileSync(join(dir, 'tok'), `${VALUE}\n`);
    expect(readSecret(spec({ env: null, file: join(dir, 'tok') }))).toBe(VALUE);
    const [st] = secretStatuses([spec({ env: null, file: join(dir, 'tok') })]);
    expect(st).toMatchObject({ id: 'svc', loaded: true, length: VALUE.length, problem: null });
    expect(JSON.stringify(st)).not.toContain(VALUE);
  });

  it('a file that cannot be read on reload keeps the previous value', () => {
    const file = join(dir, 'reload');
    writeFileSync(file, 'first-value');
    const s = SecretStore.load([spec({ env: null, file })]);
    writeFileSync(file, 'second-value');
    expect(s.reload()).toEqual({ changed: ['svc'], problems: [] });
    expect(s.substitute('celgate-secret-svc', 'api.test', 'https')).toBe('second-value');
    writeFileSync(file, '');
    expect(s.reload().problems[0]).toMatch(/secret "svc": .* is empty/);
    expect(s.substitute('celgate-secret-svc', 'api.test', 'https')).toBe('second-value');
  });
});

describe('finding and substituting placeholders', () => {
  it('host patterns: exact names and *.suffix (not the suffix itself, not a look-alike)', () => {
    const p = ['api.test', '*.azure.test'];
    expect(secretHostMatches('api.test', p)).toBe(true);
    expect(secretHostMatches('x.azure.test', p)).toBe(true);
    expect(secretHostMatches('a.b.azure.test', p)).toBe(true);
    expect(secretHostMatches('azure.test', p)).toBe(false);
    expect(secretHostMatches('evilazure.test', p)).toBe(false);
    expect(secretHostMatches('api.test.evil', p)).toBe(false);
  });

  it('requestSecrets: header values, Basic credentials, the query; bodies only for in_body secrets', () => {
    const s = store([spec(), spec({ id: 'body', env: 'UNIT_BODY', in_body: true })]);
    const basic = `Basic ${Buffer.from('user:celgate-secret-svc').toString('base64')}`;
    expect(s.requestSecrets({ authorization: basic }, '')).toEqual(['svc']);
    expect(s.requestSecrets({ 'x-k': 'a celgate-secret-svc b' }, 'q=celgate-secret-other')).toEqual(
      ['other', 'svc'],
    );
    expect(s.requestSecrets({}, '', 'celgate-secret-svc and celgate-secret-body')).toEqual([
      'body',
    ]);
  });

  it('substitutes only for a host the secret belongs to, only over https unless allowed', () => {
    const s = store([spec(), spec({ id: 'plain', hosts: ['plain.test'], allow_plain_http: true })]);
    expect(s.substitute('Bearer celgate-secret-svc', 'api.test', 'https')).toBe(`Bearer ${VALUE}`);
    expect(s.substitute('Bearer celgate-secret-svc', 'other.test', 'https')).toBe(
      'Bearer celgate-secret-svc',
    );
    expect(s.substitute('Bearer celgate-secret-svc', 'api.test', 'http')).toBe(
      'Bearer celgate-secret-svc',
    );
    expect(s.substitute('celgate-secret-plain', 'plain.test', 'http')).toBe(VALUE);
    expect(s.substitute('celgate-secret-svc', 'api.test', 'https', true)).toBe(
      'celgate-secret-svc',
    );
  });

  it('substituteHeaders re-encodes Basic credentials and returns the same array when nothing changes', () => {
    const s = store();
    const raw = [
      'Authorization',
      `Basic ${Buffer.from('me:celgate-secret-svc').toString('base64')}`,
      'X-Key',
      'celgate-secret-svc',
    ];
    const out = s.substituteHeaders(raw, 'api.test', 'https');
    expect(Buffer.from(out[1]!.slice(6), 'base64').toString()).toBe(`me:${VALUE}`);
    expect(out[3]).toBe(VALUE);
    const plain = ['Accept', '*/*'];
    expect(s.substituteHeaders(plain, 'api.test', 'https')).toBe(plain);
  });
});

describe('scrubbing echoes', () => {
  it('replaces a value split at every possible chunk boundary', () => {
    const s = store();
    const text = `{"echo":"${VALUE}","again":"${VALUE}"}`;
    for (let cut = 0; cut <= text.length; cut++) {
      for (const cut2 of [cut, Math.min(text.length, cut + 3)]) {
        const sc = s.bodyScrubber();
        const b = Buffer.from(text);
        const out = Buffer.concat([
          sc.push(b.subarray(0, cut)),
          sc.push(b.subarray(cut, cut2)),
          sc.push(b.subarray(cut2)),
          sc.end(),
        ]).toString();
        expect(out).toBe('{"echo":"celgate-secret-svc","again":"celgate-secret-svc"}');
      }
    }
  });

  it('holds back only a tail that could begin a value (a streamed event is not delayed)', () => {
    const sc = store().bodyScrubber();
    expect(sc.push(Buffer.from('data: {"delta":"hi"}\n\n')).toString()).toBe(
      'data: {"delta":"hi"}\n\n',
    );
    expect(sc.push(Buffer.from('data: sk-un')).toString()).toBe('data: ');
    expect(sc.push(Buffer.from('related\n')).toString()).toBe('sk-unrelated\n');
    expect(sc.end().length).toBe(0);
  });

  it('scrub replaces values in header text', () => {
    expect(store().scrub(`Bearer ${VALUE}`)).toBe('Bearer celgate-secret-svc');
  });
});

describe('the guard', () => {
  const allow: Decision = {
    action: 'allow',
    rule_id: null,
    reason: 'default',
    mode: 'enforce',
    matches: [],
    findings: [],
    errors: [],
    generation: 3,
    eval_ns: 1,
  };
  const inner = { decide: () => allow, needsBody: () => false };
  const ev = (host: string, secrets: string[], scheme: 'http' | 'https' = 'https') =>
    httpRequestEvent(
      { session_id: 's', profile_id: 'p' },
      { method: 'GET', scheme, host, port: 443, path: '/', secrets },
    );
  const catalog = store([spec(), spec({ id: 'body', env: 'UNIT_BODY', in_body: true })]).catalog();
  const guard = withSecretGuard(inner, () => catalog);

  it('allows a secret headed for its host, and requests without secrets', () => {
    expect(guard.decide(ev('api.test', ['svc'])).action).toBe('allow');
    expect(guard.decide(ev('other.test', [])).action).toBe('allow');
  });

  it.each([
    [
      ['svc'],
      'other.test',
      'https' as const,
      'secret "svc" may not be sent to other.test; it belongs to api.test',
    ],
    [['nosuch'], 'api.test', 'https' as const, 'unknown secret "nosuch"'],
    [['svc'], 'api.test', 'http' as const, 'without TLS'],
  ])('blocks %j to %s over %s with a high finding', (ids, host, scheme, reason) => {
    const d = guard.decide(ev(host, ids, scheme));
    expect(d).toMatchObject({ action: 'block', rule_id: SECRET_GUARD_RULE, generation: 3 });
    expect(d.reason).toContain(reason);
    expect(d.findings[0]).toMatchObject({ rule_id: SECRET_GUARD_RULE, severity: 'high' });
    expect(d.matches.filter((m) => m.decisive)).toHaveLength(1);
  });

  it('asks for request bodies when a secret may be substituted in them', () => {
    expect(guard.needsBody!('http.request')).toBe(true);
    expect(guard.needsBody!('dns.request')).toBe(false);
    expect(withSecretGuard(inner, () => store().catalog()).needsBody!('http.request')).toBe(false);
  });
});

describe('MCP Streamable HTTP upstream headers', () => {
  const config = (url: string, value: string) =>
    parseConfig(
      { mcp: { servers: [{ id: 'gh', url, headers: { authorization: `Bearer ${value}` } }] } },
      '/etc/celgate/gateway.yaml',
    );

  it('substitutes a placeholder for the server the secret belongs to', () => {
    const out = withMcpSecrets(config('https://api.test/mcp', 'celgate-secret-svc'), store());
    expect(out.mcp.servers[0]!.headers).toEqual({ authorization: `Bearer ${VALUE}` });
  });

  it('stops start when a placeholder does not belong to the server', () => {
    expect(() =>
      withMcpSecrets(config('https://other.test/mcp', 'celgate-secret-svc'), store()),
    ).toThrow(/mcp\.servers\[gh\]\.headers\.authorization/);
  });
});

describe.skipIf(spawnSync('node', [MAIN_JS, '--version']).status !== 0)(
  'celgate secrets list',
  () => {
    it('shows ids, sources and hosts, exits 1 naming a secret that does not load, and never prints a value', () => {
      const cfg = join(dir, 'gateway.yaml');
      writeFileSync(
        cfg,
        `secrets:\n  - id: svc\n    env: UNIT_SVC\n    hosts: [api.test]\n  - id: gone\n    env: UNIT_GONE\n    hosts: ["*.gone.test"]\n    in_body: true\n`,
      );
      const r = spawnSync('node', [MAIN_JS, 'secrets', 'list', '-c', cfg], {
        env: { ...process.env, UNIT_SVC: VALUE },
        encoding: 'utf8',
      });
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(/^svc\s+env UNIT_SVC\s+→ api\.test\s+loaded \(24 characters\)$/m);
      expect(r.stdout).toMatch(
        /^gone\s+env UNIT_GONE\s+→ \*\.gone\.test\s+\[in_body\]\s+NOT LOADED: secret "gone": the environment variable UNIT_GONE is not set$/m,
      );
      expect(r.stdout + r.stderr).not.toContain(VALUE);
      const json = JSON.parse(
        execFileSync('node', [MAIN_JS, 'secrets', 'list', '-c', cfg, '--json'], {
          env: { ...process.env, UNIT_SVC: VALUE, UNIT_GONE: 'x' },
          encoding: 'utf8',
        }),
      );
      expect(json.map((s: { id: string; loaded: boolean }) => [s.id, s.loaded])).toEqual([
        ['svc', true],
        ['gone', true],
      ]);
    });
  },
);
