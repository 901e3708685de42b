import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createPolicyPort } from '../../src/control/policy-port.js';
import { eventFromJson } from '../../src/events/build.js';
import type { Decision } from '../../src/events/decision.js';
import { startGateway } from '../support/gateway.js';

const event = (host: string) => {
  const e = eventFromJson({ event_type: 'http.request', http: { request: { host } } });
  if (!e.ok) throw new Error('bad fixture');
  return e.value;
};

function pack(id: string, prefix: string): string {
  return stringify({
    id,
    version: '1',
    default_action: 'allow',
    rules: [
      {
        id: `${prefix}-watch`,
        condition: 'http.request.host == "target.example"',
        action: 'block',
        mode: 'shadow',
        priority: 1,
      },
      {
        id: `${prefix}-block`,
        condition: 'http.request.host == "target.example"',
        action: 'block',
        priority: 2,
      },
    ],
  });
}

describe('reloading packs', () => {
  it('refuses a bad pack whole, keeps the running plan, and shows the refusal in stats', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-reload-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pack('p', 'a'));
    const port = createPolicyPort({ packPaths: [file] });
    expect(port.reload('start').ok).toBe(true);
    const generation = port.generation();
    writeFileSync(
      file,
      `${pack('p', 'a')}\n  - id: broken\n    condition: http.request.hots == "x"\n    action: block\n`,
    );
    const out = port.reload('test');
    expect(out.ok).toBe(false);
    expect(port.generation()).toBe(generation);
    expect(port.listRules().map((r) => r.id)).toEqual(['a-watch', 'a-block']);
    expect(port.decider.decide(event('target.example')).rule_id).toBe('a-block');
    const stats = port.reloadStats();
    expect(stats).toMatchObject({ reloads: 1, refused: 1 });
    expect(JSON.stringify(stats.last_refusal)).toContain('http.request.hots');
  });

  it('keeps rules installed through the API across a reload', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-reload-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pack('p', 'a'));
    const port = createPolicyPort({ packPaths: [file] });
    port.reload('start');
    expect(
      port.putRule('api-rule', { condition: 'http.request.host == "api.example"', action: 'block' })
        .ok,
    ).toBe(true);
    writeFileSync(file, pack('p', 'b'));
    expect(port.reload('test').ok).toBe(true);
    expect(
      port
        .listRules()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['api-rule', 'b-block', 'b-watch']);
    expect(port.decider.decide(event('api.example')).rule_id).toBe('api-rule');
  });

  it('gives every one of thousands of concurrent evaluations the old plan or the new one, never a mix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-reload-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pack('p', 'a'));
    const port = createPolicyPort({ packPaths: [file] });
    port.reload('start');
    const prefixByGeneration = new Map<number, string>([[port.generation(), 'a']]);
    const decisions: Decision[] = [];
    const tick = () => new Promise<void>((r) => setImmediate(r));
    const evaluations = Array.from({ length: 5000 }, async (_, i) => {
      for (let k = 0; k < i % 7; k++) await tick();
      decisions.push(port.decider.decide(event('target.example')));
    });
    const reloads = (async () => {
      for (let i = 0; i < 6; i++) {
        await tick();
        const prefix = i % 2 === 0 ? 'b' : 'a';
        writeFileSync(file, pack('p', prefix));
        const out = port.reload('test');
        expect(out.ok).toBe(true);
        prefixByGeneration.set(port.generation(), prefix);
      }
    })();
    await Promise.all([...evaluations, reloads]);
    expect(decisions).toHaveLength(5000);
    expect(new Set(decisions.map((d) => d.generation)).size).toBeGreaterThan(1);
    for (const d of decisions) {
      expect(d.errors).toEqual([]);
      expect(d.action).toBe('block');
      const prefix = prefixByGeneration.get(d.generation);
      expect(d.rule_id).toBe(`${prefix}-block`);
      expect(d.matches.map((m) => m.rule_id)).toEqual([`${prefix}-watch`, `${prefix}-block`]);
    }
  });
});

