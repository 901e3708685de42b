import { defineConfig } from 'vitest/config';
export default defineConfig({ root: '/work/main', test: { include: ['test/mcp/**/*.test.ts'], pool: 'forks', maxWorkers: 1, testTimeout: 30000, hookTimeout: 60000 } });
