import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One process per test file: each file owns one Dawn device, and Dawn must not be shared.
    pool: 'forks',
    // Lavapipe runs every kernel on the CPU's two cores; more files at once only thrash.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
