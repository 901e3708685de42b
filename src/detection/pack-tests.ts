/**
 * Runs a pack's own test cases (rule → event → match | no_match) through the policy engine, exactly
 * as the gateway would evaluate them. Pure given the pack; no I/O.
 */
import { eventFromJson } from '../events/build.js';
import { formatIssue } from '../errors.js';
import { detectionEngine, type LoadedPack } from './install.js';

export interface PackTestResult {
  pack_id: string;
  rule_id: string;
  name: string;
  expect: 'match' | 'no_match';
  /** undefined when the event itself was invalid. */
  actual: 'match' | 'no_match' | undefined;
  passed: boolean;
  /** Why a case failed: an invalid event, an evaluation error, or the wrong outcome. */
  message?: string;
}

export interface PackTestSummary {
  passed: number;
  failed: number;
  /** Rules without any test case. */
  untested: string[];
  results: PackTestResult[];
}

export function runPackTests(packs: readonly LoadedPack[]): PackTestSummary {
  const { engine } = detectionEngine(packs);
  const results: PackTestResult[] = [];
  const untested: string[] = [];
  for (const { pack, rules } of packs) {
    for (const { rule } of rules) {
      if (rule.tests.length === 0) untested.push(rule.id);
      for (const t of rule.tests) {
        const raw = t.event as Record<string, unknown>;
        const common = (
          typeof raw.common === 'object' && raw.common !== null ? raw.common : {}
        ) as Record<string, unknown>;
        const input = { ...raw, common: { event_type: rule.event_type, ...common } };
        const base = { pack_id: pack.id, rule_id: rule.id, name: t.name, expect: t.expect };
        const ev = eventFromJson(input, { session_id: 'pack-test' });
        if (!ev.ok) {
          results.push({
            ...base,
            actual: undefined,
            passed: false,
            message: `invalid test event: ${ev.issues.map(formatIssue).join('; ')}`,
          });
          continue;
        }
        const decision = engine.decide(ev.value);
        const err = decision.errors.find((e) => e.rule_id === rule.id);
        const actual = decision.findings.some((f) => f.rule_id === rule.id) ? 'match' : 'no_match';
        const passed = actual === t.expect && err === undefined;
        const result: PackTestResult = { ...base, actual, passed };
        if (err !== undefined) result.message = `evaluation error: ${err.message}`;
        else if (!passed) result.message = `expected ${t.expect}, got ${actual}`;
        results.push(result);
      }
    }
  }
  const passed = results.filter((r) => r.passed).length;
  return { passed, failed: results.length - passed, untested, results };
}
