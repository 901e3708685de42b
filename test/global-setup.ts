/**
 * Builds dist/ once so integration tests can spawn the real `celgate` binary. tsc emits even when
 * it reports type errors; those are reported by test/architecture.test.ts, so the build here only
 * warns and lets the suite run.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  try {
    execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.build.json`], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const out = String((err as { stdout?: Buffer }).stdout ?? '');
    process.stderr.write(`warning: tsc reported type errors while building dist/ (see test/architecture.test.ts):\n${out.slice(0, 4000)}\n`);
  }
}
