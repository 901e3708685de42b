/**
 * The runtime rule registry: install, update, enable/disable and delete rules while decide() runs.
 * Every change compiles first (a failure leaves the running plan untouched), carries the rule's
 * counters over, bumps the generation and swaps in a new immutable plan in one assignment, so each
 * decision sees either the old plan or the new one. Changing one rule compiles only that rule.
 * Pure; no I/O.
 */
import type { Issue, Validated } from '../errors.js';
import { CelgateError } from '../errors.js';
import { compileCondition, type CompiledCondition } from './compile.js';
import { buildPlan, compiledRule, type CompiledRule, type Plan } from './plan.js';
import { validateRule } from './rules.js';
import {
  MAX_PRIORITY,
  MIN_PRIORITY,
  RULE_ID_PATTERN,
  type RuleDefinition,
  type RuleInfo,
} from './types.js';

export type RegistryListener = (plan: Plan) => void;

function info(rule: CompiledRule): RuleInfo {
  return {
    ...rule.def,
    tags: [...rule.def.tags],
    counters: { ...rule.counters },
    families: [...rule.condition.eventTypes],
  };
}

export class RuleRegistry {
  #entries = new Map<string, CompiledRule>();
  #plan: Plan;
  #defaultAction: 'allow' | 'block';
  #listeners: RegistryListener[] = [];

  constructor(options: { defaultAction?: 'allow' | 'block' } = {}) {
    this.#defaultAction = options.defaultAction ?? 'allow';
    this.#plan = buildPlan([], 0, this.#defaultAction);
  }

  get generation(): number {
    return this.#plan.generation;
  }

  get defaultAction(): 'allow' | 'block' {
    return this.#defaultAction;
  }

  /** The current plan. Take it once per request. */
  snapshot(): Plan {
    return this.#plan;
  }

  onChange(listener: RegistryListener): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Installs a new rule or updates the rule with the same id. */
  install(def: RuleDefinition, compiled?: CompiledCondition): Validated<RuleInfo> {
    const issues = checkDefinition(def);
    if (issues.length > 0) return { ok: false, issues };
    let condition = compiled;
    if (condition === undefined || condition.text !== def.condition) {
      const c = compileCondition(def.condition, {
        origin: def.kind === 'detection' ? 'lowered' : 'author',
      });
      if (!c.ok) return { ok: false, issues: c.issues };
      condition = c.condition;
    }
    const previous = this.#entries.get(def.id);
    const rule = compiledRule(def, condition, previous?.counters);
    const next = new Map(this.#entries);
    next.set(def.id, rule);
    this.#swap(next);
    return { ok: true, value: info(rule) };
  }

  /** Validates an author-written rule object (as in a pack or the control API) and installs it. */
  installRaw(raw: unknown, packId = 'runtime'): Validated<RuleInfo> {
    const v = validateRule(raw);
    if (!v.ok) return v;
    return this.install(
      { ...v.value.spec, pack_id: packId, kind: 'enforcement' },
      v.value.condition,
    );
  }

  setEnabled(id: string, enabled: boolean): RuleInfo {
    const rule = this.#entries.get(id);
    if (rule === undefined) throw new CelgateError('E_RULE_NOT_FOUND', `no rule with id "${id}"`);
    if (rule.def.enabled === enabled) return info(rule);
    const updated = compiledRule({ ...rule.def, enabled }, rule.condition, rule.counters);
    const next = new Map(this.#entries);
    next.set(id, updated);
    this.#swap(next);
    return info(updated);
  }

  delete(id: string): boolean {
    if (!this.#entries.has(id)) return false;
    const next = new Map(this.#entries);
    next.delete(id);
    this.#swap(next);
    return true;
  }

  /**
   * Replaces every rule at once (a reload). All definitions compile first; if any fails, nothing
   * changes. Conditions whose text did not change are reused, and counters carry over by id.
   */
  replaceAll(
    defs: readonly RuleDefinition[],
    defaultAction: 'allow' | 'block' = this.#defaultAction,
    precompiled?: ReadonlyMap<string, CompiledCondition>,
  ): Validated<number> {
    const issues: Issue[] = [];
    const next = new Map<string, CompiledRule>();
    for (const [i, def] of defs.entries()) {
      const defIssues = checkDefinition(def);
      if (next.has(def.id))
        defIssues.push({ path: 'id', message: `duplicate rule id "${def.id}"` });
      if (defIssues.length > 0) {
        issues.push(...defIssues.map((x) => ({ ...x, path: `rules[${i}](${def.id}).${x.path}` })));
        continue;
      }
      const previous = this.#entries.get(def.id);
      let condition =
        previous?.condition.text === def.condition
          ? previous.condition
          : precompiled?.get(def.condition);
      if (condition === undefined) {
        const c = compileCondition(def.condition, {
          origin: def.kind === 'detection' ? 'lowered' : 'author',
        });
        if (!c.ok) {
          issues.push(...c.issues.map((x) => ({ ...x, path: `rules[${i}](${def.id}).${x.path}` })));
          continue;
        }
        condition = c.condition;
      }
      next.set(def.id, compiledRule(def, condition, previous?.counters));
    }
    if (issues.length > 0) return { ok: false, issues };
    this.#defaultAction = defaultAction;
    this.#swap(next);
    return { ok: true, value: next.size };
  }

  get(id: string): RuleInfo | undefined {
    const rule = this.#entries.get(id);
    return rule === undefined ? undefined : info(rule);
  }

  /** Every installed rule (enabled or not) in evaluation order, with a copy of its counters. */
  list(): RuleInfo[] {
    return [...this.#entries.values()]
      .sort((a, b) => a.def.priority - b.def.priority || (a.def.id < b.def.id ? -1 : 1))
      .map(info);
  }

  get size(): number {
    return this.#entries.size;
  }

  #swap(next: Map<string, CompiledRule>): void {
    const plan = buildPlan(next.values(), this.#plan.generation + 1, this.#defaultAction);
    this.#entries = next;
    this.#plan = plan;
    for (const l of this.#listeners) l(plan);
  }
}

function checkDefinition(def: RuleDefinition): Issue[] {
  const issues: Issue[] = [];
  if (typeof def.id !== 'string' || !RULE_ID_PATTERN.test(def.id))
    issues.push({ path: 'id', message: `id "${def.id}" must match ${RULE_ID_PATTERN.source}` });
  if (
    !Number.isInteger(def.priority) ||
    def.priority < MIN_PRIORITY ||
    def.priority > MAX_PRIORITY
  ) {
    issues.push({
      path: 'priority',
      message: `priority must be an integer in ${MIN_PRIORITY}…${MAX_PRIORITY}`,
    });
  }
  if (!['allow', 'block', 'ask'].includes(def.action))
    issues.push({ path: 'action', message: 'action must be allow, block or ask' });
  if (!['enforce', 'shadow'].includes(def.mode))
    issues.push({ path: 'mode', message: 'mode must be enforce or shadow' });
  if (def.kind !== 'enforcement' && def.kind !== 'detection')
    issues.push({ path: 'kind', message: 'kind must be enforcement or detection' });
  return issues;
}
