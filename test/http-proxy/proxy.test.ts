import { readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reqOf } from '../../support/http-harness.js';
import {
  clientOver,
  curl,
  hasCurl,
  openTunnel,
  rawExchange,
  tlsThroughTunnel,
} from '../../support/proxy-clients.js';
import { startProxyRig, type ProxyRig } from '../../support/proxy-rig.js';

let rig: ProxyRig;
let caFile: string;
beforeAll(async () => {
  rig = await startProxyRig();
  caFile = rig.gatewayCerts.ca.certPath;
});
afterAll(async () => {
  await rig?.close();
});

const blockEvil = () =>
  rig.decider.set([
    {
      id: 'no-evil',
      action: 'block',
      reason: 'evil.test is an exfil endpoint',
      when: (e) => reqOf(e)?.host === 'evil.test',
    },
  ]);

describe('explicit proxy: HTTPS through CONNECT', () => {
  it.skipIf(!hasCurl)(
    'serves curl -x … --cacert with a leaf from our CA and forwards the allowed request (needs curl)',
    async () => {
      const before = rig.sink.nets.length;
      const r = await curl(['-x', rig.proxyUrl, '--cacert', caFile, 'https://api.test/hello?x=1']);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject({ url: '/hello?x=1', host: 'api.test' });
      const rows = await rig.sink.waitNets(before + 1);
      expect(rows[before]).toMatchObject({
        scheme: 'https',
        method: 'GET',
        host: 'api.test',
        port: 443,
        path: '/hello',
        query: 'x=1',
        sni: 'api.test',
        status: 200,
        decision: 'allow',
        error: null,
      });
    },
  );

  it('serves Node fetch through undici ProxyAgent trusting only the celgate CA', async () => {
    const agent = new ProxyAgent({ uri: rig.proxyUrl, requestTls: { ca: rig.gatewayCerts.caPem } });
    try {
      const res = await undiciFetch('https://api.test/fetch', { dispatcher: agent });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ url: '/fetch', host: 'api.test' });
    } finally {
      await agent.close();
    }
  });

  it('answers a blocked host with the pipeline 403 naming the rule, and never contacts upstream', async () => {
    blockEvil();
    const seen = rig.https.seen.length;
    const before = rig.sink.nets.length;
    const agent = new ProxyAgent({ uri: rig.proxyUrl, requestTls: { ca: rig.gatewayCerts.caPem } });
    try {
      const res = await undiciFetch('https://evil.test/steal', {
        dispatcher: agent,
        headers: { accept: 'application/json' },
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({
        blocked: true,
        rule_id: 'no-evil',
        reason: 'evil.test is an exfil endpoint',
      });
    } finally {
      await agent.close();
      rig.decider.set([]);
    }
    expect(rig.https.seen.length).toBe(seen);
    const row = (await rig.sink.waitNets(before + 1))[before]!;
    expect(row).toMatchObject({
      host: 'evil.test',
      status: 403,
      decision: 'block',
      rule_id: 'no-evil',
    });
  });

  it('takes the host from SNI, not the CONNECT line: a tunnel to api.test with SNI evil.test is judged as evil.test', async () => {
    blockEvil();
    const seen = rig.https.seen.length;
    const before = rig.sink.nets.length;
    const socket = await tlsThroughTunnel(
      rig.port,
      'api.test:443',
      rig.gatewayCerts.caPem,
      'evil.test',
    );
    expect(socket.getPeerCertificate().subjectaltname).toBe('DNS:evil.test');
    const client = clientOver('https://evil.test', socket);
    try {
      const res = await client.request({ path: '/x', method: 'GET' });
      expect(res.statusCode).toBe(403);
      expect(await res.body.text()).toMatch(/no-evil/);
    } finally {
      await client.close();
      rig.decider.set([]);
    }
    expect(rig.https.seen.length).toBe(seen);
    expect((await rig.sink.waitNets(before + 1))[before]).toMatchObject({
      host: 'evil.test',
      sni: 'evil.test',
      rule_id: 'no-evil',
    });
  });

  it('mints an IP-SAN leaf from the CONNECT target when the client sends no SNI (IP literal)', async () => {
    const socket = await tlsThroughTunnel(
      rig.port,
      '127.0.0.2:443',
      rig.gatewayCerts.caPem,
      undefined,
    );
    expect(socket.getPeerCertificate().subjectaltname).toBe('IP Address:127.0.0.2');
    expect(socket.authorized).toBe(true);
    const client = clientOver('https://127.0.0.2', socket);
    try {
      const res = await client.request({ path: '/by-ip', method: 'GET' });
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(await res.body.text())).toMatchObject({ url: '/by-ip' });
    } finally {
      await client.close();
    }
  });

  it('keeps one tunnel alive across an allowed, a blocked and an allowed request, with a rule change in between', async () => {
    const socket = await tlsThroughTunnel(
      rig.port,
      'api.test:443',
      rig.gatewayCerts.caPem,
      'api.test',
    );
    const client = clientOver('https://api.test', socket);
    try {
      const a = await client.request({ path: '/one', method: 'GET' });
      expect(a.statusCode).toBe(200);
      await a.body.text();
      rig.decider.set([
        {
          id: 'no-admin',
          action: 'block',
          when: (e) => reqOf(e)?.path.startsWith('/admin') === true,
        },
      ]);
      const b = await client.request({ path: '/admin', method: 'GET' });
      expect(b.statusCode).toBe(403);
      await b.body.text();
      const c = await client.request({ path: '/three', method: 'GET' });
      expect(c.statusCode).toBe(200);
      await c.body.text();
      expect(client.connects()).toBe(1);
    } finally {
      await client.close();
      rig.decider.set([]);
    }
  });

  it('writes no per-host files: the CA directory holds only the CA, and the library CA folder is never created', async () => {
    expect((await readdir(rig.gatewayCerts.dir)).sort()).toEqual(['ca.cert.pem', 'ca.key.pem']);
    expect(existsSync(join(process.cwd(), '.http-mitm-proxy'))).toBe(false);
  });

  it('answers a CONNECT with a 2xx that advertises keep-alive', async () => {
    const { socket, head } = await openTunnel(rig.port, 'api.test:443');
    socket.destroy();
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).toMatch(/Connection: keep-alive/i);
  });
});

