/** Packs with correlations and timed events, for the correlation tests and the bench. */
import { stringify } from 'yaml';
import type { SecurityEvent } from '../../src/events/types.js';
import { event } from './helpers.js';

/** A pack of rules matching `process.activity.executable == <rule id>` plus the given correlations. */
export function correlationPack(
  ruleIds: readonly string[],
  correlations: readonly Record<string, unknown>[],
  id = 'corr-pack',
): string {
  return stringify({
    schema: 'celgate.detection-ir/v1',
    id,
    version: '1',
    status: 'active',
    owner: 'tests',
    rules: ruleIds.map((r) => ({
      id: r,
      title: `rule ${r}`,
      event_type: 'process.exec',
      severity: 'low',
      confidence: 0.5,
      match: { field: 'process.activity.executable', equals: [r] },
    })),
    correlations,
  });
}

let seq = 0;

/** A process.exec event whose executable names the rule it matches; `cwd` is a group-by value. */
export function exec(
  executable: string,
  ts: number,
  cwd = '/',
  command = executable,
): SecurityEvent {
  return event({
    common: { event_type: 'process.exec', timestamp_ms: ts, event_id: `e${++seq}` },
    process: { activity: { executable, argv: [executable], command, cwd } },
  });
}

/** A dns.response event as the DNS transport builds it. */
export function dnsAnswer(qname: string, rcode: string, ts: number): SecurityEvent {
  return event({
    common: { event_type: 'dns.response', timestamp_ms: ts, event_id: `d${++seq}` },
    dns: { request: { qname, qtype: 'A', transport: 'udp' }, response: { rcode } },
  });
}
