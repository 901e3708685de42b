import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTunnel, rawExchange } from '../../support/proxy-clients.js';
import { startProxyRig, type ProxyRig } from '../../support/proxy-rig.js';

let rig: ProxyRig;
beforeAll(async () => {
  rig = await startProxyRig(undefined, { handshakeTimeoutMs: 500, headersTimeoutMs: 500 });
});
afterAll(async () => {
  await rig?.close();
});

async function stillServes(): Promise<void> {
  const out = await rawExchange(
    rig.port,
    'GET http://plain.test/alive HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n',
  );
  expect(out).toMatch(/^HTTP\/1\.1 200/);
}

/** Bytes that look a bit like what a proxy sees: request lines, CONNECT, TLS records, or noise. */
const hostile = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((b) => Buffer.from(b)),
  fc
    .tuple(
      fc.constantFrom('GET', 'CONNECT', 'POST', 'PRI', 'G'),
      fc.string({ maxLength: 300 }),
      fc.string({ maxLength: 300 }),
    )
    .map(([m, target, rest]) => Buffer.from(`${m} ${target} HTTP/1.1\r\n${rest}\r\n\r\n`)),
  fc
    .uint8Array({ minLength: 0, maxLength: 600 })
    .map((b) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from(b)])),
);

describe('explicit proxy under random input', () => {
  it('never crashes and keeps serving, whatever arrives on the proxy port', async () => {
    await fc.assert(
      fc.asyncProperty(hostile, async (bytes) => {
        await rawExchange(rig.port, bytes, 1500);
      }),
      { numRuns: 40 },
    );
    await stillServes();
  });

  it('never crashes and keeps serving, whatever arrives inside a CONNECT tunnel', async () => {
    await fc.assert(
      fc.asyncProperty(hostile, async (bytes) => {
        const { socket } = await openTunnel(rig.port, 'api.test:443');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => socket.destroy(), 1500);
          socket.on('data', () => {});
          socket.on('error', () => {});
          socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.end(bytes);
        });
      }),
      { numRuns: 40 },
    );
    await stillServes();
  });
});
