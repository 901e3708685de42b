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
import {
  combinePacks,
  loadPackFiles,
  packRules,
  parsePack,
  type LoadedPack,
} from '../policy/packs.js';
import { RuleRegistry } from '../policy/registry.js';
import { validatePack, validateRule } from '../policy/rules.js';
import type { RuleDefinition, RuleInfo } from '../policy/types.js';
import type { PolicyPort, ReloadResult, ReloadStats } from './port.js';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

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
  /** Where runtime rule changes (API installs, updates, enables/disables, deletions) are kept
   * across restarts, e.g. `<data_dir>/runtime-rules.json`; none when undefined. */
  overlayFile?: string;
}

/** What survives a restart of the runtime changes (the file `overlayFile` holds). */
interface OverlayState {
  /** Rules installed or updated through the API, by id. */
  rules: Record<string, RuleDefinition>;
  /** Enabled flags set through the API for rules from packs, by id. */
  enabled: Record<string, boolean>;
  /** Pack rules deleted through the API (they stay deleted across reloads). */
  deleted: string[];
}

export interface LivePolicyPort extends PolicyPort {
  readonly engine: PolicyEngine;
  readonly registry: RuleRegistry;
  /**
   * Installs or replaces a rule for the rest of this process (pack id `approvals`): it survives
   * reloads but is not written to the overlay file, so a restart forgets it (docs/approvals.md,
   * `remember: session`). Deleting it through the API removes it.
   */
  putSessionRule(id: string, input: unknown): Validated<RuleInfo>;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function validateAny(
  input: unknown,
): Validated<{ rules: number; pack?: ReturnType<typeof validatePack> }> {
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
    else if (seen.has(v.value.spec.id))
      issues.push({ path: `[${i}].id`, message: `duplicate rule id "${v.value.spec.id}"` });
    else seen.add(v.value.spec.id);
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { rules: list.length } };
}

/** The definition part of a RuleInfo (without counters and families). */
function stripInfo(r: RuleInfo): RuleDefinition {
  const { counters: _c, families: _f, ...def } = r;
  return def;
}

