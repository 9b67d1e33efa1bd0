/**
 * `serve` killed with SIGKILL mid-stream (no shutdown code runs) and started again with `resume`:
 * the checkpoint loads, the JetStream stats history goes on with no gap beyond the downtime, and
 * a viewer page (headless Chromium) reconnects by itself. Real processes: the CLI, nats-server,
 * Chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import type { Browser } from 'playwright-core';
import type { FrameStats } from '../src/types.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';
import { startCli, tempDir } from './helpers/cli.js';
import { freePort, NatsServer, natsServerMissing } from './helpers/nats-server.js';

const WAIT_MS = 60_000;
const missing = natsServerMissing() ?? chromiumMissing();

describe.skipIf(missing !== undefined)('serve killed with SIGKILL and restarted with resume', () => {
  let server: NatsServer;
  let browser: Browser;
  let nc: NatsConnection | undefined;
  const children: Array<ReturnType<typeof startCli>> = [];

  beforeAll(async () => {
    server = await NatsServer.start();
    browser = await launchChromium();
  });
  afterAll(async () => {
    for (const c of children) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.done));
    await nc?.close();
    await browser?.close();
    await server?.dispose();
  });

  it(
    'loads the checkpoint, keeps the JetStream history without a gap beyond the downtime, and the viewer reconnects',
    { timeout: 240_000 },
    async () => {
      const dir = await tempDir();
      const checkpoint = join(dir, 'head.ckpt');
      const port = await freePort();
      const pipeline = join(dir, 'crash.yaml');
      writeFileSync(
        pipeline,
        `
name: crash-test
service: { host: 127.0.0.1, port: ${port} }
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 20, checkpoint: "${checkpoint}", resume: true }
sinks:
  - use: websocket
  - use: nats
    with: { servers: "${server.url}", jetstream: { stream: CRASH_STATS } }
`,
      );
      const url = `http://127.0.0.1:${port}`;
      const start = (): ReturnType<typeof startCli> => {
        const c = startCli(['serve', pipeline]);
        children.push(c);
        return c;
      };
      const metric = async (name: string): Promise<number> => {
        try {
          const text = await (await fetch(`${url}/metrics`)).text();
          return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
        } catch {
          return NaN;
        }
      };

      const first = start();
      await expect.poll(() => metric('stegostream_head_version'), { timeout: WAIT_MS, interval: 250 }).toBeGreaterThanOrEqual(2);
      await expect.poll(() => existsSync(checkpoint), { timeout: WAIT_MS }).toBe(true);
      nc = await connect({ servers: server.url });
      const jsm = await nc.jetstreamManager();
      await expect.poll(async () => (await jsm.streams.info('CRASH_STATS')).state.messages, { timeout: WAIT_MS }).toBeGreaterThan(5);

      const page = await browser.newPage();
      await page.goto(`${url}/`);
      await page.waitForSelector('#conn .dot.ok', { timeout: WAIT_MS });
      const img = page.locator('.card[data-stream="reef"] img');
      await expect.poll(async () => Number(await img.getAttribute('data-seq')), { timeout: WAIT_MS }).toBeGreaterThan(0);

      const versionBefore = await metric('stegostream_head_version');
      const killedAt = Date.now();
      first.child.kill('SIGKILL');
      expect((await first.done).signal).toBe('SIGKILL');
      // The viewer notices.
      await page.waitForSelector('#conn .dot.bad', { timeout: WAIT_MS });

      const second = start();
      // The checkpoint loads: once in, the service has the head the first run wrote
      // (after every round: the last one, or the one before if the kill came in between).
      // serve answers /metrics while its model loads (it binds its port first): 0 until the head is in.
      await expect.poll(() => metric('stegostream_head_version'), { timeout: WAIT_MS, interval: 100 }).toBeGreaterThan(0);
      const resumedVersion = await metric('stegostream_head_version');
      const firstUpAt = Date.now();
      expect(resumedVersion).toBeGreaterThanOrEqual(Math.max(2, versionBefore - 1));
      // The viewer reconnects by itself (its retry grows to 10 s at most) and frames flow again.
      await page.waitForSelector('#conn .dot.ok', { timeout: WAIT_MS });
      const seqAfter = Number(await img.getAttribute('data-seq'));
      await expect.poll(async () => Number(await img.getAttribute('data-seq')), { timeout: WAIT_MS }).not.toBe(seqAfter);

      // JetStream history: the stats before the kill are kept, and the only gap is the downtime.
      await expect
        .poll(
          async () => {
            const info = await jsm.streams.info('CRASH_STATS');
            const last = await jsm.streams.getMessage('CRASH_STATS', { seq: info.state.last_seq });
            return (JSON.parse(Buffer.from(last.data).toString('utf8')) as FrameStats).capturedAt;
          },
          { timeout: WAIT_MS },
        )
        .toBeGreaterThan(killedAt);
      const info = await jsm.streams.info('CRASH_STATS');
      const captured: number[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage('CRASH_STATS', { seq });
        captured.push((JSON.parse(Buffer.from(m.data).toString('utf8')) as FrameStats).capturedAt);
      }
      const gaps = captured.slice(1).map((t, i) => t - captured[i]!);
      const worst = Math.max(...gaps);
      const worstAt = gaps.indexOf(worst);
      // The widest gap spans the kill, and is no wider than kill-to-restart (plus the frames in flight).
      expect(captured[worstAt]!).toBeLessThanOrEqual(killedAt);
      expect(captured[worstAt + 1]!).toBeGreaterThan(killedAt);
      expect(worst).toBeLessThanOrEqual(firstUpAt - captured[worstAt]! + 10_000);
      // Elsewhere the history is dense (a 10 fps scene).
      const others = gaps.filter((_, i) => i !== worstAt);
      expect(Math.max(...others)).toBeLessThan(5_000);
      console.info(`head v${versionBefore} before the kill, v${resumedVersion} after the restart; downtime gap ${worst} ms`);

      await page.close();
      second.child.kill('SIGTERM');
      await second.done;
    },
  );
});
