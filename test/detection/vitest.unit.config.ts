// Local helper (not committed): runs test/detection without the dist build of global-setup.
import { defineConfig } from 'vitest/config';
export default defineConfig({ root: new URL('../..', import.meta.url).pathname, test: { include: ['test/detection/**/*.test.ts'], exclude: ['test/detection/cli-and-api.test.ts'], pool: 'forks', maxWorkers: 1 } });
