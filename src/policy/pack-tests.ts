/**
 * Pack test cases ("event → expected decision and rule"), kept next to a pack as `<name>.test.yaml`.
 * Parsing and running are pure; the CLI reads the files.
 */
import { parse as parseYaml } from 'yaml';
import type { Issue, Validated } from '../errors.js';
import { eventFromJson } from '../events/build.js';
import type { Decision } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';
import { PolicyEngine } from './engine.js';
import type { PackSet } from './packs.js';
import { RuleRegistry } from './registry.js';

export interface PackCase {
  name: string;
  event: SecurityEvent;
  expect: { action: 'allow' | 'block' | 'error'; rule?: string | null };
}

export interface CaseFile {
  /** Pack files the cases run against, relative to the case file. */
  packs: string[];
  cases: PackCase[];
}

export interface CaseResult {
  name: string;
  ok: boolean;
  decision: Decision;
  expected: PackCase['expect'];
  /** Why it failed, in one sentence. */
  message: string;
}

export function parseCaseFile(text: string, file: string): Validated<CaseFile> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    return {
      ok: false,
      issues: [{ file, path: '', message: `invalid YAML: ${(e as Error).message.split('\n')[0]}` }],
    };
  }
  const issues: Issue[] = [];
  const o = raw as { packs?: unknown; cases?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.cases)) {
    return {
      ok: false,
      issues: [{ file, path: 'cases', message: 'a case file needs a "cases" list' }],
    };
  }
  const packs = Array.isArray(o.packs)
    ? o.packs.filter((p): p is string => typeof p === 'string')
    : [];
  const cases: PackCase[] = [];
  o.cases.forEach((c: unknown, i: number) => {
    const k = c as {
      name?: unknown;
      event?: unknown;
      expect?: { action?: unknown; rule?: unknown };
    };
    const name = typeof k?.name === 'string' ? k.name : `case ${i + 1}`;
    const ev = eventFromJson(k?.event, { session_id: 'pack-test' });
    if (!ev.ok) {
      issues.push(...ev.issues.map((x) => ({ ...x, file, path: `cases[${i}].event.${x.path}` })));
      return;
    }
    const action = k.expect?.action;
    if (action !== 'allow' && action !== 'block' && action !== 'error') {
      issues.push({
        file,
        path: `cases[${i}].expect.action`,
        message: 'expect.action must be allow, block or error',
      });
      return;
    }
    const rule = k.expect?.rule;
    cases.push({
      name,
      event: ev.value,
      expect: {
        action,
        ...(rule === undefined ? {} : { rule: rule === null ? null : String(rule) }),
      },
    });
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { packs, cases } };
}

/** Runs cases against a fresh registry holding exactly the given pack set. */
export function runCases(set: PackSet, cases: readonly PackCase[]): CaseResult[] {
  const registry = new RuleRegistry({ defaultAction: set.defaultAction });
  const loaded = registry.replaceAll(set.rules, set.defaultAction, set.compiled);
  if (!loaded.ok)
    throw new Error(`pack set did not install: ${loaded.issues.map((i) => i.message).join('; ')}`);
  const engine = new PolicyEngine(registry);
  return cases.map((c) => {
    const decision = engine.decide(c.event);
    const actionOk = decision.action === c.expect.action;
    const ruleOk = c.expect.rule === undefined || decision.rule_id === c.expect.rule;
    const ok = actionOk && ruleOk;
    const message = ok
      ? ''
      : `expected ${c.expect.action}${c.expect.rule === undefined ? '' : ` by ${c.expect.rule ?? 'the default action'}`}, got ${decision.action} by ${decision.rule_id ?? 'the default action'} (${decision.reason})`;
    return { name: c.name, ok, decision, expected: c.expect, message };
  });
}
