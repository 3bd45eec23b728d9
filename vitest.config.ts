import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'services/**/*.test.ts', 'providers/**/*.test.ts', 'config/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/desired-entry-equality.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share one Redis and start servers; two files at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
