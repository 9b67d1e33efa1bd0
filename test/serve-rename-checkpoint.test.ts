/**
 * A rename on the live service is written into its checkpoint (atomically), so a restart with
 * `resume` keeps the name (README "Naming your classes").
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { loadCheckpoint } from '../src/learning/checkpoint.js';
import { runService } from '../src/service/run-service.js';
import { tempDir } from './helpers/cli.js';

describe('serve: renames reach the checkpoint', () => {
  it('a WebSocket rename rewrites learning.checkpoint with the new name', async () => {
    const dir = await tempDir('stegostream-rename-ckpt-');
    const ckpt = join(dir, 'head.ckpt');
    const s = await runService(
      parsePipeline(
        `
name: rename-ckpt
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
model: { width: 160, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 3, trainEvery: 100000, checkpoint: ${JSON.stringify(ckpt)} }
sinks:
  - { use: websocket }
`,
        'test',
        {},
      ),
      { logger: pino({ level: 'silent' }), port: 0 },
    );
    try {
      await expect.poll(() => s.engine.headState.version, { timeout: 60_000, interval: 100 }).toBeGreaterThan(0);
      const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/ws`);
      const reply = await new Promise<{ type: string }>((resolve, reject) => {
        ws.on('open', () => ws.send(JSON.stringify({ type: 'control', id: 1, verb: 'rename', classId: 1, name: 'kelp' })));
        ws.on('message', (d: Buffer) => {
          const m = JSON.parse(d.toString()) as { type: string; id?: number };
          if (m.id === 1) resolve(m);
        });
        ws.on('error', reject);
      });
      expect(reply.type).toBe('control-result');
      ws.close();
      await expect
        .poll(async () => (await loadCheckpoint(ckpt).catch(() => undefined))?.names[1], { timeout: 30_000, interval: 100 })
        .toBe('kelp');
    } finally {
      await s.close();
    }
    expect((await loadCheckpoint(ckpt)).names[1]).toBe('kelp');
  });
});
