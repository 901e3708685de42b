import { readFileSync } from 'node:fs';
import { eventFromJson } from '../../src/events/build.js';
import type { SecurityEvent } from '../../src/events/types.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RuleRegistry } from '../../src/policy/registry.js';
import type { RuleSpec } from '../../src/policy/types.js';

export const FIXTURES = new URL('../fixtures/events/', import.meta.url);

export function fixture(name: string): SecurityEvent {
  const parsed = eventFromJson(JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')));
  if (!parsed.ok) throw new Error(`fixture ${name}: ${JSON.stringify(parsed.issues)}`);
  return parsed.value;
}

export function event(json: unknown): SecurityEvent {
  const parsed = eventFromJson(json);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.value;
}

/** The five reference expressions (test/fixtures/policy/reference-expressions.json). */
export const REFERENCE_EXPRESSIONS: readonly string[] = JSON.parse(
  readFileSync(new URL('../fixtures/policy/reference-expressions.json', import.meta.url), 'utf8'),
);

export const FULL_POLICY = REFERENCE_EXPRESSIONS.join(' && ');

export function engineWith(rules: Partial<RuleSpec>[], defaultAction: 'allow' | 'block' = 'allow') {
  const registry = new RuleRegistry({ defaultAction });
  for (const r of rules) {
    const res = registry.installRaw({ action: 'block', reason: `reason of ${r.id}`, ...r });
    if (!res.ok) throw new Error(`${r.id}: ${JSON.stringify(res.issues)}`);
  }
  return { registry, engine: new PolicyEngine(registry) };
}
