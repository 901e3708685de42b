/**
 * Fleet policy: the packs in the `celgate-packs` KV bucket (key = pack id, value = the pack's YAML)
 * are installed on every gateway, together with its local packs, with the same validation as a
 * local reload. A set of packs the gateway refuses leaves the running rules as they were; only an
 * accepted set is kept (in memory and in `<data_dir>/fleet/packs.json`, so a restart while NATS is
 * unreachable still enforces the fleet's last accepted policy).
 *
 * Owns: the accepted / candidate pack sets and the KV watch. Must not: parse packs itself (the
 * policy port does, on reload) or decide anything.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KV } from '@nats-io/kv';
import type { Issue, Validated } from '../errors.js';

/** What a reload reports back (the policy port's ReloadResult has more). */
export interface FleetReload {
  generation: number;
}

export interface FleetPack {
  /** The KV key: the pack id. */
  key: string;
  /** The KV revision that wrote this value. */
  revision: number;
  text: string;
}

export type FleetPolicyState = 'local' | 'cached' | 'applied' | 'refused';

export interface FleetPolicyStatus {
  state: FleetPolicyState;
  /** The bucket revision the running rules reflect (0: none yet). */
  revision: number;
  /** The packs (key → revision) the running rules include. */
  packs: Record<string, number>;
  /** The newest revision seen, also when it was refused. */
  seen_revision: number;
  last_error: string | null;
  last_error_revision: number | null;
  applied_ms: number | null;
}

interface CacheFile {
  revision: number;
  packs: FleetPack[];
}

/** How an issue list is summarised in a status record and a log line. */
export function issueSummary(issues: readonly Issue[], max = 3): string {
  const parts = issues
    .slice(0, max)
    .map((i) =>
      `${i.file ?? ''}${i.line === undefined ? '' : `:${i.line}`}${i.column === undefined ? '' : `:${i.column}`} ${i.path === '' ? '' : `${i.path}: `}${i.message}`.trim(),
    );
  return `${parts.join('; ')}${issues.length > max ? `; and ${issues.length - max} more` : ''}`;
}

export class FleetPolicy {
  private accepted: FleetPack[] = [];
  private acceptedRevision = 0;
  private candidate: FleetPack[] | null = null;
  private readonly status_: FleetPolicyStatus = {
    state: 'local',
    revision: 0,
    packs: {},
    seen_revision: 0,
    last_error: null,
    last_error_revision: null,
    applied_ms: null,
  };

  constructor(
    private readonly bucket: string,
    private readonly cacheFile: string,
  ) {}

  /** The pack texts the next reload combines with the local packs (the policy port's `extraPacks`). */
  packTexts(): { text: string; file: string }[] {
    return (this.candidate ?? this.accepted).map((p) => ({
      text: p.text,
      file: `nats:${this.bucket}/${p.key}@${p.revision}`,
    }));
  }

  status(): FleetPolicyStatus {
    return { ...this.status_, packs: { ...this.status_.packs } };
  }

  /** Loads the last accepted set from disk; returns how many packs it holds. */
  loadCache(): number {
    let cache: CacheFile;
    try {
      cache = JSON.parse(readFileSync(this.cacheFile, 'utf8')) as CacheFile;
    } catch {
      return 0;
    }
    if (
      !Array.isArray(cache.packs) ||
      !cache.packs.every(
        (p) =>
          typeof p?.key === 'string' && typeof p.text === 'string' && Number.isInteger(p.revision),
      )
    )
      return 0;
    this.accepted = cache.packs;
    this.acceptedRevision = Number.isInteger(cache.revision) ? cache.revision : 0;
    this.status_.state = 'cached';
    this.status_.revision = this.acceptedRevision;
    this.status_.packs = Object.fromEntries(cache.packs.map((p) => [p.key, p.revision]));
    return cache.packs.length;
  }

  /** Forgets a cached set that no longer loads (the start-up reload refused it). */
  dropCache(reason: string): void {
    this.accepted = [];
    this.acceptedRevision = 0;
    this.status_.state = 'local';
    this.status_.revision = 0;
    this.status_.packs = {};
    this.status_.last_error = `cached fleet packs refused: ${reason}`;
  }

  /**
   * Tries `packs` (the bucket at `revision`) through `reload`; keeps them when the reload is
   * accepted, otherwise keeps the running set and records why.
   */
  apply(
    packs: FleetPack[],
    revision: number,
    reload: () => Validated<FleetReload>,
  ): Validated<FleetReload> {
    this.status_.seen_revision = Math.max(this.status_.seen_revision, revision);
    this.candidate = packs;
    let out: Validated<FleetReload>;
    try {
      out = reload();
    } finally {
      this.candidate = null;
    }
    if (out.ok) {
      this.accepted = packs;
      this.acceptedRevision = revision;
      this.status_.state = 'applied';
      this.status_.revision = revision;
      this.status_.packs = Object.fromEntries(packs.map((p) => [p.key, p.revision]));
      this.status_.applied_ms = Date.now();
      this.saveCache();
    } else {
      this.status_.state = 'refused';
      this.status_.last_error = issueSummary(out.issues);
      this.status_.last_error_revision = revision;
    }
    return out;
  }

  private saveCache(): void {
    try {
      mkdirSync(dirname(this.cacheFile), { recursive: true, mode: 0o700 });
      const tmp = `${this.cacheFile}.tmp`;
      writeFileSync(
        tmp,
        JSON.stringify({
          revision: this.acceptedRevision,
          packs: this.accepted,
        } satisfies CacheFile),
        { mode: 0o600 },
      );
      renameSync(tmp, this.cacheFile);
    } catch {
      // The cache only helps a restart without NATS; enforcement does not depend on it.
    }
  }
}

/**
 * Follows the bucket: every change (and the initial snapshot, once complete) becomes one `onSet`
 * call with the whole set and the newest revision. Ends when the watch is stopped.
 */
export async function watchPacks(
  kv: KV,
  onSet: (packs: FleetPack[], revision: number) => void,
  signal: { stopped: boolean },
): Promise<{ stop(): void }> {
  const current = new Map<string, FleetPack>();
  let revision = 0;
  const watch = await kv.watch({ key: '>' });
  const emit = () =>
    onSet(
      [...current.values()].sort((a, b) => a.key.localeCompare(b.key)),
      revision,
    );
  // An empty bucket delivers nothing: the (empty) snapshot is complete at once.
  const status = await kv.status();
  if (status.values === 0) emit();
  void (async () => {
    for await (const e of watch) {
      if (signal.stopped) break;
      revision = Math.max(revision, e.revision);
      if (e.operation === 'PUT')
        current.set(e.key, { key: e.key, revision: e.revision, text: e.string() });
      else current.delete(e.key);
      if ((e.delta ?? 0) === 0) emit();
    }
  })();
  return { stop: () => watch.stop() };
}
