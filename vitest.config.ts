import { defineConfig } from 'vitest/config'

const SCALE = 'test/process/scale.test.ts'

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The JSON report is what .ci/run counts; the default one is for people.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    // Two cores: process tests start members of their own; keep files from starving each other.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: ['test/bench/**', 'node_modules/**', SCALE],
        },
      },
      // Thirty member processes judge each other's liveness: they run once
      // everything else is done, so no other file starves them into false
      // suspicions (which the test counts).
      {
        extends: true,
        test: { name: 'scale', include: [SCALE], sequence: { groupOrder: 1 } },
      },
    ],
  },
})
