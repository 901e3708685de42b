/**
 * Builds dist/ once so integration tests can spawn the real `celgate` binary. tsc emits even when
 * it reports type errors; those are reported by test/architecture.test.ts, so the build here only
 * warns and lets the suite run.
 *
 * Also gives the run its own temporary directory (TMPDIR, inherited by the test workers and every
 * gateway they start) and removes it afterwards, so the scratch dirs, ledgers and sockets the
 * tests create do not pile up in /tmp run after run. The name is short: Unix socket paths live
 * under it and are limited to 107 bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export default function setup(): () => void {
  const scratch = mkdtempSync('/tmp/cgt-');
  process.env.TMPDIR = scratch;
  const root = fileURLToPath(new URL('..', import.meta.url));
  try {
    execFileSync(
      process.execPath,
      [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.build.json`],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    process.stderr.write(
      `warning: tsc reported type errors while building dist/ (see test/architecture.test.ts):\n${out.slice(0, 4000)}\n`,
    );
  }
  return () => rmSync(scratch, { recursive: true, force: true });
}
