/**
 * What the running gateway needs from detection: the configured detection packs lowered to rule
 * definitions (on start and every reload) and the control-API routes `POST /v1/ir/backtest` and
 * `POST /v1/ir/hunt`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Route } from '../control/server.js';
import { backtestHandler, huntHandler } from '../detection/api.js';
import { loadPackTexts, type LoadedPack } from '../detection/install.js';
import type { Issue, Validated } from '../errors.js';
import type { SecurityEvent } from '../events/types.js';
import type { RuleDefinition } from '../policy/types.js';
import { readEvents } from '../store/index.js';
import { SESSION_ID_PATTERN } from './config.js';

/**
 * Detection packs named in the config (`detection:` files, or directories whose top-level *.yaml,
 * *.yml and *.json files are packs), lowered to rule definitions for the live registry; the policy
 * port calls this on start and on every reload, with the packs themselves (for their correlations).
 * Problems come back as issues (the reload is refused).
 */
export function loadDetectionPacks(
  paths: readonly string[],
): Validated<{ definitions: RuleDefinition[]; packs: LoadedPack['pack'][] }> {
  const files: string[] = [];
  const issues: Issue[] = [];
  for (const p of paths) {
    try {
      if (statSync(p).isDirectory()) {
        for (const name of readdirSync(p).sort())
          if (/\.(ya?ml|json)$/.test(name) && statSync(join(p, name)).isFile())
            files.push(join(p, name));
      } else files.push(p);
    } catch (err) {
      issues.push({
        file: p,
        path: '',
        message: `cannot read detection pack: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
    }
  }
  const sources: { text: string; file: string }[] = [];
  for (const file of files) {
    try {
      sources.push({ text: readFileSync(file, 'utf8'), file });
    } catch (err) {
      issues.push({
        file,
        path: '',
        message: `cannot read detection pack: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      });
    }
  }
  const loaded = loadPackTexts(sources);
  if (!loaded.ok) issues.push(...loaded.issues);
  if (issues.length > 0) return { ok: false, issues };
  const packs = loaded.ok ? loaded.value : [];
  return {
    ok: true,
    value: {
      definitions: packs.flatMap((p) => p.rules.map((r) => r.definition)),
      packs: packs.map((p) => p.pack),
    },
  };
}

/** Control-API routes: POST /v1/ir/backtest and POST /v1/ir/hunt (hunt reads this gateway's sessions). */
export function irRoutes(deps: { sessionDb: string; dataDir: string }): Route[] {
  const sessionEvents = (session: string | undefined): Iterable<SecurityEvent> => {
    let db = deps.sessionDb;
    if (session !== undefined) {
      if (!SESSION_ID_PATTERN.test(session)) throw new Error(`"${session}" is not a session id`);
      db = join(deps.dataDir, 'sessions', session, 'session.db');
      if (!existsSync(db)) throw new Error(`no session "${session}"`);
    }
    return readEvents(db);
  };
  return [
    { method: 'POST', path: '/v1/ir/backtest', handler: async (req) => backtestHandler(req.body) },
    {
      method: 'POST',
      path: '/v1/ir/hunt',
      handler: async (req) => huntHandler(req.body, { sessionEvents }),
    },
  ];
}
