/**
 * Turns validated IR packs into installable policy rules: lower each rule to CEL, compile it with the
 * policy compiler (so a lowered rule can never read a field the contract lacks), and wrap it as a
 * `RuleDefinition` of kind `detection` with its finding metadata. Also builds a stand-alone engine
 * over a set of packs for pack tests, backtest and hunt. Pure; no I/O.
 */
import type { Issue, Validated } from '../errors.js';
import { compileCondition, type CompiledCondition } from '../policy/compile.js';
import { PolicyEngine } from '../policy/engine.js';
import { RuleRegistry } from '../policy/registry.js';
import type { RuleDefinition } from '../policy/types.js';
import { lowerRule, type LoweredRule } from './lower.js';
import { checkPackSet, validatePackText } from './validate.js';
import type { IrPack, IrRule } from './types.js';

/** Detect-only rules never decide; `action: block` rules run at this priority among enforcement rules. */
export const DETECTION_PRIORITY = 0;

export interface CompiledIrRule extends LoweredRule {
  compiled: CompiledCondition;
  definition: RuleDefinition;
}

export interface LoadedPack {
  pack: IrPack;
  rules: CompiledIrRule[];
}

export function ruleDefinition(pack: IrPack, lowered: LoweredRule): RuleDefinition {
  const r: IrRule = lowered.rule;
  return {
    id: r.id,
    description: r.description || r.title,
    condition: lowered.condition,
    action: r.action === 'block' ? 'block' : 'allow',
    priority: DETECTION_PRIORITY,
    mode: 'enforce',
    reason: `Detection "${r.title}" (pack ${pack.id}, severity ${r.severity})`,
    enabled: true,
    severity: r.severity,
    tags: [...r.tags],
    pack_id: pack.id,
    kind: 'detection',
    detection: {
      title: r.title,
      confidence: r.confidence,
      tags: [...r.tags],
      matched_fields: lowered.matched_fields,
    },
  };
}

/** Lowers and compiles every rule of a validated pack; compile problems come back as issues. */
export function compilePack(pack: IrPack): Validated<LoadedPack> {
  const issues: Issue[] = [];
  const rules: CompiledIrRule[] = [];
  pack.rules.forEach((rule, i) => {
    let lowered: LoweredRule;
    try {
      lowered = lowerRule(rule);
    } catch (err) {
      issues.push(at(pack, rule, i, `cannot lower: ${(err as Error).message}`));
      return;
    }
    const c = compileCondition(lowered.condition, {
      origin: 'lowered',
      skeleton: lowered.skeleton,
    });
    if (!c.ok) {
      for (const issue of c.issues)
        issues.push(
          at(
            pack,
            rule,
            i,
            `lowered CEL does not compile: ${issue.message} (celgate ir lower prints it)`,
          ),
        );
      return;
    }
    rules.push({ ...lowered, compiled: c.condition, definition: ruleDefinition(pack, lowered) });
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { pack, rules } };
}

function at(pack: IrPack, rule: IrRule, i: number, message: string): Issue {
  return {
    ...(pack.file === undefined ? {} : { file: pack.file }),
    ...(rule.line === undefined ? {} : { line: rule.line }),
    path: `rules[${i}]`,
    message,
  };
}

/** validate → lower → compile, for one pack text. */
export function loadPackText(text: string, file?: string): Validated<LoadedPack> {
  const v = validatePackText(text, file === undefined ? {} : { file });
  return v.ok ? compilePack(v.value) : v;
}

/** Loads several pack texts and checks them as a set (duplicate pack and rule ids). */
export function loadPackTexts(
  sources: readonly { text: string; file?: string }[],
): Validated<LoadedPack[]> {
  const issues: Issue[] = [];
  const loaded: LoadedPack[] = [];
  for (const s of sources) {
    const r = loadPackText(s.text, s.file);
    if (r.ok) loaded.push(r.value);
    else issues.push(...r.issues);
  }
  issues.push(...checkPackSet(loaded.map((l) => l.pack)));
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: loaded };
}

/** A registry + engine holding only the given packs' rules (default action allow). */
export function detectionEngine(packs: readonly LoadedPack[]): {
  engine: PolicyEngine;
  registry: RuleRegistry;
} {
  const registry = new RuleRegistry({ defaultAction: 'allow' });
  for (const p of packs) {
    for (const r of p.rules) {
      const res = registry.install(r.definition, r.compiled);
      if (!res.ok)
        throw new Error(
          `rule "${r.rule.id}" did not install: ${res.issues.map((x) => x.message).join('; ')}`,
        );
    }
  }
  return { engine: new PolicyEngine(registry), registry };
}