export function createPolicyPort(opts: PolicyPortOptions): LivePolicyPort {
  const registry = new RuleRegistry();
  const engine = new PolicyEngine(registry);
  const overlay = new Map<string, RuleDefinition>();
  const enabledFlags = new Map<string, boolean>();
  const deleted = new Set<string>();
  const sessionRules = new Map<string, RuleDefinition>();
  if (opts.overlayFile !== undefined) {
    let raw: OverlayState | null = null;
    try {
      raw = JSON.parse(readFileSync(opts.overlayFile, 'utf8')) as OverlayState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`${opts.overlayFile}: ${(err as Error).message}`);
    }
    for (const [id, def] of Object.entries(raw?.rules ?? {})) overlay.set(id, def);
    for (const [id, on] of Object.entries(raw?.enabled ?? {})) enabledFlags.set(id, on);
    for (const id of raw?.deleted ?? []) deleted.add(id);
  }
  /** Writes the runtime changes (atomically: a temp file renamed over the old one). */
  const persist = () => {
    if (opts.overlayFile === undefined) return;
    const state: OverlayState = {
      rules: Object.fromEntries(overlay),
      enabled: Object.fromEntries(enabledFlags),
      deleted: [...deleted],
    };
    const tmp = `${opts.overlayFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, opts.overlayFile);
  };
  const stats: ReloadStats = {
    reloads: 0,
    refused: 0,
    last_reload_ms: null,
    last_refusal_ms: null,
    last_refusal: null,
  };

  return {
    decider: engine,
    engine,
    registry,
    generation: () => registry.generation,
    defaultAction: () => registry.defaultAction,
    listRules: () => registry.list(),
    getRule: (id) => registry.get(id),
    putRule(id: string, input: unknown): Validated<RuleInfo> {
      if (!isObj(input))
        return { ok: false, issues: [{ path: '', message: 'a rule must be a JSON object' }] };
      if (input.id !== undefined && input.id !== id) {
        return {
          ok: false,
          issues: [
            {
              path: 'id',
              message: `body id "${String(input.id)}" differs from the path id "${id}"`,
            },
          ],
        };
      }
      const v = validateRule({ ...input, id });
      if (!v.ok) return v;
      const def: RuleDefinition = {
        ...v.value.spec,
        pack_id: registry.get(id)?.pack_id ?? 'runtime',
        kind: 'enforcement',
      };
      const out = registry.install(def, v.value.condition);
      if (out.ok) {
        overlay.set(id, def);
        deleted.delete(id);
        enabledFlags.delete(id);
        persist();
      }
      return out;
    },
    putSessionRule(id: string, input: unknown): Validated<RuleInfo> {
      if (!isObj(input))
        return { ok: false, issues: [{ path: '', message: 'a rule must be a JSON object' }] };
      const v = validateRule({ ...input, id });
      if (!v.ok) return v;
      const def: RuleDefinition = { ...v.value.spec, pack_id: 'approvals', kind: 'enforcement' };
      const out = registry.install(def, v.value.condition);
      if (out.ok) sessionRules.set(id, def);
      return out;
    },
    putRules(inputs: unknown[]): Validated<RuleInfo[]> {
      const issues: Issue[] = [];
      const defs: RuleDefinition[] = [];
      const seen = new Set<string>();
      for (const [i, input] of inputs.entries()) {
        const v = validateRule(input, `rules[${i}]`);
        if (!v.ok) {
          issues.push(...v.issues);
          continue;
        }
        if (seen.has(v.value.spec.id))
          issues.push({
            path: `rules[${i}].id`,
            message: `duplicate rule id "${v.value.spec.id}"`,
          });
        seen.add(v.value.spec.id);
        defs.push({
          ...v.value.spec,
          pack_id: registry.get(v.value.spec.id)?.pack_id ?? 'runtime',
          kind: 'enforcement',
        });
      }
      if (issues.length > 0) return { ok: false, issues };
      // One replaceAll: every rule compiles first, and either all are in the plan or none.
      const byId = new Map(registry.list().map((r) => [r.id, stripInfo(r)] as const));
      for (const d of defs) byId.set(d.id, d);
      const out = registry.replaceAll([...byId.values()], registry.defaultAction);
      if (!out.ok) return out;
      for (const d of defs) {
        overlay.set(d.id, d);
        deleted.delete(d.id);
        enabledFlags.delete(d.id);
      }
      persist();
      return { ok: true, value: defs.map((d) => registry.get(d.id)!) };
    },
    setEnabled(id: string, enabled: boolean): RuleInfo | undefined {
      const rule = registry.get(id);
      if (rule === undefined) return undefined;
      const out = registry.setEnabled(id, enabled);
      const kept = overlay.get(id);
      if (kept !== undefined) overlay.set(id, { ...kept, enabled });
      else enabledFlags.set(id, enabled);
      persist();
      return out;
    },
    deleteRule(id: string): boolean {
      const wasSession = sessionRules.delete(id);
      const wasOverlay = overlay.delete(id);
      const out = registry.delete(id);
      enabledFlags.delete(id);
      // A pack rule deleted at runtime stays deleted across reloads and restarts.
      if (out && !wasOverlay && !wasSession) deleted.add(id);
      if (out || wasOverlay) persist();
      return out;
    },
    validate(input: unknown) {
      const v = validateAny(input);
      return v.ok ? { ok: true, value: { rules: v.value.rules } } : v;
    },
    evaluateWithPack(pack: unknown, event: SecurityEvent): Validated<Decision> {
      const parsed = typeof pack === 'string' ? parsePack(pack) : validatePack(pack);
      if (!parsed.ok) return parsed;
      const scratch = new RuleRegistry({ defaultAction: parsed.value.pack.default_action });
      const compiled = new Map(
        parsed.value.compiled.map((c) => [c.condition.text, c.condition] as const),
      );
      const installed = scratch.replaceAll(
        packRules(parsed.value),
        parsed.value.pack.default_action,
        compiled,
      );
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
    reloadStats: () => ({
      ...stats,
      last_refusal: stats.last_refusal === null ? null : [...stats.last_refusal],
    }),
  };

  function reloadOnce(
    reason: string,
    refuse: (issues: Issue[]) => Validated<ReloadResult>,
  ): Validated<ReloadResult> {
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
    const clashes = extra.value
      .filter((d) => byId.has(d.id))
      .map((d) => ({
        path: d.id,
        message: `rule id "${d.id}" is used by a pack rule and a detection rule`,
      }));
    if (clashes.length > 0) return refuse(clashes);
    for (const def of extra.value) byId.set(def.id, def);
    for (const [id, def] of overlay) byId.set(id, def);
    for (const [id, def] of sessionRules) byId.set(id, def);
    for (const id of deleted) byId.delete(id);
    for (const [id, on] of enabledFlags) {
      const def = byId.get(id);
      if (def !== undefined) byId.set(id, { ...def, enabled: on });
    }
    const out = registry.replaceAll(
      [...byId.values()],
      set.value.defaultAction,
      set.value.compiled,
    );
    if (!out.ok) return refuse(out.issues);
    stats.reloads++;
    stats.last_reload_ms = Date.now();
    return {
      ok: true,
      value: {
        generation: registry.generation,
        rules: out.value,
        files: set.value.packs.map((p) => p.file),
      },
    };
  }
}
