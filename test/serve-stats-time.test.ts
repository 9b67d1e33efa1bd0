/**
 * A live source's stats rows are dated by the wall clock (README "Statistics files"): `serve`
 * with a scene played in real time and a stats-file sink, in-process.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService } from '../src/service/run-service.js';
import { tempDir } from './helpers/cli.js';

describe('serve: stats files of live sources', () => {
  it('every row carries the wall-clock time of its frame, in UTC with milliseconds', async () => {
    const dir = await tempDir('stegostream-live-time-');
    const path = join(dir, 'reef.csv');
    const before = Date.now();
    const s = await runService(
      parsePipeline(
        `
name: live-time
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
model: { width: 160, batch: { size: 1, maxDelayMs: 0 } }
learning: { classes: 3, trainEvery: 1000 }
sinks:
  - { use: stats-file, with: { path: ${JSON.stringify(join(dir, '{stream}.csv'))} } }
`,
        'test',
        {},
      ),
      { logger: pino({ level: 'silent' }), port: 0 },
    );
    const rows = (): string[][] =>
      existsSync(path)
        ? readFileSync(path, 'utf8')
            .trim()
            .split('\n')
            .slice(1)
            .map((l) => l.split(','))
        : [];
    try {
      await expect.poll(() => rows().length, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(5);
    } finally {
      await s.close();
    }
    const after = Date.now();
    const times = rows().map((r) => r[3] as string);
    for (const t of times) {
      expect(t).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      const ms = Date.parse(t);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
    }
    // Later frames, later times.
    expect([...times].sort()).toEqual(times);
  });
});