describe('explicit proxy: plain http:// requests', () => {
  it.skipIf(!hasCurl)(
    'forwards curl -x … http://host/path to the plain upstream and records scheme http (needs curl)',
    async () => {
      const before = rig.sink.nets.length;
      const r = await curl(['-x', rig.proxyUrl, 'http://plain.test/p?q=2']);
      expect(JSON.parse(r.stdout)).toMatchObject({ url: '/p?q=2', host: 'plain.test' });
      const rows = await rig.sink.waitNets(before + 1);
      expect(rows[before]).toMatchObject({
        scheme: 'http',
        host: 'plain.test',
        port: 80,
        path: '/p',
        query: 'q=2',
        sni: '',
        status: 200,
        decision: 'allow',
      });
    },
  );

  it('judges the absolute URL, not a Host header that names another host', async () => {
    rig.decider.set([
      { id: 'no-plain', action: 'block', when: (e) => reqOf(e)?.host === 'plain.test' },
    ]);
    const seen = rig.plain.seen.length;
    const before = rig.sink.nets.length;
    try {
      const out = await rawExchange(
        rig.port,
        'GET http://plain.test/x HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 403/);
      expect(out).toMatch(/no-plain/);
    } finally {
      rig.decider.set([]);
    }
    expect(rig.plain.seen.length).toBe(seen);
    const rows = await rig.sink.waitNets(before + 1);
    expect(rows[before]).toMatchObject({
      host: 'plain.test',
      host_header_mismatch: 'api.test',
      rule_id: 'no-plain',
    });
  });

  it('answers a blocked plain request with 403 text naming the rule', async () => {
    rig.decider.set([
      {
        id: 'no-plain',
        action: 'block',
        reason: 'plain text is not allowed',
        when: (e) => reqOf(e)?.host === 'plain.test',
      },
    ]);
    const agent = new ProxyAgent({ uri: rig.proxyUrl });
    try {
      const res = await undiciFetch('http://plain.test/secret', { dispatcher: agent });
      expect(res.status).toBe(403);
      const text = await res.text();
      expect(text).toMatch(/no-plain/);
      expect(text).toMatch(/Retrying will not help/);
    } finally {
      await agent.close();
      rig.decider.set([]);
    }
  });
});

describe('explicit proxy: request bodies', () => {
  it('forwards a POST body through a tunnel unchanged', async () => {
    const agent = new ProxyAgent({ uri: rig.proxyUrl, requestTls: { ca: rig.gatewayCerts.caPem } });
    try {
      const res = await undiciFetch('https://api.test/upload', {
        dispatcher: agent,
        method: 'POST',
        body: 'x'.repeat(100_000),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { body: string }).body).toBe('x'.repeat(100_000));
    } finally {
      await agent.close();
    }
  });

  it('buffers the body for a rule that reads it and blocks on its content', async () => {
    rig.decider.set([
      {
        id: 'no-secrets',
        action: 'block',
        readsBody: true,
        when: (e) =>
          (
            e as { http?: { request?: { body?: { text?: string } } } }
          ).http?.request?.body?.text?.includes('secret') === true,
      },
    ]);
    const seen = rig.https.seen.length;
    const agent = new ProxyAgent({ uri: rig.proxyUrl, requestTls: { ca: rig.gatewayCerts.caPem } });
    try {
      const blocked = await undiciFetch('https://api.test/post', {
        dispatcher: agent,
        method: 'POST',
        body: 'the secret is 42',
      });
      expect(blocked.status).toBe(403);
      await blocked.text();
      expect(rig.https.seen.length).toBe(seen);
      const fine = await undiciFetch('https://api.test/post', {
        dispatcher: agent,
        method: 'POST',
        body: 'nothing to see',
      });
      expect(fine.status).toBe(200);
      expect(((await fine.json()) as { body: string }).body).toBe('nothing to see');
    } finally {
      await agent.close();
      rig.decider.set([]);
    }
  });

  it('answers Expect: 100-continue only after the decision, and refuses a blocked one without reading the body', async () => {
    rig.decider.set([
      { id: 'no-plain-upload', action: 'block', when: (e) => reqOf(e)?.path === '/blocked-upload' },
    ]);
    try {
      const out = await rawExchange(
        rig.port,
        'POST http://plain.test/blocked-upload HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n',
      );
      expect(out).toMatch(/^HTTP\/1\.1 403/);
      expect(out).not.toMatch(/100 Continue/);
    } finally {
      rig.decider.set([]);
    }
  });

  it('judges a request without a Host header inside a tunnel by its SNI', async () => {
    blockEvil();
    const socket = await tlsThroughTunnel(
      rig.port,
      'evil.test:443',
      rig.gatewayCerts.caPem,
      'evil.test',
    );
    try {
      const answer = await new Promise<string>((resolve) => {
        let out = '';
        socket.on('data', (c: Buffer) => (out += c.toString()));
        socket.on('close', () => resolve(out));
        socket.write('GET /nohost HTTP/1.0\r\n\r\n');
      });
      expect(answer).toMatch(/^HTTP\/1\.[01] 403/);
      expect(answer).toMatch(/no-evil/);
    } finally {
      rig.decider.set([]);
    }
  });
});

describe('explicit proxy: agent label from proxy credentials', () => {
  it('records the proxy user name as process_name for tunnelled requests (undici ProxyAgent)', async () => {
    const before = rig.sink.nets.length;
    const agent = new ProxyAgent({
      uri: `http://agent-7:unused@127.0.0.1:${rig.port}`,
      requestTls: { ca: rig.gatewayCerts.caPem },
    });
    try {
      const res = await undiciFetch('https://api.test/labelled', { dispatcher: agent });
      expect(res.status).toBe(200);
      await res.text();
    } finally {
      await agent.close();
    }
    const rows = await rig.sink.waitNets(before + 1);
    expect(rows[before]).toMatchObject({ path: '/labelled', process_name: 'agent-7' });
    const decided = rig.sink.decisions.find(
      (d) => d.event.common.event_id === rows[before]!.event_id,
    );
    expect(decided?.event.common.process_name).toBe('agent-7');
  });

  it.skipIf(!hasCurl)(
    'records it for plain requests too, and ignores a label with odd characters (needs curl)',
    async () => {
      const before = rig.sink.nets.length;
      await curl(['-x', `http://builder.bot:x@127.0.0.1:${rig.port}`, 'http://plain.test/a']);
      await curl(['-x', `http://bad%20name:x@127.0.0.1:${rig.port}`, 'http://plain.test/b']);
      const rows = await rig.sink.waitNets(before + 2);
      expect(rows[before]).toMatchObject({ path: '/a', process_name: 'builder.bot' });
      expect(rows[before + 1]).toMatchObject({ path: '/b', process_name: '' });
    },
  );
});
