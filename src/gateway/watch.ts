/**
 * Rule-file watching: a change under a pack path (a file, or a directory of packs) reloads the
 * packs once the writer has finished. Directories are watched, not files: an editor's atomic save
 * (write a temp file, rename it over the pack) replaces the file, and a watch on the old file would
 * never fire again.
 */
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from './logger.js';

/** Rule-file changes within this window cause one reload. */
export const WATCH_DEBOUNCE_MS = 250;

/**
 * Whether no pack file under `paths` was modified within the last WATCH_DEBOUNCE_MS: a file a slow
 * writer is still writing is not reloaded yet (the watcher looks again after the debounce).
 */
function packFilesStable(paths: readonly string[]): boolean {
  const now = Date.now();
  for (const p of paths) {
    let files: string[];
    try {
      files = statSync(p).isDirectory()
        ? readdirSync(p)
            .filter((f) => /\.ya?ml$/.test(f))
            .map((f) => join(p, f))
        : [p];
    } catch {
      continue;
    }
    for (const f of files) {
      try {
        if (now - statSync(f).mtimeMs < WATCH_DEBOUNCE_MS) return false;
      } catch {
        /* gone between readdir and stat: the reload reports it */
      }
    }
  }
  return true;
}

/** Watches `paths` (pack files or directories) and calls `reload('watch')` after each change. */
export function watchRulePaths(
  paths: readonly string[],
  reload: (reason: string) => void,
  logger: Logger,
): { close(): void } {
  // A directory maps to null (every *.yaml in it counts); a file's directory to the names watched.
  const dirs = new Map<string, Set<string> | null>();
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      /* a missing file: watch its directory for it to appear */
    }
    if (isDir) dirs.set(p, null);
    else {
      const names = dirs.get(dirname(p)) ?? new Set<string>();
      if (names !== null) names.add(basename(p));
      if (!dirs.has(dirname(p)) || dirs.get(dirname(p)) !== null) dirs.set(dirname(p), names);
    }
  }
  let debounce: NodeJS.Timeout | null = null;
  const schedule = () => {
    if (debounce !== null) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      // Reload only files that have stopped changing: a slow writer is read whole.
      if (!packFilesStable(paths)) return schedule();
      reload('watch');
    }, WATCH_DEBOUNCE_MS);
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of dirs) {
    try {
      watchers.push(
        watch(dir, { persistent: false }, (_event, name) => {
          if (names !== null && (name === null || !names.has(String(name)))) return;
          if (names === null && name !== null && !/\.ya?ml$/.test(String(name))) return;
          schedule();
        }),
      );
    } catch (err) {
      logger.warn({ path: dir, err: (err as Error).message }, 'cannot watch rule path');
    }
  }
  return {
    close() {
      for (const w of watchers) w.close();
      if (debounce !== null) clearTimeout(debounce);
    },
  };
}
