/**
 * The live service in-process (`runService`) with real sources, the real backbone and learner
 * workers, and real WebSocket clients on port 0: what a client receives, per-stream order across
 * batches, a broken source, a slow client.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import type { ServiceEvent } from '../src/sinks/sink.js';
import { decodeImageMessage, type ImageHeader, type ServerMessage } from '../src/sinks/ws-protocol.js';
import type { FrameStats } from '../src/types.js';
import { lavfiVideo, tempDir } from './helpers/cli.js';

const silent = pino({ level: 'silent' });
const WAIT_MS = 20_000;
/** Working size of `model.width: 224`: 9/16 of the width, on the backbone's 16-pixel patch grid. */
const W = 224;
const H = 128;
const ALL = { type: 'subscribe', streams: ['*'], channels: ['stats', 'frames', 'classes', 'events'] };

type Stats = FrameStats & { readonly type: 'stats' };
interface Image {
  readonly header: ImageHeader;
  readonly bytes: Buffer;
}

/** A WebSocket client that records everything; `until` waits on a condition, re-checked per message. */
class Client {
  readonly json: ServerMessage[] = [];
  readonly images: Image[] = [];
  closeCode: number | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) this.images.push(decodeImageMessage(data));
      else this.json.push(JSON.parse(data.toString('utf8')) as ServerMessage);
      this.poke();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.poke();
    });
  }

  static async open(url: string, subscribe: object = ALL): Promise<Client> {
    const c = new Client(new WebSocket(`${url.replace(/^http/, 'ws')}/ws`));
    await c.until('hello', () => c.json.some((m) => m.type === 'hello'));
    c.ws.send(JSON.stringify(subscribe));
    await c.until('subscribed', () => c.json.some((m) => m.type === 'subscribed'));
    return c;
  }

  stats(stream?: string): Stats[] {
    return this.json.filter((m): m is Stats => m.type === 'stats' && (stream === undefined || m.stream === stream));
  }

  events(stream?: string): ServiceEvent[] {
    return this.json.flatMap((m) =>
      m.type === 'event' && (stream === undefined || ('stream' in m.event && m.event.stream === stream)) ? [m.event] : [],
    );
  }

  states(stream: string): string[] {
    return this.events(stream).flatMap((e) => (e.type === 'source-state' ? [e.state] : []));
  }

  until(what: string, pred: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; ${this.json.length} messages, ${this.images.length} images`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.ws.terminate();
  }

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** The value of one Prometheus sample, e.g. `stegostream_frames_out_total{stream="reef"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const metrics = async (s: RunningService): Promise<string> => (await fetch(`${s.url}/metrics`)).text();

function strictlyIncreasing(xs: readonly number[]): boolean {
  return xs.every((x, i) => i === 0 || x > (xs[i - 1] as number));
}

describe('serve over WebSocket', () => {
  const services: RunningService[] = [];
  const clients: Client[] = [];
  afterEach(async () => {
    clients.splice(0).forEach((c) => c.close());
    await Promise.all(services.splice(0).map((s) => s.close()));
  });

  async function serve(yaml: string): Promise<RunningService> {
    const s = await runService(parsePipeline(yaml, 'test', {}), { logger: silent, port: 0 });
    services.push(s);
    return s;
  }

  async function client(s: RunningService, subscribe?: object): Promise<Client> {
    const c = await Client.open(s.url, subscribe);
    clients.push(c);
    return c;
  }

  it('streams stats, JPEG frames, the legend and source states of a scene; readyz and metrics follow', async () => {
    const s = await serve(`
name: ws-scene
sources:
  - { use: scene, name: reef, with: { fps: 20 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, names: [water, sand, rock, coral], trainEvery: 1000 }
sinks:
  - { use: websocket, with: { maxWidth: 160 } }
`);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await expect.poll(async () => (await fetch(`${s.url}/readyz`)).status, { timeout: WAIT_MS }).toBe(200);
    expect(await (await fetch(`${s.url}/readyz`)).json()).toEqual({ ready: true });
    expect(await (await fetch(`${s.url}/healthz`)).json()).toEqual({ ok: true });

    const c = await client(s);
    // A late joiner gets the legend and the source's state at once.
    await c.until('legend and live state', () => c.json.some((m) => m.type === 'classes') && c.states('reef').includes('live'));
    const legend = c.json.find((m) => m.type === 'classes');
    expect(legend).toMatchObject({
      type: 'classes',
      stream: 'reef',
      classes: [
        { id: 0, name: 'water' },
        { id: 1, name: 'sand' },
        { id: 2, name: 'rock' },
        { id: 3, name: 'coral' },
      ],
    });
    expect((legend as { headVersion: number }).headVersion).toBeGreaterThanOrEqual(1);

    await c.until('10 stats and 3 frames', () => c.stats('reef').length >= 10 && c.images.length >= 3);
    const stats = c.stats('reef');
    const first = stats[0]!;
    expect(first.headVersion).toBeGreaterThanOrEqual(1);
    expect(first.classes.map((k) => k.name)).toEqual(['water', 'sand', 'rock', 'coral']);
    const pixels = first.classes.reduce((a, k) => a + k.pixels, 0);
    expect(pixels).toBe(W * H);
    expect(first.classes.reduce((a, k) => a + k.fraction, 0)).toBeCloseTo(1, 6);
    expect(first.capturedAt).toBeLessThanOrEqual(Date.now());
    expect(strictlyIncreasing(stats.map((x) => x.seq))).toBe(true);
    expect(strictlyIncreasing(stats.map((x) => x.pts))).toBe(true);

    const img = c.images[0]!;
    // Overlays scaled down to maxWidth; the header gives the size sent.
    expect(img.header).toMatchObject({
      channel: 'frames',
      stream: 'reef',
      width: 160,
      height: Math.round((H * 160) / W),
      mime: 'image/jpeg',
    });
    expect(img.header.headVersion).toBeGreaterThanOrEqual(1);
    expect(img.bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect(await sharp(img.bytes).metadata()).toMatchObject({ format: 'jpeg', width: img.header.width, height: img.header.height });
    // Each image belongs to a frame whose stats came too.
    expect(stats.map((x) => x.seq)).toContain(img.header.seq);

    await c.until('a counters event', () => c.events('reef').some((e) => e.type === 'counters'));
    const text = await metrics(s);
    expect(sample(text, 'stegostream_frames_in_total{stream="reef"}')).toBeGreaterThanOrEqual(10);
    expect(sample(text, 'stegostream_frames_out_total{stream="reef"}')).toBeGreaterThanOrEqual(10);
    expect(sample(text, 'stegostream_frames_dropped_total{stream="reef"}')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'stegostream_frame_age_seconds_count{stream="reef"}')).toBeGreaterThanOrEqual(10);
    // The rate gauge is set once a second from the frames of that second: on a busy machine a
    // second may pass with none published, so wait for one that had some.
    await expect
      .poll(async () => sample(await metrics(s), 'stegostream_stream_fps{stream="reef"}'), { timeout: WAIT_MS, interval: 250 })
      .toBeGreaterThan(0);
    expect(sample(text, 'stegostream_head_version')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'stegostream_ws_clients')).toBe(1);
  });

  it('batches two streams together and keeps each stream in order; a lossless file loses no frame', async () => {
    const dir = await tempDir();
    const video = join(dir, 'clip.mp4');
    lavfiVideo(video, { size: '320x180', rate: 15, seconds: 2 });
    const s = await serve(`
name: ws-two
sources:
  - { use: scene, name: reef, with: { fps: 30 } }
  - { use: file, name: clip, with: { path: "${video}" } }
model: { width: 224, batch: { size: 4, maxDelayMs: 30 } }
learning: { classes: 4, trainEvery: 1000 }
sinks:
  - use: websocket
  - { use: stats-file, with: { path: "${join(dir, 'stats', '{stream}.jsonl')}" } }
`);
    const c = await client(s, { type: 'subscribe', streams: ['*'], channels: ['stats', 'events'] });
    await c.until('the file to end', () => c.events('clip').some((e) => e.type === 'source-state' && e.state === 'stopped'));
    const reefBefore = c.stats('reef').length;
    await c.until('the scene to go on after the file ended', () => c.stats('reef').length >= reefBefore + 5);

    expect(c.stats('clip').map((x) => x.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(strictlyIncreasing(c.stats('clip').map((x) => x.pts))).toBe(true);
    expect(strictlyIncreasing(c.stats('reef').map((x) => x.seq))).toBe(true);
    expect(c.events('clip').filter((e) => e.type === 'source-state')).toEqual([
      { type: 'source-state', stream: 'clip', state: 'live', detail: video },
      { type: 'source-state', stream: 'clip', state: 'stopped', detail: 'the file ended' },
    ]);

    const text = await metrics(s);
    const batches = sample(text, 'stegostream_batch_size_count')!;
    const single = sample(text, 'stegostream_batch_size_bucket{le="1"}')!;
    expect(batches - single).toBeGreaterThan(0);
    expect(sample(text, 'stegostream_frames_out_total{stream="clip"}')).toBe(30);
    expect(sample(text, 'stegostream_frames_dropped_total{stream="clip"}') ?? 0).toBe(0);

    // The stats file of each stream (in a folder the service made) is complete once the service has closed.
    await s.close();
    const lines = (await readFile(join(dir, 'stats', 'clip.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as FrameStats).seq)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const reefLines = (await readFile(join(dir, 'stats', 'reef.jsonl'), 'utf8')).trim().split('\n');
    expect(reefLines.length).toBeGreaterThanOrEqual(c.stats('reef').length);
  });

  it('a source with a bad file path stops that stream only, with the reason', async () => {
    const dir = await tempDir();
    const missing = join(dir, 'no-such-dive.mp4');
    const s = await serve(`
name: ws-bad-file
sources:
  - { use: scene, name: reef, with: { fps: 20 } }
  - { use: file, name: lost, with: { path: "${missing}" } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 1000 }
`);
    const c = await client(s, { type: 'subscribe', streams: ['*'], channels: ['stats', 'events'] });
    await c.until('the lost stream to stop', () => c.states('lost').includes('stopped'));
    expect(c.events('lost').filter((e) => e.type === 'source-state')).toEqual([
      {
        type: 'source-state',
        stream: 'lost',
        state: 'stopped',
        detail: `Cannot read video file "${missing}": no such file or folder. Check the path.`,
      },
    ]);
    const before = c.stats('reef').length;
    await c.until('the scene to go on', () => c.stats('reef').length >= before + 10);
    expect(c.stats('lost')).toEqual([]);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  });

  it(
    'a client that reads nothing slows neither the pipeline nor the other clients, and still gets every stats message',
    { timeout: 120_000 },
    async () => {
      const s = await serve(`
name: ws-slow
sources:
  - { use: scene, name: reef, with: { fps: 20 } }
model: { width: 448, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 1000 }
sinks:
  - { use: websocket, with: { jpegQuality: 100 } }
`);
      const fast = await client(s);
      const slow = await client(s);
      await fast.until('steady frames', () => fast.stats().length >= 20);
      await slow.until('stats', () => slow.stats().length >= 1);
      // Stop reading: the server's send buffer for this client grows while the others flow.
      slow.ws.pause();
      // Until the slow client's backlog passes the hub's limit and images are dropped for it (the
      // kernel's socket buffers take a few MB first).
      const dropped = async (): Promise<number> => sample(await metrics(s), 'stegostream_ws_messages_dropped_total{channel="frames"}') ?? 0;
      await expect.poll(dropped, { timeout: 60_000, interval: 250 }).toBeGreaterThan(0);
      const out0 = sample(await metrics(s), 'stegostream_frames_out_total{stream="reef"}')!;
      const n0 = fast.stats().length;
      const i0 = fast.images.length;
      // The pipeline goes on (a blocked one would publish nothing more) and the other client gets
      // stats and images meanwhile: counted, not timed, so a slow machine only takes longer.
      await fast.until('20 more stats and 5 more images', () => fast.stats().length >= n0 + 20 && fast.images.length >= i0 + 5);
      const out1 = sample(await metrics(s), 'stegostream_frames_out_total{stream="reef"}')!;
      // ... and the stats of every frame published meanwhile (the last few may be on their way).
      await fast.until('the stats of every frame published', () => fast.stats().length - n0 >= out1 - out0 - 2);
      expect(slow.stats().length).toBeLessThan(fast.stats().length);
      slow.ws.resume();
      // Every stats message the fast client got, the slow one gets too (images may be dropped).
      const from = slow.stats()[0]!.seq;
      const seqs = fast
        .stats()
        .map((x) => x.seq)
        .filter((q) => q >= from);
      await slow.until('the backlog', () => slow.stats().length >= seqs.length);
      expect(
        slow
          .stats()
          .map((x) => x.seq)
          .slice(0, seqs.length),
      ).toEqual(seqs);
    },
  );
});
