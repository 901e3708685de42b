/**
 * MCP over HTTPS from a namespace guest: the SDK's Streamable HTTP and SSE client transports run
 * inside the guest with the system fetch, their HTTPS intercepted by the guest bridge and carried
 * to the gateway's vsock HTTP port; server-everything answers behind `upstream_map`. A tool rule
 * refuses one call and the next goes on.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningTestGateway } from '../support/gateway.js';
import { GuestNamespace, netnsAvailability } from '../support/netns.js';
import { makeCerts, type Certs } from '../../support/http-harness.js';
import { startEverything, type Everything } from './harness.js';

const avail = netnsAvailability();

/** The guest's agent: one session, four calls, one JSON line of what it saw. */
const AGENT = `
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
const [kind, url] = process.argv.slice(1);
const transport = kind === 'sse' ? new SSEClientTransport(new URL(url)) : new StreamableHTTPClientTransport(new URL(url));
const client = new Client({ name: 'guest-agent', version: '1' });
await client.connect(transport);
const out = { tools: (await client.listTools()).tools.map((t) => t.name) };
out.ok = (await client.callTool({ name: 'echo', arguments: { message: 'from the guest' } })).content;
try { await client.callTool({ name: 'echo', arguments: { message: 'forbidden' } }); out.refused = null; }
catch (e) { out.refused = { code: e.code, data: e.data }; }
out.after = (await client.callTool({ name: 'echo', arguments: { message: 'after' } })).content;
console.log(JSON.stringify(out));
await client.close();
`;

describe.skipIf(!avail.ok)(
  `MCP over HTTPS from a namespace guest${avail.ok ? '' : ` (skipped: ${avail.reason})`}`,
  () => {
    let dir: string;
    let certs: Certs;
    let streamable: Everything;
    let sse: Everything;
    let gw: RunningTestGateway;
    let guest: GuestNamespace;
    let caFile: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'celgate-mcp-https-guest-'));
      certs = await makeCerts();
      [streamable, sse] = await Promise.all([
        startEverything(certs, 'streamableHttp'),
        startEverything(certs, 'sse'),
      ]);
      writeFileSync(join(dir, 'upstream-ca.pem'), certs.caPem);
      gw = await startGateway({
        config: {
          vsock: {
            mode: 'uds',
            uds_base: join(dir, 'vsock'),
            ports: { http: 5002, mcp: 5003, dns: 5007, exec: 5000 },
          },
          http: {
            ca_dir: join(dir, 'certs'),
            extra_ca: [join(dir, 'upstream-ca.pem')],
            upstream_map: {
              'mcp-stream.test': `127.0.0.1:${streamable.port}`,
              'mcp-sse.test': `127.0.0.1:${sse.port}`,
            },
          },
          dns: {
            upstreams: [],
            static: { 'mcp-stream.test': ['203.0.113.20'], 'mcp-sse.test': ['203.0.113.21'] },
          },
        },
      });
      const put = await gw.api('PUT', '/v1/rules/guest-no-forbidden-echo', {
        id: 'guest-no-forbidden-echo',
        description: 'no forbidden echoes',
        condition:
          'mcp.request.tool_name == "echo" && mcp.request.arguments.message == "forbidden"',
        action: 'block',
        reason: 'that message may not be echoed',
      });
      expect(put.status, put.text).toBeLessThan(300);
      caFile = join(dir, 'certs', 'ca.cert.pem');
      guest = await GuestNamespace.create({
        udsBase: join(dir, 'vsock'),
        workDir: join(dir, 'guest'),
      });
    }, 90_000);

    afterAll(async () => {
      await guest?.destroy();
      await gw?.stop();
      await Promise.all([streamable?.close(), sse?.close()]);
      certs?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it.each([
      ['Streamable HTTP', 'streamable', 'https://mcp-stream.test/mcp'],
      ['HTTP+SSE', 'sse', 'https://mcp-sse.test/sse'],
    ])(
      '%s: the guest agent is refused one call and goes on',
      async (_n, kind, url) => {
        const r = await guest.run(
          [process.execPath, '--input-type=module', '-e', AGENT, kind, url],
          { env: { NODE_EXTRA_CA_CERTS: caFile }, timeoutMs: 30_000 },
        );
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
        expect(out.tools).toContain('echo');
        expect(JSON.stringify(out.ok)).toContain('from the guest');
        expect(out.refused).toMatchObject({
          code: -32010,
          data: { rule_id: 'guest-no-forbidden-echo', stage: 'request' },
        });
        expect(JSON.stringify(out.after)).toContain('after');
      },
      60_000,
    );
  },
);
