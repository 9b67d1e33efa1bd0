/**
 * The service over HTTPS with a self-signed certificate made here with openssl: the viewer loads in
 * headless Chromium over https:// after the login form (token in an HttpOnly cookie, not the URL),
 * streams over wss://, and the read-only token watches but cannot rename or pause.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { assertClassId, type ControlHandler } from '../src/sinks/control.js';
import { startHttpService, type HttpService } from '../src/service/http-server.js';
import { createWsHub, type WsHub } from '../src/sinks/ws-hub.js';
import type { ClassInfo, FrameStats } from '../src/types.js';
import { chromiumMissing, launchChromium } from './helpers/chromium.js';
import { tempDir } from './helpers/cli.js';

const silent = pino({ level: 'silent' });
const TOKEN = 'full-Tok-83jd';
const READ_ONLY = 'watch-Tok-19sk';
const LEGEND: ClassInfo[] = [
  { id: 0, name: 'open water', color: [38, 110, 190] },
  { id: 1, name: 'sand', color: [214, 186, 120] },
];
const opensslMissing = ((): string | undefined => {
  try {
    execFileSync('openssl', ['version']);
    return undefined;
  } catch {
    return 'openssl not runnable';
  }
})();

function control(): ControlHandler {
  let classes = LEGEND;
  let learning = 'running';
  return {
    renameClass(id, name) {
      assertClassId(classes, id);
      classes = classes.map((c) => (c.id === id ? { ...c, name } : c));
      return classes;
    },
    pauseLearning: () => void (learning = 'paused'),
    resumeLearning: () => void (learning = 'running'),
    snapshotHead: () => Promise.resolve({ path: 'heads/head.json', version: 1 }),
    status: () => ({ learning }),
  };
}

function stats(stream: string, seq: number): FrameStats {
  return {
    stream,
    seq,
    pts: seq / 15,
    capturedAt: Date.now(),
    headVersion: 1,
    classes: LEGEND.map((c, i) => ({ ...c, pixels: 100 * (i + 1), fraction: (i + 1) / 3 })),
  };
}

/** One control request over a WebSocket authorised by `headers`; resolves with the reply. */
async function controlOver(url: string, headers: Record<string, string>, request: object): Promise<Record<string, unknown>> {
  const ws = new WebSocket(url, { headers, rejectUnauthorized: false });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return await new Promise<Record<string, unknown>>((resolve) => {
      ws.on('message', (data, binary) => {
        if (binary) return;
        const msg = JSON.parse(String(data)) as Record<string, unknown>;
        if (msg['id'] === 7) resolve(msg);
      });
      ws.send(JSON.stringify({ type: 'control', id: 7, ...request }));
    });
  } finally {
    ws.close();
  }
}

describe.skipIf(chromiumMissing() !== undefined || opensslMissing !== undefined)('service over HTTPS', () => {
  let dir: string;
  let browser: Browser;
  let hub: WsHub;
  let service: HttpService;

  beforeAll(async () => {
    dir = await tempDir('stego-https-');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'key.pem',
        '-out',
        'cert.pem',
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { cwd: dir, stdio: 'ignore' },
    );
    hub = createWsHub({ control: control(), logger: silent });
    service = await startHttpService({
      hub,
      port: 0,
      logger: silent,
      token: TOKEN,
      readOnlyToken: READ_ONLY,
      tls: { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') },
    });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await service?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the viewer signs in with the login form, loads over https:// and streams over wss://; the full token renames', async () => {
    expect(service.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const sockets: string[] = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${service.url}/login`);
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([page.waitForURL(`${service.url}/`), page.click('button[type="submit"]')]);
    const cookies = await context.cookies();
    expect(cookies.find((c) => c.name === 'stegostream_token')).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    await page.waitForSelector('#conn .dot.ok');
    expect(sockets[0]).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/ws$/); // no token in the URL
    hub.classes('reef', LEGEND, 1);
    for (let seq = 0; seq < 3; seq++) hub.stats(stats('reef', seq));
    await expect.poll(() => page.locator('.card[data-stream="reef"] [data-metric="seq"]').textContent(), { timeout: 30_000 }).toBe('2');
    const input = page.locator('#legend input[data-class-id="1"]');
    await input.fill('gravel');
    await input.press('Enter');
    await expect.poll(() => page.locator('#legend input[data-class-id="1"]').inputValue(), { timeout: 30_000 }).toBe('gravel');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('the read-only token watches but cannot rename or pause; a wrong token is refused', async () => {
    const wss = `${service.url.replace('https://', 'wss://')}/ws`;
    const rename = await controlOver(wss, { Authorization: `Bearer ${READ_ONLY}` }, { verb: 'rename', classId: 0, name: 'x' });
    expect(rename).toMatchObject({
      type: 'error',
      code: 'E_CONTROL',
      message: 'Control "rename" refused: this connection used the read-only token (it may watch, not change). Use the service token.',
    });
    const pause = await controlOver(wss, { Cookie: `stegostream_token=${READ_ONLY}` }, { verb: 'pause' });
    expect(pause).toMatchObject({ type: 'error', code: 'E_CONTROL' });
    expect(await controlOver(wss, { Authorization: `Bearer ${READ_ONLY}` }, { verb: 'status' })).toMatchObject({
      type: 'control-result',
      ok: true,
      status: { learning: 'running' },
    });
    const refused = await controlOver(wss, { Authorization: 'Bearer nope' }, { verb: 'status' }).catch((e: unknown) => e);
    expect(String(refused)).toContain('401');

    // In the viewer: the page streams, and a rename shows the refusal and keeps the old name.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`${service.url}/?token=${READ_ONLY}`);
    await page.waitForSelector('#conn .dot.ok');
    hub.stats(stats('reef', 10));
    await expect.poll(() => page.locator('.card[data-stream="reef"] [data-metric="seq"]').textContent(), { timeout: 30_000 }).toBe('10');
    const input = page.locator('#legend input[data-class-id="0"]');
    await input.fill('renamed by a viewer');
    await input.press('Enter');
    await expect.poll(() => page.locator('#toast .toast').first().textContent(), { timeout: 30_000 }).toContain('read-only token');
    await expect.poll(() => input.inputValue()).toBe('open water');
    await context.close();
  });
});
