/**
 * Hostile guests on the MCP port: every fixture in test/fixtures/mcp/hostile-frames.json closes the
 * stream with its recorded reason, the gateway keeps serving others, and random mutations of valid
 * frames never throw or wedge the gateway (property test).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeData, encodeOpen } from '../../src/transport/mcp/index.js';
import { FLAKY, startHarness, type Harness } from '../support/mcp.js';
import { RawGuest } from './wire.js';

const CASES = JSON.parse(
  readFileSync(new URL('../fixtures/mcp/hostile-frames.json', import.meta.url), 'utf8'),
) as {
  name: string;
  hex: string;
  end: boolean;
  reason: string;
}[];

let h: Harness;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  h = await startHarness({ upstreams: [FLAKY] });
});
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  await h?.close();
});

async function stillServes(): Promise<void> {
  const c = await h.client('after-hostile');
  const r = await c.callTool({ name: 'flaky__ok', arguments: {} });
  expect((r.content as { text: string }[])[0]!.text).toMatch(/^ok/);
  await c.close();
}

describe('hostile frames', () => {
  it.each(CASES)('closes the stream on $name and records "$reason"', async (c) => {
    const before = h.closed.length;
    const g = await RawGuest.connect(h.endpoint.port);
    g.write(Buffer.from(c.hex, 'hex'));
    if (c.end) g.socket.end();
    await g.until(() => g.ended || h.closed.length > before);
    for (let i = 0; i < 40 && !h.closed.slice(before).some((x) => x.reason === c.reason); i++)
      await new Promise((r) => setTimeout(r, 25));
    const recorded = h.closed.slice(before).find((x) => x.reason === c.reason);
    expect(recorded, `recorded reasons: ${JSON.stringify(h.closed.slice(before))}`).toBeDefined();
    expect(recorded!.hostile).toBe(true);
    expect(h.service.rejected[c.reason]).toBeGreaterThan(0);
    g.close();
  });

  it('closes only the offending stream when the payload is bad, and tells the guest why', async () => {
    const g = await RawGuest.connect(h.endpoint.port);
    await g.init(1);
    await g.init(3);
    g.write(encodeData(3, '['.repeat(500) + ']'.repeat(500)));
    await g.until(() => g.closes().length > 0);
    expect(g.closes()).toEqual([{ kind: 3, streamId: 3, reason: 'json_too_deep' }]);
    g.send(1, { jsonrpc: '2.0', id: 'p', method: 'ping' });
    await g.until(() => g.messages(1).some((m) => m.id === 'p'));
    expect(g.messages(1).find((m) => m.id === 'p')).toEqual({
      jsonrpc: '2.0',
      id: 'p',
      result: {},
    });
    g.close();
  });

  it('closes a connection whose frame stays incomplete (slow loris) and records slow_frame', async () => {
    const g = await RawGuest.connect(h.endpoint.port);
    await g.init(1);
    g.write(encodeData(1, '{"jsonrpc":"2.0","id":1,"method":"ping"}').subarray(0, 20));
    await g.until(() => g.ended, 10_000);
    expect(g.ended).toBe(true);
    expect(g.closes()).toEqual([{ kind: 3, streamId: 1, reason: 'slow_frame' }]);
    expect(h.closed.some((c) => c.reason === 'slow_frame')).toBe(true);
  });

  it('does not cut off a busy stream whose chunks always end mid-frame', async () => {
    const g = await RawGuest.connect(h.endpoint.port);
    await g.init(1);
    const frames = Array.from({ length: 14 }, (_, i) =>
      encodeData(1, JSON.stringify({ jsonrpc: '2.0', id: `b${i}`, method: 'ping' })),
    );
    // Each write completes the previous frame and starts the next: a partial frame is always held,
    // for longer (2.8 s) than the 2 s bound the harness sets.
    g.write(frames[0]!.subarray(0, 10));
    for (let i = 0; i < frames.length; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const next = frames[i + 1];
      g.write(
        next
          ? Buffer.concat([frames[i]!.subarray(10), next.subarray(0, 10)])
          : frames[i]!.subarray(10),
      );
    }
    await g.until(() => g.messages(1).some((m) => m.id === 'b13'));
    expect(g.ended).toBe(false);
    expect(g.messages(1).filter((m) => String(m.id).startsWith('b'))).toHaveLength(14);
    g.close();
  });

  it('keeps serving other guests after all of the above', async () => {
    await stillServes();
    expect(uncaught).toEqual([]);
  });

  it('survives random mutations of valid frame sequences (property)', async () => {
    const valid = Buffer.concat([
      encodeOpen(1, 'fuzz'),
      encodeData(
        1,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'f', version: '1' },
          },
        }),
      ),
      encodeData(1, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })),
      encodeData(
        1,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'flaky__ok', arguments: { a: [1, { b: 2 }] } },
        }),
      ),
    ]);
    const mutation = fc.array(
      fc.oneof(
        fc.record({
          op: fc.constant('flip' as const),
          at: fc.nat(),
          val: fc.integer({ min: 0, max: 255 }),
        }),
        fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({
          op: fc.constant('insert' as const),
          at: fc.nat(),
          bytes: fc.uint8Array({ maxLength: 16 }),
        }),
      ),
      { minLength: 1, maxLength: 4 },
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (muts) => {
        let buf = Buffer.from(valid);
        for (const m of muts) {
          const at = m.at % (buf.length + 1);
          if (m.op === 'flip' && buf.length > 0) buf[at % buf.length] = m.val;
          else if (m.op === 'cut') buf = buf.subarray(0, at);
          else if (m.op === 'insert')
            buf = Buffer.concat([buf.subarray(0, at), Buffer.from(m.bytes), buf.subarray(at)]);
        }
        const g = await RawGuest.connect(h.endpoint.port);
        g.write(buf);
        g.socket.end();
        await g.until(() => g.ended, 3_000);
        g.close();
      }),
      { numRuns: 60 },
    );
    expect(uncaught).toEqual([]);
    await stillServes();
  });
});
