/**
 * PolicyPort over src/policy: the live RuleRegistry + PolicyEngine, rule put/delete/validate,
 * evaluation against a supplied pack, and reload of the configured pack files. Rules installed
 * through the API form a runtime overlay that survives reloads (a reload re-reads the files and
 * re-applies the overlay); deleting a rule removes it from the overlay too. Every change compiles
 * first; a refused change or reload leaves the running plan as it was. No I/O besides reading packs.
 */
import type { Issue, Validated } from '../errors.js';
import type { Decision } from '../events/decision.js';
import type { SecurityEvent } from '../events/types.js';
import { PolicyEngine } from '../policy/engine.js';
import { combinePacks, loadPackFiles, packRules, parsePack, type LoadedPack } from '../policy/packs.js';
import { RuleRegistry } from '../policy/registry.js';
import { validatePack, validateRule } from '../policy/rules.js';
import type { RuleDefinition, RuleInfo } from '../policy/types.js';
import type { PolicyPort, ReloadResult, ReloadStats } from './port.js';

export interface PolicyPortOptions {
  /** Pack files/dirs loaded at start and on reload (profile first). */
  packPaths: string[];
  /** More rules loaded with the packs on every reload (Detection IR packs, lowered); optional. */
  extraRules?: () => Validated<RuleDefinition[]>;
  /** More pack texts validated and combined with the files on every reload (the fleet's packs,
   * src/fleet); `file` names the pack's source in issues. */
  extraPacks?: () => readonly { text: string; file: string }[];
  /** Runs first on every reload (SIGHUP, file watch, POST /v1/reload, fleet): e.g. re-read secrets. */
  onReload?: (reason: string) => void;
}

export interface LivePolicyPort extends PolicyPort {
  readonly engine: PolicyEngine;
  readonly registry: RuleRegistry;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function validateAny(input: unknown): Validated<{ rules: number; pack?: ReturnType<typeof validatePack> }> {
  if (typeof input === 'string') {
    const p = parsePack(input);
    return p.ok ? { ok: true, value: { rules: p.value.pack.rules.length } } : p;
  }
  if (isObj(input) && Array.isArray(input.rules)) {
    const p = validatePack(input);
    return p.ok ? { ok: true, value: { rules: p.value.pack.rules.length } } : p;
  }
  const list = Array.isArray(input) ? input : [input];
  const issues: Issue[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of list.entries()) {
    const v = validateRule(raw, Array.isArray(input) ? `[${i}]` : '');
    if (!v.ok) issues.push(...v.issues);
    else if (seen.has(v.value.spec.id)) issues.push({ path: `[${i}].id`, message: `duplicate rule id "${v.value.spec.id}"` });
    else seen.add(v.value.spec.id);
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { rules: list.length } };
}

export function createPolicyPort(opts: PolicyPortOptions): LivePolicyPort {
  const registry = new RuleRegistry();
  const engine = new PolicyEngine(registry);
  const overlay = new Map<string, RuleDefinition>();
  const stats: ReloadStats = { reloads: 0, refused: 0, last_reload_ms: null, last_refusal_ms: null, last_refusal: null };

  return {
    decider: engine,
    engine,
    registry,
    generation: () => registry.generation,
    defaultAction: () => registry.defaultAction,
    listRules: () => registry.list(),
    getRule: (id) => registry.get(id),
    putRule(id: string, input: unknown): Validated<RuleInfo> {
      if (!isObj(input)) return { ok: false, issues: [{ path: '', message: 'a rule must be a JSON object' }] };
      if (input.id !== undefined && input.id !== id) {
        return { ok: false, issues: [{ path: 'id', message: `body id "${String(input.id)}" differs from the path id "${id}"` }] };
      }
      const v = validateRule({ ...input, id });
      if (!v.ok) return v;
      const def: RuleDefinition = { ...v.value.spec, pack_id: registry.get(id)?.pack_id ?? 'runtime', kind: 'enforcement' };
      const out = registry.install(def, v.value.condition);
      if (out.ok) overlay.set(id, def);
      return out;
    },
    setEnabled(id: string, enabled: boolean): RuleInfo | undefined {
      const rule = registry.get(id);
      if (rule === undefined) return undefined;
      const out = registry.setEnabled(id, enabled);
      const kept = overlay.get(id);
      if (kept !== undefined) overlay.set(id, { ...kept, enabled });
      return out;
    },
    deleteRule(id: string): boolean {
      overlay.delete(id);
      return registry.delete(id);
    },
    validate(input: unknown) {
      const v = validateAny(input);
      return v.ok ? { ok: true, value: { rules: v.value.rules } } : v;
    },
    evaluateWithPack(pack: unknown, event: SecurityEvent): Validated<Decision> {
      const parsed = typeof pack === 'string' ? parsePack(pack) : validatePack(pack);
      if (!parsed.ok) return parsed;
      const scratch = new RuleRegistry({ defaultAction: parsed.value.pack.default_action });
      const compiled = new Map(parsed.value.compiled.map((c) => [c.condition.text, c.condition] as const));
      const installed = scratch.replaceAll(packRules(parsed.value), parsed.value.pack.default_action, compiled);
      if (!installed.ok) return installed;
      return { ok: true, value: new PolicyEngine(scratch).decide(event) };
    },
    reload(reason: string): Validated<ReloadResult> {
      const refuse = (issues: Issue[]): Validated<ReloadResult> => {
        stats.refused++;
        stats.last_refusal_ms = Date.now();
        stats.last_refusal = issues.slice(0, 50);
        return { ok: false, issues };
      };
      // Whatever goes wrong while reading packs is a refused reload, never a crash: the running
      // rules stay in force.
      try {
        return reloadOnce(reason, refuse);
      } catch (err) {
        return refuse([{ path: '', message: `reload failed: ${(err as Error).message}` }]);
      }
    },
    reloadStats: () => ({ ...stats, last_refusal: stats.last_refusal === null ? null : [...stats.last_refusal] }),
  };

  function reloadOnce(reason: string, refuse: (issues: Issue[]) => Validated<ReloadResult>): Validated<ReloadResult> {
      opts.onReload?.(reason);
      let set = loadPackFiles(opts.packPaths);
      if (!set.ok) return refuse(set.issues);
      const more = opts.extraPacks?.() ?? [];
      if (more.length > 0) {
        const parsed: LoadedPack[] = [];
        const issues: Issue[] = [];
        for (const p of more) {
          const v = parsePack(p.text, p.file);
          if (v.ok) parsed.push(v.value);
          else issues.push(...v.issues);
        }
        if (issues.length > 0) return refuse(issues);
        set = combinePacks([...set.value.packs, ...parsed]);
        if (!set.ok) return refuse(set.issues);
      }
      const byId = new Map(set.value.rules.map((r) => [r.id, r] as const));
      const extra = opts.extraRules?.() ?? { ok: true as const, value: [] };
      if (!extra.ok) return refuse(extra.issues);
      const clashes = extra.value.filter((d) => byId.has(d.id)).map((d) => ({ path: d.id, message: `rule id "${d.id}" is used by a pack rule and a detection rule` }));
      if (clashes.length > 0) return refuse(clashes);
      for (const def of extra.value) byId.set(def.id, def);
      for (const [id, def] of overlay) byId.set(id, def);
      const out = registry.replaceAll([...byId.values()], set.value.defaultAction, set.value.compiled);
      if (!out.ok) return refuse(out.issues);
      stats.reloads++;
      stats.last_reload_ms = Date.now();
      return { ok: true, value: { generation: registry.generation, rules: out.value, files: set.value.packs.map((p) => p.file) } };
  }
}
