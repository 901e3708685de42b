/**
 * Upstream call timeouts share one deadline timer (upstream.ts `armSweep`): a call with a short
 * timeout issued after one with a long timeout still times out on time, a call that answers is not
 * timed out, and a later call re-arms the timer after it went idle. Real stdio server (the flaky
 * fixture); no fake clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Upstream } from '../../src/transport/mcp/upstream.js';
import { FLAKY } from '../support/mcp.js';

let up: Upstream | undefined;
afterEach(async () => up?.close());

const start = async (): Promise<Upstream> => {
  const u = new Upstream(FLAKY, {
    startTimeoutMs: 10_000,
    backoffInitialMs: 50,
    backoffMaxMs: 500,
  });
  await u.start();
  return u;
};
const call = (u: Upstream, name: string, timeoutMs: number) =>
  u.request('tools/call', { name, arguments: {} }, { timeoutMs });

describe('upstream call timeouts (one shared deadline timer)', () => {
  it('times out a short call behind a long one on time, and leaves the long one pending', async () => {
    up = await start();
    let longDone = false;
    const long = call(up, 'hang', 20_000).then((r) => {
      longDone = true;
      return r;
    });
    const t0 = performance.now();
    const short = await call(up, 'hang', 200);
    const waited = performance.now() - t0;
    expect(short).toMatchObject({ error: { data: { reason: 'timeout' } } });
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(5_000);
    expect(longDone).toBe(false);
    // A call that answers is never reported as timed out, before or after its deadline.
    const ok = await call(up, 'ok', 300);
    expect(ok).toHaveProperty('result');
    await new Promise((r) => setTimeout(r, 400));
    await up.close();
    expect(await long).toMatchObject({ error: { data: { reason: 'closed' } } });
  });

  it('re-arms after every call finished: a later hanging call still times out', async () => {
    up = await start();
    expect(await call(up, 'ok', 5_000)).toHaveProperty('result');
    expect(await call(up, 'hang', 150)).toMatchObject({ error: { data: { reason: 'timeout' } } });
    expect(await call(up, 'hang', 150)).toMatchObject({ error: { data: { reason: 'timeout' } } });
    expect(await call(up, 'ok', 5_000)).toHaveProperty('result');
  });
});
