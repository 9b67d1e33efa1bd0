import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlError } from '../src/errors.js';
import { assertClassId, type ControlHandler } from '../src/sinks/control.js';
import { startHttpService, type HttpService } from '../src/service/http-server.js';
import { createWsHub, type WsHub } from '../src/sinks/ws-hub.js';
import type { ClassInfo, FrameStats } from '../src/types.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';

const silent = pino({ level: 'silent' });
const missing = chromiumMissing();
const W = 480;
const H = 270;

const LEGEND: ClassInfo[] = [
  { id: 0, name: 'open water', color: [38, 110, 190] },
  { id: 1, name: 'sand', color: [214, 186, 120] },
  { id: 2, name: 'class 2', color: [70, 170, 90] },
  { id: 3, name: 'coral', color: [230, 110, 90] },
  { id: 4, name: 'fish', color: [245, 215, 60] },
];

function control(): ControlHandler {
  let classes = LEGEND;
  let learning = 'running';
  return {
    renameClass(id, name) {
      assertClassId(classes, id);
      if (name === 'forbidden') throw new ControlError('Name "forbidden" is reserved. Choose another name.');
      classes = classes.map((c) => (c.id === id ? { ...c, name } : c));
      return classes;
    },
    pauseLearning: () => void (learning = 'paused'),
    resumeLearning: () => void (learning = 'running'),
    snapshotHead: () => Promise.resolve({ path: 'heads/head.json', version: 1 }),
    status: () => ({ learning }),
  };
}

/** Class shares that drift smoothly over time, summing to 1. */
function shares(stream: number, t: number): number[] {
  const raw = LEGEND.map((_, i) => 1.2 + Math.sin(t / (2.5 + i) + i * 1.7 + stream * 2));
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((r) => r / sum);
}

function stats(stream: string, index: number, seq: number, capturedAt: number): FrameStats {
  const f = shares(index, capturedAt / 1000);
  return {
    stream,
    seq,
    pts: seq / 15,
    capturedAt,
    headVersion: 3,
    classes: LEGEND.map((c, i) => ({ ...c, pixels: Math.round(f[i]! * W * H), fraction: f[i]! })),
  };
}

/** A synthetic segmentation overlay: coloured regions that move with `seq`. */
function overlayJpeg(index: number, seq: number): Promise<Buffer> {
  const c = (i: number): string => `rgb(${LEGEND[i]!.color.join(',')})`;
  const dx = (seq * 3) % 60;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">
    <rect width="${W}" height="${H}" fill="${c(0)}"/>
    <path d="M0 ${190 - index * 20} Q ${120 + dx} ${150 - index * 10} 240 ${185 - index * 15} T ${W} 175 V ${H} H 0 Z" fill="${c(1)}"/>
    <ellipse cx="${330 - dx}" cy="205" rx="70" ry="38" fill="${c(3)}"/>
    <ellipse cx="${110 + dx}" cy="218" rx="48" ry="26" fill="${c(2)}"/>
    <ellipse cx="${200 + dx * 2}" cy="${90 + index * 20}" rx="26" ry="11" fill="${c(4)}"/>
    <rect x="${170 + dx * 2}" y="${72 + index * 20}" width="64" height="36" fill="none" stroke="white" stroke-width="2"/>
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 80 }).toBuffer();
}

describe.skipIf(missing !== undefined)('viewer page in headless Chromium', () => {
  let browser: Browser;
  let hub: WsHub;
  let service: HttpService;

  beforeAll(async () => {
    hub = createWsHub({ control: control(), logger: silent });
    service = await startHttpService({ hub, port: 0, logger: silent, token: 'viewer-token' });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  async function open(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${service.url}/?token=viewer-token`);
    await page.waitForSelector('#conn .dot.ok');
    expect(errors).toEqual([]);
    return page;
  }

  it('shows live frames, stats and the legend; a rename on one page appears on another', async () => {
    const one = await open();
    const two = await open();
    const streams = ['reef-cam', 'rov-1'];
    const now = Date.now();

    // A minute of history, as if the pages had been open all along (timestamps are the server's).
    for (const [i, stream] of streams.entries()) {
      hub.classes(stream, LEGEND, 3);
      hub.event({ type: 'source-state', stream, state: i === 0 ? 'live' : 'retrying', attempt: 2, delayMs: 4000 });
      for (let k = 0; k < 600; k++) hub.stats(stats(stream, i, k, now - 60_000 + k * 100));
      hub.event({ type: 'counters', stream, counters: { received: 620, processed: 600, dropped: 20 - i * 17 } });
    }
    // Then a few live frames.
    for (let seq = 600; seq < 606; seq++) {
      for (const [i, stream] of streams.entries()) {
        hub.stats(stats(stream, i, seq, Date.now()));
        hub.frame(stream, { seq, pts: seq / 15, headVersion: 3, width: W, height: H }, await overlayJpeg(i, seq));
      }
      await new Promise((r) => setTimeout(r, 66));
    }

    for (const page of [one, two]) {
      for (const stream of streams) {
        const img = page.locator(`.card[data-stream="${stream}"] img`);
        await expect.poll(() => img.getAttribute('data-seq')).toBe('605');
        expect(await img.evaluate((e) => (e as unknown as { naturalWidth: number }).naturalWidth)).toBe(W);
      }
    }
    const card = one.locator('.card[data-stream="reef-cam"]');
    await expect.poll(() => card.locator('[data-metric="seq"]').textContent()).toBe('605');
    expect(await card.locator('.badge').textContent()).toBe('live');
    expect(await one.locator('.card[data-stream="rov-1"] .badge').textContent()).toBe('retrying #2 · 4.0 s');
    expect(await card.locator('[data-metric="dropped"]').textContent()).toBe('20');
    expect(await card.locator('[data-metric="head"]').textContent()).toBe('v3');
    const fps = Number(await card.locator('[data-metric="fps"]').textContent());
    // The value depends on timing under load; that the page computes a rate at all is what is tested.
    expect(fps).toBeGreaterThan(0);
    expect(await two.locator('#legend input').evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value))).toEqual(
      LEGEND.map((c) => c.name),
    );

    const input = one.locator('#legend input[data-class-id="2"]');
    await input.fill('sea grass');
    await input.press('Enter');
    await expect.poll(() => two.locator('#legend input[data-class-id="2"]').inputValue()).toBe('sea grass');

    // A refused rename shows the handler's message and the old name comes back.
    const fish = two.locator('#legend input[data-class-id="4"]');
    await fish.fill('forbidden');
    await fish.press('Enter');
    await expect
      .poll(() => two.locator('#toast .toast').textContent())
      .toBe('Rename refused: Name "forbidden" is reserved. Choose another name.');
    expect(await fish.inputValue()).toBe('fish');
    expect(await one.locator('#legend input[data-class-id="4"]').inputValue()).toBe('fish');

    await one.locator('#learn-toggle').click();
    await expect.poll(() => one.locator('#learning').textContent()).toBe('paused');

    const shot = join(tmpdir(), 'stegostream-viewer.png');
    await one.screenshot({ path: shot, fullPage: true });
    await one.close();
    await two.close();
  });
});
