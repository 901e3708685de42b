/**
 * Runs ONE micro suite in a process of its own for bench/security.ts: imports dist/bench/<name>.js,
 * calls its `run()`, and prints the artifacts it returned as one marked JSON line on stdout. Each
 * suite gets a fresh heap and fresh JIT state, so a suite's numbers do not depend on which suites
 * ran before it (in one shared process the HTTP suite's first-contact p50 measured 5.3–6.0 ms after
 * seven other suites vs 4.0–4.4 ms on its own, the client side carrying the earlier suites' heap).
 *
 * usage: node dist/bench/run-suite.js <name>   (exit 0 after printing; 3 when the module is
 * missing; 1 when it failed, with the reason on stderr)
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, type Artifact } from './artifact.js';

/** Prefix of the result line the orchestrator looks for. */
export const RESULT_MARK = '@@celgate-suite-result ';
export const EXIT_MISSING = 3;

async function main(name: string | undefined): Promise<number> {
  if (name === undefined || !/^[a-z][a-z0-9-]*$/.test(name)) {
    process.stderr.write('usage: run-suite <name>\n');
    return 2;
  }
  const url = pathToFileURL(join(repoRoot(), 'dist', 'bench', `${name}.js`)).href;
  let mod: { run?: () => Promise<Artifact | Artifact[]> };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (err) {
    const missing =
      (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      String((err as Error).message).includes(`${name}.js`);
    process.stderr.write(`${(err as Error).message.split('\n')[0]}\n`);
    return missing ? EXIT_MISSING : 1;
  }
  if (typeof mod.run !== 'function') {
    process.stderr.write('module does not export run()\n');
    return 1;
  }
  const r = await mod.run();
  const artifacts = Array.isArray(r) ? r : [r];
  await new Promise<void>((resolve) =>
    process.stdout.write(`${RESULT_MARK}${JSON.stringify(artifacts)}\n`, () => resolve()),
  );
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv[2]).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
