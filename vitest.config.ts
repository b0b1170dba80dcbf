import { defineConfig } from 'vitest/config'

// Unit tests live beside the code (src/**/*.test.ts); slow tests that need the
// real kernel or a real database live in test/ and run in one fork at a time,
// because they share the machine's network namespaces and OVS instance.
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      { test: { name: 'unit', include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts', 'test/*.test.ts'] } },
      {
        test: {
          name: 'system',
          include: [
            'test/netns/**/*.test.ts',
            'test/store/**/*.test.ts',
            'test/api/**/*.test.ts',
            'test/e2e/**/*.test.ts',
          ],
          pool: 'forks',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
})
