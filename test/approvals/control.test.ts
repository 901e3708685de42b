/**
 * The approval routes on the real control server: who answered is the control peer — the Unix
 * socket's `control-socket`, the TCP listener's `token` (after the bearer token was checked) — and
 * a long poll held open on the socket counts as a connected approver.
 */
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ApprovalBroker, approvalRoutes, DEFAULT_APPROVALS } from '../../src/control/approvals.js';
import { controlRequest } from '../../src/control/client.js';
import { Router, startControlServer, type ControlServer } from '../../src/control/server.js';
import { decideHeld } from '../../src/events/enforce.js';
import { httpRequestEvent, NULL_SINK, type Decision } from '../../src/events/index.js';
import { engineWith } from '../policy/helpers.js';

const TOKEN = 'test-token-0123456789abcdef';
const socket = join(mkdtempSync(join(tmpdir(), 'celgate-appr-')), 'control.sock');
const broker = new ApprovalBroker({ config: DEFAULT_APPROVALS });
const { engine } = engineWith([
  { id: 'ask-all', condition: 'http.request.host != ""', action: 'ask', reason: 'everything' },
]);
const e = { decider: { decide: engine.decide.bind(engine), hold: broker.hold }, sink: NULL_SINK };
let server: ControlServer;

beforeAll(async () => {
  server = await startControlServer({
    socket,
    tcp: '127.0.0.1:0',
    token: TOKEN,
    allowNonLoopback: false,
    router: new Router().add(...approvalRoutes(broker)),
  });
});
afterAll(async () => {
  broker.close();
  await server?.close();
});

const ask = (path: string) =>
  decideHeld(
    e,
    httpRequestEvent(
      { session_id: 's' },
      { method: 'GET', scheme: 'https', host: 'a.test', port: 443, path },
    ),
  ) as Promise<Decision>;

function tcpPost(path: string, body: unknown): Promise<number> {
  const a = server.addresses.control_tcp!;
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: Number(a.slice(a.lastIndexOf(':') + 1)),
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

it('counts an open long poll as a connected approver and wakes it for a new request', async () => {
  expect(broker.approverPresent()).toBe(false);
  const poll = controlRequest(socket, 'GET', '/v1/approvals?wait=1&timeout_ms=20000');
  for (let i = 0; i < 200 && !broker.approverPresent(); i++)
    await new Promise((r) => setTimeout(r, 10));
  expect(broker.approverPresent()).toBe(true);
  const held = ask('/socket');
  const page = await poll;
  expect(page.json.approvals).toHaveLength(1);
  const id = page.json.approvals[0].id as string;
  const answered = await controlRequest(socket, 'POST', `/v1/approvals/${id}`, {
    body: { decision: 'allow' },
  });
  expect(answered.status).toBe(200);
  expect((await held).approval).toMatchObject({ answer: 'allow', by: 'control-socket' });
});

it('records "token" for an answer over the TCP listener', async () => {
  const held = ask('/tcp');
  const [p] = broker.list();
  expect(await tcpPost(`/v1/approvals/${p!.id}`, { decision: 'deny' })).toBe(200);
  expect((await held).approval).toMatchObject({ answer: 'deny', by: 'token' });
});

it('refuses an unknown field in the answer', async () => {
  const r = await controlRequest(socket, 'POST', '/v1/approvals/x', {
    body: { decision: 'allow', because: 'yes' },
  });
  expect(r.status).toBe(400);
  expect(r.json.error.message).toContain('unknown field "because"');
});
