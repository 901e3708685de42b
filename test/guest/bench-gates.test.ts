import { describe, expect, it } from 'vitest';
import { summarize, type Artifact } from '../../bench/artifact.js';
import { processLane } from '../../bench/guest-lane-process.js';
import { runLane } from '../../bench/guest-lanes.js';
import { netnsAvailability, resetNetnsAvailability } from '../../bench/guest-netns.js';
import { judge, loadGates, type Gate } from '../../bench/security.js';

const lane = (name: string, status: Artifact['status'], values: number[] = []): Artifact => ({
  schema: 'celgate.benchmark-artifact/v1',
  version: 1,
  kind: 'guest',
  name,
  status,
  run_id: 't',
  created_at: '',
  git: { commit: 'x', dirty: false },
  host: { cpu_model: '', cores: 2, memory_bytes: 0, os: '', node: '' },
  runs: values.length,
  results: values.length === 0 ? {} : { op_ms: summarize(values) },
  assertions: [],
});

const gate = (kind: Gate['kind'], max: number): Gate => ({
  id: `dns.${kind}`,
  kind,
  lane: 'dns',
  result: 'op_ms',
  stat: 'mean',
  max_ms: max,
});

describe('bench:security gates', () => {
  it('loads bench/gates.json with reference gates for every lane', () => {
    const gates = loadGates();
    for (const l of ['process', 'http', 'dns', 'mcp']) {
      expect(gates.some((g) => g.lane === l && g.kind === 'reference')).toBe(true);
      expect(gates.some((g) => g.lane === l && g.kind === 'tight')).toBe(true);
    }
  });

  it('passes a gate that holds and fails one that does not', () => {
    const lanes = new Map([['dns', lane('dns', 'passed', [1, 2, 3])]]);
    expect(judge([gate('reference', 5)], lanes)[0]!.status).toBe('pass');
    expect(judge([gate('tight', 1)], lanes)[0]!.status).toBe('fail');
  });

  it('reports a missed goal without failing it', () => {
    const lanes = new Map([['dns', lane('dns', 'passed', [10])]]);
    expect(judge([gate('goal', 1)], lanes)[0]!.status).toBe('missed');
  });

  it('fails every gate of a lane whose assertions failed, however fast it was', () => {
    const lanes = new Map([['dns', lane('dns', 'failed')]]);
    const [o] = judge([gate('reference', 1000)], lanes);
    expect(o!.status).toBe('fail');
    expect(o!.detail).toMatch(/no time recorded/);
  });

  it('skips the gates of a skipped or absent lane', () => {
    expect(
      judge(
        [gate('reference', 1)],
        new Map([['dns', { ...lane('dns', 'skipped'), skip_reason: 'no netns' }]]),
      )[0]!.status,
    ).toBe('skipped');
    expect(judge([gate('reference', 1)], new Map())[0]!.status).toBe('skipped');
  });
});

describe('guest lanes without namespaces', () => {
  it('are reported as skipped with the reason, never run on the host', async () => {
    process.env.CELGATE_GUEST_NETNS = 'off';
    resetNetnsAvailability();
    try {
      expect(netnsAvailability()).toEqual({
        ok: false,
        reason: 'guest namespaces unavailable: disabled by CELGATE_GUEST_NETNS=off',
      });
      const a = await runLane(processLane, { runs: 2, broken: false, write: false });
      expect(a).toMatchObject({
        status: 'skipped',
        results: {},
        skip_reason: expect.stringContaining('CELGATE_GUEST_NETNS=off'),
      });
    } finally {
      delete process.env.CELGATE_GUEST_NETNS;
      resetNetnsAvailability();
    }
  });
});
