// Runs the test/detection unit tests without the dist build of global-setup (the end-to-end files need dist):
//   npx vitest run -c test/detection/vitest.unit.config.ts
import { defineConfig } from 'vitest/config';
export default defineConfig({
  root: new URL('../..', import.meta.url).pathname,
  test: {
    include: ['test/detection/**/*.test.ts'],
    exclude: ['test/detection/cli-and-api.test.ts', 'test/detection/correlation-cli.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
  },
});
