/**
 * The viewer page of the real service (the demo pipeline) in headless Chromium: live frames,
 * stats and legend from the pipeline, and a rename on one page showing on another.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';

const missing = chromiumMissing();
const DEMO = fileURLToPath(new URL('../pipelines/demo.yaml', import.meta.url));
/** Where the screenshot goes, to look at by eye. */
export const SCREENSHOT = join(tmpdir(), 'stegostream-serve-viewer.png');

describe.skipIf(missing !== undefined)('viewer against the running demo pipeline', () => {
  let browser: Browser;
  let service: RunningService;

  beforeAll(async () => {
    service = await runService(await loadPipeline(DEMO, { PORT: '0' }), { logger: pino({ level: 'silent' }) });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  async function open(): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('response', (r) => void (r.status() >= 400 && errors.push(`${r.status()} ${new URL(r.url()).pathname}`)));
    await page.goto(`${service.url}/`);
    await page.waitForSelector('#conn .dot.ok');
    return { page, errors };
  }

  it('shows segmented frames as they come; a rename on one page shows on the other', async () => {
    const one = await open();
    const two = await open();
    for (const { page } of [one, two]) {
      const img = page.locator('.card[data-stream="reef"] img');
      // Frames keep coming: the shown frame's seq moves on.
      await expect.poll(async () => Number(await img.getAttribute('data-seq')), { timeout: 20_000 }).toBeGreaterThan(0);
      const seq = Number(await img.getAttribute('data-seq'));
      await expect.poll(async () => Number(await img.getAttribute('data-seq')), { timeout: 10_000 }).toBeGreaterThan(seq + 5);
      expect(await img.evaluate((e) => (e as unknown as { naturalWidth: number }).naturalWidth)).toBe(448);
    }
    const card = one.page.locator('.card[data-stream="reef"]');
    await expect.poll(() => card.locator('.badge').textContent()).toBe('live');
    expect(await card.locator('[data-metric="head"]').textContent()).toMatch(/^v[1-9]\d*$/);
    // A live rate shows (its value is the machine's speed: the bench's business, not this test's).
    await expect.poll(async () => Number(await card.locator('[data-metric="fps"]').textContent()), { timeout: 30_000 }).toBeGreaterThan(0);
    // The demo names no class: the learned ids get default names until someone renames them.
    expect(await two.page.locator('#legend input').evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value))).toEqual(
      ['class 0', 'class 1', 'class 2', 'class 3', 'class 4'],
    );

    const input = one.page.locator('#legend input[data-class-id="2"]');
    await input.fill('boulder');
    await input.press('Enter');
    await expect.poll(() => two.page.locator('#legend input[data-class-id="2"]').inputValue(), { timeout: 10_000 }).toBe('boulder');
    expect(service.engine.classInfo[2]?.name).toBe('boulder');

    // Let the chart fill a little, then keep a picture to look at.
    await new Promise((r) => setTimeout(r, 2_000));
    await one.page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(one.errors).toEqual([]);
    expect(two.errors).toEqual([]);
    await one.page.close();
    await two.page.close();
  });
});