describe('reload in a running gateway', () => {
  it('reloads on SIGHUP, on POST /v1/reload and on a file change; refuses a bad pack and logs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-reload-gw-'));
    const rules = join(dir, 'rules');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(rules);
    writeFileSync(join(rules, 'p.yaml'), pack('p', 'a'));
    const gw = await startGateway({ config: { rules: [rules], watch_rules: true } });
    try {
      const decide = async () =>
        (
          await gw.api('POST', '/v1/evaluate', {
            event: { event_type: 'http.request', http: { request: { host: 'target.example' } } },
            record: false,
          })
        ).json.decision.rule_id;
      expect(await decide()).toBe('a-block');

      writeFileSync(join(rules, 'p.yaml'), pack('p', 'b'));
      await expect.poll(decide, { timeout: 10_000 }).toBe('b-block');

      writeFileSync(
        join(rules, 'p.yaml'),
        'id: p\nrules: [ {id: x, condition: "http.request.nope == 1", action: block} ]\n',
      );
      const refused = await gw.api('POST', '/v1/reload');
      expect(refused.status).toBe(422);
      expect(refused.json.error.code).toBe('E_RULE_INVALID');
      expect(await decide()).toBe('b-block');
      await expect
        .poll(async () => (await gw.api('GET', '/v1/stats')).json.reload.refused, {
          timeout: 10_000,
        })
        .toBeGreaterThanOrEqual(1);
      await expect
        .poll(() => gw.logs().some((l) => String(l.msg).startsWith('reload refused')), {
          timeout: 10_000,
        })
        .toBe(true);

      writeFileSync(join(rules, 'p.yaml'), pack('p', 'c'));
      gw.kill('SIGHUP');
      await expect.poll(decide, { timeout: 10_000 }).toBe('c-block');
      await expect
        .poll(() => gw.logs().some((l) => l.msg === 'rules reloaded' && l.reason === 'sighup'), {
          timeout: 10_000,
        })
        .toBe(true);
    } finally {
      await gw.stop();
    }
  });
});

describe('reload under concurrent evaluation in a running gateway', () => {
  it('answers every one of a thousand concurrent evaluations with the old plan or the new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-reload-conc-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pack('p', 'a'));
    const gw = await startGateway({ config: { rules: [file] } });
    try {
      const prefixByGeneration = new Map<number, string>([
        [(await gw.api('GET', '/v1/health')).json.generation, 'a'],
      ]);
      const body = {
        event: { event_type: 'http.request', http: { request: { host: 'target.example' } } },
        record: false,
      };
      const evaluations: ReturnType<typeof gw.api>[] = [];
      for (let i = 0; i < 5; i++) {
        // A wave of evaluations in flight, then a reload: each wave races the reload after it.
        for (let k = 0; k < 200; k++) evaluations.push(gw.api('POST', '/v1/evaluate', body));
        const prefix = i % 2 === 0 ? 'b' : 'a';
        writeFileSync(file, pack('p', prefix));
        const r = await gw.api('POST', '/v1/reload');
        expect(r.status).toBe(200);
        prefixByGeneration.set(r.json.generation, prefix);
      }
      const results = await Promise.all(evaluations);
      expect(results).toHaveLength(1000);
      expect(new Set(results.map((r) => r.json.decision.generation)).size).toBeGreaterThan(1);
      for (const r of results) {
        expect(r.status).toBe(200);
        const d = r.json.decision;
        expect(d.errors).toEqual([]);
        const prefix = prefixByGeneration.get(d.generation);
        expect(prefix, `generation ${d.generation}`).toBeDefined();
        expect(d.rule_id).toBe(`${prefix}-block`);
        expect(d.matches.map((m: { rule_id: string }) => m.rule_id)).toEqual([
          `${prefix}-watch`,
          `${prefix}-block`,
        ]);
      }
    } finally {
      await gw.stop();
    }
  });
});

describe('starting with a bad pack', () => {
  it('refuses to start, naming the file and the problem, and exits non-zero', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celgate-badstart-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'id: bad\nversion: "1"\nrules:\n  - id: x\n    condition: http.request.hots == "a"\n    action: block\n',
    );
    await expect(startGateway({ config: { rules: [file] } })).rejects.toThrow(
      /exited with 2[\s\S]*bad\.yaml[\s\S]*http\.request\.host/,
    );
  });
});
