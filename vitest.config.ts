import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Stage and service tests start real ffmpeg, nats-server and Chromium processes; on a
    // 2-core machine they must not all run at once.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // expect.poll waits on a condition; its default of 1 s is a wall-clock bet a busy machine
    // loses (npm run test:stress). A condition that holds passes as soon as it does.
    expect: { poll: { timeout: 20_000 } },
  },
});
