/**
 * The viewer's tools in headless Chromium against a real service with two streams (README
 * "Viewer"): enlarge, overlay/picture/mask views with opacity, legend highlight, per-stream
 * shares, history from before the page loaded, snapshot and CSV downloads, duplicate names
 * refused, a tablet-width layout, and a stale page greyed and locked while disconnected.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';

const missing = chromiumMissing();
const WAIT = { timeout: 30_000 };
/** Class colours of the legend, to tell mask pixels from picture pixels. */
type Rgb = [number, number, number];

describe.skipIf(missing !== undefined)('viewer tools', () => {
  let browser: Browser;
  let service: RunningService;
  const pages: Page[] = [];

  beforeAll(async () => {
    service = await runService(
      parsePipeline(
        `
name: viewer-tools
sources:
  - { use: scene, name: reef, with: { fps: 8 } }
  - { use: scene, name: kelp, with: { fps: 8, seed: 7 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 3, names: [water, sand, rock], trainEvery: 100000 }
sinks:
  - { use: websocket }
`,
        'test',
        {},
      ),
      { logger: pino({ level: 'silent' }), port: 0 },
    );
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  async function open(width = 1280): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height: 900 }, acceptDownloads: true });
    pages.push(page);
    await page.goto(`${service.url}/`);
    await page.waitForSelector('#conn .dot.ok', WAIT);
    await page.waitForSelector('.card[data-stream="reef"] img[src]', WAIT);
    await page.waitForSelector('#legend li[data-class-id="2"]', WAIT);
    return page;
  }

  /** RGB of every pixel of a card's blended canvas, sampled. */
  async function canvasPixels(page: Page, stream: string): Promise<{ rgb: Rgb[]; alpha: number[] }> {
    return page.locator(`.card[data-stream="${stream}"] canvas.composite`).evaluate((c) => {
      const canvas = c as unknown as {
        width: number;
        height: number;
        getContext(t: '2d'): { getImageData(...a: number[]): { data: Uint8ClampedArray } };
      };
      const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const rgb: [number, number, number][] = [];
      const alpha: number[] = [];
      for (let i = 0; i < d.length; i += 4 * 97) {
        rgb.push([d[i] as number, d[i + 1] as number, d[i + 2] as number]);
        alpha.push(d[i + 3] as number);
      }
      return { rgb, alpha };
    });
  }

  const near = (a: Rgb, b: readonly number[]): boolean => a.every((v, i) => Math.abs(v - (b[i] as number)) <= 6);

  it('enlarges a stream, switches it to mask and picture views, and blends with the opacity slider', async () => {
    const page = await open();
    const card = page.locator('.card[data-stream="reef"]');
    await card.locator('button[data-action="fullscreen"]').click();
    await expect.poll(() => card.getAttribute('class')).toMatch(/expanded/);
    const [cardBox, streamsBox] = [await card.boundingBox(), await page.locator('#streams').boundingBox()];
    expect(cardBox?.width).toBeGreaterThan((streamsBox?.width ?? 0) * 0.95);
    expect((await card.screenshot()).length).toBeGreaterThan(1000);

    const colours = (await page.locator('#legend .swatch').evaluateAll((els) =>
      els.map((s) => {
        const m = /(\d+), (\d+), (\d+)/.exec((s as unknown as { style: { background: string } }).style.background);
        return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
      }),
    )) as Rgb[];
    expect(colours).toHaveLength(3);

    await card.locator('select.mode').selectOption('mask');
    await expect.poll(() => card.getAttribute('data-mode')).toBe('mask');
    await page.waitForSelector('.card[data-stream="reef"] canvas.composite[data-seq]', WAIT);
    const mask = await canvasPixels(page, 'reef');
    // The mask view shows class colours only.
    expect(mask.rgb.every((p) => colours.some((c) => near(p, c)))).toBe(true);

    await card.locator('select.mode').selectOption('raw');
    await expect
      .poll(async () => (await canvasPixels(page, 'reef')).rgb.filter((p) => !colours.some((c) => near(p, c))).length, WAIT)
      .toBeGreaterThan(0);

    // Overlay with the colours fully opaque looks like the mask view.
    await card.locator('select.mode').selectOption('overlay');
    await card.locator('input.opacity').fill('100');
    await expect
      .poll(async () => {
        const px = await canvasPixels(page, 'reef');
        return px.rgb.length > 0 && px.rgb.every((p) => colours.some((c) => near(p, c)));
      }, WAIT)
      .toBe(true);
    await card.locator('input.opacity').fill('45');
    await card.locator('button[data-action="fullscreen"]').click();
    await expect.poll(() => card.getAttribute('class')).not.toMatch(/expanded/);
  });

  it('hovering a class highlights it: the mask view keeps only that class; the legend marks it', async () => {
    const page = await open();
    const card = page.locator('.card[data-stream="reef"]');
    await card.locator('select.mode').selectOption('mask');
    await page.waitForSelector('.card[data-stream="reef"] canvas.composite[data-seq]', WAIT);
    const swatch = await page
      .locator('#legend li[data-class-id="0"] .swatch')
      .evaluate((s) => (s as unknown as { style: { background: string } }).style.background);
    const c0 = (/(\d+), (\d+), (\d+)/.exec(swatch) ?? []).slice(1).map(Number) as Rgb;
    await page.locator('#legend li[data-class-id="0"] .swatch').hover();
    await expect.poll(() => page.locator('#legend li[data-class-id="0"]').getAttribute('class')).toMatch(/hl/);
    await expect
      .poll(async () => {
        const px = await canvasPixels(page, 'reef');
        // Every pixel is class 0's colour or transparent, and both occur.
        const shown = px.rgb.filter((_, i) => (px.alpha[i] as number) > 0);
        return shown.length > 0 && shown.length < px.rgb.length && shown.every((p) => near(p, c0));
      }, WAIT)
      .toBe(true);
    await page.mouse.move(5, 5);
    await expect.poll(() => page.locator('#legend li[data-class-id="0"]').getAttribute('class')).not.toMatch(/hl/);
  });

  it("the share column follows the selected stream; the chart starts with the server's history", async () => {
    // Let the service collect a few seconds of summaries, then open a new page.
    const first = await open();
    await expect.poll(() => first.locator('.card[data-stream="reef"] canvas.chart').getAttribute('data-points'), WAIT).not.toBe(null);
    await new Promise((r) => setTimeout(r, 3000));
    const page = await open(1024);
    // A reload: the chart starts with what happened before it.
    const openedAt = Date.now();
    await page.reload();
    await page.waitForSelector('.card[data-stream="reef"] canvas.chart', WAIT);
    await expect
      .poll(
        async () => Number((await page.locator('.card[data-stream="reef"] canvas.chart').getAttribute('data-oldest')) ?? Infinity),
        WAIT,
      )
      .toBeLessThan(openedAt - 2000);
    await page.locator('.card[data-stream="kelp"] .card-head').click();
    await expect.poll(() => page.locator('#share-of').textContent()).toBe('kelp');
    expect(await page.locator('.card[data-stream="kelp"]').getAttribute('class')).toMatch(/selected/);
    await page.locator('.card[data-stream="kelp"] .card-head').click();
    await expect.poll(() => page.locator('#share-of').textContent()).toBe('all streams');
  });

  it('saves the picture as PNG and the chart as CSV', async () => {
    const page = await open();
    const card = page.locator('.card[data-stream="reef"]');
    const [png] = await Promise.all([page.waitForEvent('download'), card.locator('button[data-action="snapshot"]').click()]);
    expect(png.suggestedFilename()).toMatch(/^reef-\d+\.png$/);
    const pngPath = join(tmpdir(), `stegostream-snap-${process.pid}.png`);
    await png.saveAs(pngPath);
    expect(readFileSync(pngPath).subarray(1, 4).toString()).toBe('PNG');
    const [csv] = await Promise.all([page.waitForEvent('download'), card.locator('button[data-action="csv"]').click()]);
    expect(csv.suggestedFilename()).toBe('reef-shares.csv');
    const csvPath = join(tmpdir(), `stegostream-chart-${process.pid}.csv`);
    await csv.saveAs(csvPath);
    const lines = readFileSync(csvPath, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('time,"water","sand","rock"');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[1]).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z,0\.\d{4},0\.\d{4},0\.\d{4}$/);
  });

  it('refuses a name another class has, in the page and on the server', async () => {
    const page = await open();
    const input = page.locator('#legend input[data-class-id="1"]');
    await input.fill('Water');
    await input.press('Enter');
    await expect
      .poll(() => page.locator('.toast').allTextContents())
      .toEqual(expect.arrayContaining([expect.stringMatching(/already named "water"/)]));
    expect(await input.inputValue()).toBe('sand');
    const reply = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
          ws.onopen = () => ws.send(JSON.stringify({ type: 'control', id: 1, verb: 'rename', classId: 2, name: 'sand' }));
          ws.onmessage = (m) => {
            const msg = JSON.parse(m.data as string) as { type: string; message?: string };
            if (msg.type === 'error') resolve(msg.message ?? '');
          };
        }),
      service.url,
    );
    expect(reply).toMatch(/Class 1 is already named "sand"/);
  });

  it('keeps the legend beside the picture at tablet width, below it on a phone', async () => {
    const tablet = await open(768);
    const [t1, t2] = [await tablet.locator('#streams').boundingBox(), await tablet.locator('aside').boundingBox()];
    expect(t2?.x).toBeGreaterThanOrEqual((t1?.x ?? 0) + (t1?.width ?? 0) - 1);
    const phone = await open(480);
    const [p1, p2] = [await phone.locator('#streams').boundingBox(), await phone.locator('aside').boundingBox()];
    expect(p2?.y).toBeGreaterThanOrEqual((p1?.y ?? 0) + (p1?.height ?? 0) - 1);
  });

  it('greys stale state and disables the controls while disconnected', async () => {
    const page = await open();
    await service.close();
    await page.waitForSelector('body.offline', WAIT);
    expect(await page.locator('#legend input[data-class-id="0"]').isDisabled()).toBe(true);
    expect(await page.locator('#learn-toggle').isDisabled()).toBe(true);
    expect(await page.locator('#learning').textContent()).toBe('–');
    expect(await page.locator('#head').textContent()).toBe('–');
    expect((await page.screenshot()).length).toBeGreaterThan(1000);
  });
});
