/**
 * Windowed summaries (README "Summaries"): `serve` with a scene, the WebSocket and NATS sinks, a
 * real nats-server; the summaries agree with the per-frame stats they summarise, a late client
 * gets the past with `history`, and the runnable examples in examples/ print them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import type { FrameStats, WindowSummary } from '../src/types.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));
const noWebsockets = spawnSync('/usr/bin/python3', ['-c', 'import websockets'], { encoding: 'utf8' }).status !== 0;

/** Records a WebSocket client's JSON messages; `until` re-checks a condition on each message. */
class Client {
  readonly messages: Array<Record<string, unknown>> = [];
  private readonly waiters = new Set<() => void>();
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) this.messages.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
      for (const w of this.waiters) w();
    });
  }
  static async open(url: string): Promise<Client> {
    const c = new Client(new WebSocket(`${url.replace(/^http/, 'ws')}/ws`));
    await c.until(() => c.messages.some((m) => m['type'] === 'hello'));
    return c;
  }
  send(m: object): void {
    this.ws.send(JSON.stringify(m));
  }
  of<T>(type: string): T[] {
    return this.messages.filter((m) => m['type'] === type) as T[];
  }
  until(cond: () => boolean, ms = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error('timed out'));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }
}

/** Runs an example to completion; resolves with its stdout lines. */
function runExample(cmd: string, args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}

describe.skipIf(natsServerMissing())('windowed summaries on the WebSocket and NATS', () => {
  let server: NatsServer;
  let service: RunningService;

  beforeAll(async () => {
    server = await NatsServer.start();
    service = await runService(
      parsePipeline(
        `
name: summaries
sources:
  - { use: scene, name: reef, with: { fps: 12 } }
model: { width: 160, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 3, names: [water, sand, rock], trainEvery: 1000 }
sinks:
  - { use: websocket }
  - { use: nats, with: { servers: ${JSON.stringify(server.url)}, frames: false } }
`,
        'test',
        {},
      ),
      { logger: pino({ level: 'silent' }), port: 0 },
    );
  });

  afterAll(async () => {
    await service?.close();
    await server?.dispose();
  });

  it('each 1 s summary agrees with the per-frame stats it summarises; a late client gets them with history', async () => {
    const c = await Client.open(service.url);
    c.send({ type: 'subscribe', streams: ['reef'], channels: ['stats', 'summary'] });
    const ones = (): WindowSummary[] => c.of<WindowSummary>('summary').filter((s) => s.window === '1s');
    // The first window is partial (the client subscribed midway): compare the next three.
    await c.until(() => ones().length >= 4);
    const stats = c.of<FrameStats>('stats');
    for (const s of ones().slice(1, 4)) {
      const frames = stats.filter((f) => f.seq >= s.firstSeq && f.seq <= s.lastSeq);
      expect(frames).toHaveLength(s.frames);
      expect(Date.parse(s.end) - Date.parse(s.start)).toBe(1000);
      for (const cls of s.classes) {
        const fr = frames.map((f) => f.classes.find((x) => x.id === cls.id)?.fraction ?? 0);
        expect(cls.mean).toBeCloseTo(fr.reduce((a, b) => a + b, 0) / fr.length, 9);
        expect(cls.min).toBeCloseTo(Math.min(...fr), 12);
        expect(cls.max).toBeCloseTo(Math.max(...fr), 12);
      }
      expect(s.classes.map((x) => x.name)).toEqual(['water', 'sand', 'rock']);
    }
    const late = await Client.open(service.url);
    late.send({ type: 'history', id: 7, stream: 'reef', window: '1s', seconds: 600 });
    await late.until(() => late.of('history').length > 0);
    const h = late.of<{ id: number; summaries: WindowSummary[] }>('history')[0];
    expect(h?.id).toBe(7);
    const seen = ones().map((s) => s.end);
    expect(h?.summaries.map((s) => s.end)).toEqual(expect.arrayContaining(seen.slice(0, 4)));
    c.ws.close();
    late.ws.close();
  });

  it('the Node example prints the NATS summaries', async () => {
    const lines = await runExample(process.execPath, [`${EXAMPLES}summaries-nats.mjs`, '--nats', server.url, '--count', '2']);
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/^\S+Z reef 1s frames=\d+ head=\d+ water=0\.\d{3} sand=0\.\d{3} rock=0\.\d{3}$/);
  });

  it.skipIf(noWebsockets)('the Python example prints the WebSocket summaries (needs python3-websockets)', async () => {
    const url = `${service.url.replace(/^http/, 'ws')}/ws`;
    const lines = await runExample('/usr/bin/python3', [`${EXAMPLES}summaries_ws.py`, url, '--window', '1s', '--count', '2', '--json']);
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ type: 'summary', stream: 'reef', window: '1s' });
  });
});

describe.skipIf(natsServerMissing())('summary history from JetStream after a restart', () => {
  it("a restarted service's history request holds the summaries of the run before it", async () => {
    const server = await NatsServer.start();
    const yaml = `
name: history
sources:
  - { use: scene, name: reef, with: { fps: 10 } }
model: { width: 160, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 3, trainEvery: 100000 }
sinks:
  - { use: websocket }
  - { use: nats, with: { servers: ${JSON.stringify(server.url)}, frames: false, jetstream: { stream: HIST } } }
`;
    const silent = pino({ level: 'silent' });
    try {
      const first = await runService(parsePipeline(yaml, 'test', {}), { logger: silent, port: 0 });
      const c = await Client.open(first.url);
      c.send({ type: 'subscribe', streams: ['reef'], channels: ['summary'] });
      await c.until(() => c.of<WindowSummary>('summary').filter((s) => s.window === '1s').length >= 3);
      c.ws.close();
      await first.close();
      const restartedAt = Date.now();
      const second = await runService(parsePipeline(yaml, 'test', {}), { logger: silent, port: 0 });
      try {
        const late = await Client.open(second.url);
        // The history loads in the background: ask until it holds windows from before the restart.
        let id = 0;
        await expect
          .poll(
            async () => {
              const ask = ++id;
              late.send({ type: 'history', id: ask, stream: 'reef', window: '1s', seconds: 600 });
              await late.until(() => late.of<{ id: number }>('history').some((h) => h.id === ask));
              const h = late.of<{ id: number; summaries: WindowSummary[] }>('history').find((x) => x.id === ask);
              return (h?.summaries ?? []).filter((s) => Date.parse(s.end) < restartedAt).length;
            },
            { timeout: 30_000, interval: 250 },
          )
          .toBeGreaterThanOrEqual(2);
        late.ws.close();
      } finally {
        await second.close();
      }
    } finally {
      await server.dispose();
    }
  });
});
