/**
 * The pipeline with the real policy engine (CEL rules through RuleRegistry + PolicyEngine), in
 * process: deny-by-default profiles, response rules, body rules.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import {
  fetchVia,
  makeCerts,
  startGateway,
  startUpstream,
  type Certs,
  type Gateway,
  type Upstream,
} from '../../support/http-harness.js';

let certs: Certs;
let up: Upstream;
let g: Gateway;
const registry = new RuleRegistry({ defaultAction: 'block' });

function install(rule: Record<string, unknown>): void {
  const r = registry.installRaw({ description: 'test', reason: 'test rule', priority: 0, ...rule });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
}

beforeAll(async () => {
  certs = await makeCerts();
  up = await startUpstream(certs, (req, res) => {
    res.writeHead(req.url === '/teapot' ? 418 : 200, { 'content-type': 'text/plain' });
    res.end(`upstream ${req.url}`);
  });
  install({ id: 'allow-api', condition: 'http.request.host == "api.test"', action: 'allow' });
  install({
    id: 'no-teapots',
    condition: 'http.response.status == 418',
    action: 'block',
    reason: 'teapots are not allowed',
  });
  const engine = new PolicyEngine(registry);
  g = await startGateway(
    certs,
    { 'api.test': up.port, 'other.test': up.port },
    {},
    engine as never,
  );
});
afterAll(async () => {
  await g?.close();
  await up?.close();
  certs?.cleanup();
});

describe('with the real engine and a deny-by-default profile', () => {
  it('forwards a request an allow rule admits, and its response is not re-blocked by the default', async () => {
    const r = await fetchVia(g, 'https://api.test/hello');
    expect(r.status).toBe(200);
    expect(r.text).toBe('upstream /hello');
  });

  it('blocks a host no rule allows with the default action', async () => {
    const seen = up.seen.length;
    const r = await fetchVia(g, 'https://other.test/x');
    expect(r.status).toBe(403);
    expect(up.seen.length).toBe(seen);
  });

  it('blocks a response an http.response rule refuses, before its body', async () => {
    const r = await fetchVia(g, 'https://api.test/teapot');
    expect(r.status).toBe(403);
    expect(r.text).toContain('no-teapots');
    expect(r.text).not.toContain('upstream /teapot');
  });
});
