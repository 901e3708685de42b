import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  HttpError,
  isLoopbackHost,
  MAX_CONTROL_BODY,
  Router,
  startControlServer,
  type ControlServer,
} from '../../src/control/server.js';
import { controlRequest } from '../support/gateway.js';

const TOKEN = 'test-token-0123456789abcdef';

function tcpRequest(
  address: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any }> {
  const idx = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: address.slice(0, idx), port: Number(address.slice(idx + 1)), method, path, headers },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function router(): Router {
  return new Router().add(
    { method: 'GET', path: '/v1/ping', handler: () => ({ json: { pong: true } }) },
    {
      method: 'GET',
      path: '/v1/things/:id',
      handler: (r) => ({ json: { id: r.params.id, q: r.query.get('q') } }),
    },
    { method: 'POST', path: '/v1/echo', handler: (r) => ({ json: { body: r.body } }) },
    {
      method: 'POST',
      path: '/v1/fail',
      handler: () => {
        throw new HttpError(422, 'E_RULE_INVALID', 'nope', [{ path: 'x', message: 'bad x' }]);
      },
    },
    {
      method: 'GET',
      path: '/v1/crash',
      handler: () => {
        throw new TypeError('boom');
      },
    },
  );
}

describe('control server', () => {
  const servers: ControlServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  const start = async (opts: Partial<Parameters<typeof startControlServer>[0]> = {}) => {
    const socket = join(mkdtempSync(join(tmpdir(), 'celgate-ctl-')), 'control.sock');
    const s = await startControlServer({
      socket,
      tcp: null,
      token: null,
      allowNonLoopback: false,
      router: router(),
      ...opts,
    });
    servers.push(s);
    return { s, socket };
  };

  it('serves the route table on an owner-only Unix socket, with params and query', async () => {
    const { socket } = await start();
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect((await controlRequest(socket, 'GET', '/v1/ping')).json).toEqual({ pong: true });
    expect((await controlRequest(socket, 'GET', '/v1/things/a%20b?q=1')).json).toEqual({
      id: 'a b',
      q: '1',
    });
    expect((await controlRequest(socket, 'POST', '/v1/echo', { a: 1 })).json).toEqual({
      body: { a: 1 },
    });
  });

  it.each([
    ['an unknown path', 'GET', '/v1/none', undefined, 404, 'E_NOT_FOUND'],
    ['a wrong method', 'DELETE', '/v1/ping', undefined, 405, 'E_METHOD'],
    ['malformed JSON', 'POST', '/v1/echo', '{"a":', 400, 'E_PARSE'],
    ['a handler refusal with issues', 'POST', '/v1/fail', {}, 422, 'E_RULE_INVALID'],
    ['a handler bug', 'GET', '/v1/crash', undefined, 500, 'E_INTERNAL'],
  ])('answers %s with a JSON error', async (_n, method, path, body, status, code) => {
    const { socket } = await start();
    const res = await controlRequest(socket, method, path, body);
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBe(code);
  });

  it('refuses a body over the limit with 413 and keeps serving', async () => {
    const { socket } = await start();
    const res = await controlRequest(
      socket,
      'POST',
      '/v1/echo',
      `"${'x'.repeat(MAX_CONTROL_BODY + 10)}"`,
    );
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe('E_LIMIT');
    expect((await controlRequest(socket, 'GET', '/v1/ping')).status).toBe(200);
  });

  it('requires the bearer token on loopback TCP', async () => {
    const { s } = await start({ tcp: '127.0.0.1:0', token: TOKEN });
    const addr = s.addresses.control_tcp!;
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    const none = await tcpRequest(addr, 'GET', '/v1/ping');
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('E_UNAUTHORIZED');
    expect(
      (await tcpRequest(addr, 'GET', '/v1/ping', { authorization: 'Bearer wrong' })).status,
    ).toBe(401);
    expect(
      (await tcpRequest(addr, 'GET', '/v1/ping', { authorization: `Bearer ${TOKEN}` })).json,
    ).toEqual({ pong: true });
  });

  it('refuses a non-loopback TCP bind unless forced', async () => {
    await expect(start({ tcp: '0.0.0.0:0', token: TOKEN })).rejects.toMatchObject({
      code: 'E_CONFIG',
      message: expect.stringContaining('not a loopback'),
    });
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });

  it('replaces a stale socket file but refuses one a live gateway is using', async () => {
    const { socket } = await start();
    await expect(
      startControlServer({
        socket,
        tcp: null,
        token: null,
        allowNonLoopback: false,
        router: router(),
      }),
    ).rejects.toMatchObject({ code: 'E_CONFIG' });
    const file = join(mkdtempSync(join(tmpdir(), 'celgate-ctl-')), 'control.sock');
    writeFileSync(file, 'not a socket');
    await expect(
      startControlServer({
        socket: file,
        tcp: null,
        token: null,
        allowNonLoopback: false,
        router: router(),
      }),
    ).rejects.toThrow(/not a socket/);
  });
});

describe('control socket path', () => {
  it('refuses a socket path longer than the Unix limit with E_CONFIG', async () => {
    const socket = join(tmpdir(), 'x'.repeat(120), 'control.sock');
    await expect(
      startControlServer({
        socket,
        tcp: null,
        token: null,
        allowNonLoopback: false,
        router: new Router(),
      }),
    ).rejects.toMatchObject({
      code: 'E_CONFIG',
      message: expect.stringContaining('longer than 107 bytes'),
    });
  });
});
