import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // interop tests share network namespaces and ports: run files one at a time
    fileParallelism: false,
    pool: 'forks',
  },
});
