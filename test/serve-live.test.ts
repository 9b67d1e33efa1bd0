/**
 * The live service with a real live feed (an ffmpeg MPEG-TS/UDP sender on 127.0.0.1) next to a
 * scene: the feed dies (garbage bytes arriving meanwhile) and comes back at another resolution while the
 * other stream keeps flowing.
 */
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import { buildSources } from '../src/engine/build-sources.js';
import type { ServiceEvent } from '../src/sinks/sink.js';
import type { ServerMessage } from '../src/sinks/ws-protocol.js';
import type { FrameStats } from '../src/types.js';
import { freeUdpPort, StreamPusher } from './helpers/stream-pusher.js';

const silent = pino({ level: 'silent' });
const WAIT_MS = 20_000;

/** A message and when it arrived. */
type Got = { readonly at: number; readonly msg: ServerMessage };

/** Records every text message (arrival time included); `until` re-checks a condition per message. */
function record(ws: WebSocket): { got: Got[]; until: (what: string, pred: () => boolean) => Promise<void> } {
  const got: Got[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) return;
    got.push({ at: Date.now(), msg: JSON.parse(data.toString('utf8')) as ServerMessage });
    for (const w of [...waiters]) w();
  });
  const until = (what: string, pred: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what} (${got.length} messages)`));
      }, WAIT_MS);
      waiters.add(check);
      check();
    });
  return { got, until };
}

describe('serve with a live feed', () => {
  let service: RunningService | undefined;
  let pusher: StreamPusher | undefined;
  let ws: WebSocket | undefined;
  afterEach(async () => {
    ws?.terminate();
    await pusher?.stop();
    await service?.close();
  });

  it('reports a listening feed that stops as stalled and live again, through garbage bytes and a new resolution, in events and metrics, while the other stream keeps flowing', async () => {
    const port = await freeUdpPort();
    pusher = StreamPusher.start({ kind: 'mpegts-udp', port });
    const config = parsePipeline(
      `
name: live-outage
sources:
  - { use: scene, name: reef, with: { fps: 15 } }
  - use: live
    name: rov
    with:
      url: "udp://127.0.0.1:${port}"
      stallTimeoutMs: 1500
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 1000 }
`,
      'test',
      {},
    );
    service = await runService(config, { logger: silent, port: 0 });
    ws = new WebSocket(`${service.url.replace(/^http/, 'ws')}/ws`);
    const { got, until } = record(ws);
    await new Promise((resolve) => ws!.once('open', resolve));
    ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'events'] }));

    const stats = (stream: string, from = 0): Array<FrameStats & { at: number }> =>
      got.slice(from).flatMap((g) => (g.msg.type === 'stats' && g.msg.stream === stream ? [{ ...g.msg, at: g.at }] : []));
    const states = (from = 0): Array<Extract<ServiceEvent, { type: 'source-state' }> & { at: number }> =>
      got
        .slice(from)
        .flatMap((g) =>
          g.msg.type === 'event' && g.msg.event.type === 'source-state' && g.msg.event.stream === 'rov'
            ? [{ ...g.msg.event, at: g.at }]
            : [],
        );

    await until('the feed to be live', () => states().some((s) => s.state === 'live') && stats('rov').length >= 10);

    await pusher.stop();
    const mark = got.length;
    // Garbage bytes on the feed's port while it is down (a misconfigured sender, a port scan).
    const junk = createSocket('udp4');
    const sendJunk = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        await new Promise<void>((resolve) => junk.send(randomBytes(1316), port, '127.0.0.1', () => resolve()));
      }
    };
    await sendJunk(200);
    // Under load, frames the receiver had buffered before the sender stopped can come after the
    // watchdog fired: the feed is then live again for a moment and stalls once more. What this
    // checks is the stall that lasts: the last state, while the scene shows 15 frames after it.
    let stall: ReturnType<typeof states>[number] | undefined;
    await until('stalled, and the scene to keep flowing', () => {
      const last = states(mark).at(-1);
      stall = last?.state === 'stalled' ? last : undefined;
      return stall !== undefined && stats('reef').filter((s) => s.at > stall!.at).length >= 15;
    });
    const stalledAt = stall!.at;
    expect(stall).toMatchObject({ detail: 'no frame for 1500 ms; still listening' });
    // Where that stall's event is in what the client got: the states after it are the ones that count.
    let stallMark = mark;
    got.forEach((g, i) => {
      if (i >= mark && g.msg.type === 'event' && g.msg.event.type === 'source-state' && g.msg.event.stream === 'rov') stallMark = i;
    });
    // The scene goes on while the feed is down (longer than the watchdog), and the service stays ready.
    await sendJunk(200);
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    const down = await (await fetch(`${service.url}/metrics`)).text();
    expect(down).toMatch(/^stegostream_source_up\{stream="rov"\} 0$/m);
    expect(down).toMatch(/^stegostream_source_state_total\{stream="rov",state="stalled"\} [1-9]/m);
    junk.close();

    // The sender comes back from scratch at another resolution.
    pusher = StreamPusher.start({ kind: 'mpegts-udp', port, size: '640x360' });
    await until('the feed to be live again', () => states(stallMark).some((s) => s.state === 'live'));
    const backAt = states(stallMark).find((s) => s.state === 'live')!.at;
    await until('frames from the feed again', () => stats('rov').filter((s) => s.at >= backAt).length >= 5);

    // No frames of the feed between the stall and its return; seq and pts go on across the outage.
    expect(stats('rov').filter((s) => s.at > stalledAt + 500 && s.at < backAt)).toEqual([]);
    const rov = stats('rov');
    expect(rov.every((s, i) => i === 0 || (s.seq > rov[i - 1]!.seq && s.pts > rov[i - 1]!.pts))).toBe(true);
    const reef = stats('reef');
    expect(reef.every((s, i) => i === 0 || s.seq > reef[i - 1]!.seq)).toBe(true);
    // The same receiver listened throughout: stalled, then live, no reconnect.
    expect(states(stallMark).map((s) => s.state)).toEqual(['stalled', 'live']);
    expect(states(mark).every((s) => s.state === 'stalled' || s.state === 'live')).toBe(true);
    const up = await (await fetch(`${service.url}/metrics`)).text();
    expect(up).toMatch(/^stegostream_source_up\{stream="rov"\} 1$/m);
    expect(up).toMatch(/^stegostream_source_state_total\{stream="rov",state="live"\} [2-9]/m);
  });
  it('/readyz says not ready as soon as the only feed stops, long before its stall watchdog, and ready again when it returns', async () => {
    const port = await freeUdpPort();
    pusher = StreamPusher.start({ kind: 'mpegts-udp', port });
    const config = parsePipeline(
      `
name: live-ready
sources:
  - use: live
    name: rov
    with:
      url: "udp://127.0.0.1:${port}"
      stallTimeoutMs: 60000
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, trainEvery: 1000 }
`,
      'test',
      {},
    );
    service = await runService(config, { logger: silent, port: 0 });
    ws = new WebSocket(`${service.url.replace(/^http/, 'ws')}/ws`);
    const { got } = record(ws);
    await new Promise((resolve) => ws!.once('open', resolve));
    ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['events'] }));
    const readyz = async (): Promise<{ status: number; body: { ready: boolean; reason?: string } }> => {
      const r = await fetch(`${service!.url}/readyz`);
      return { status: r.status, body: (await r.json()) as { ready: boolean; reason?: string } };
    };
    await expect.poll(async () => (await readyz()).status, { timeout: WAIT_MS }).toBe(200);

    await pusher.stop();
    await expect.poll(async () => (await readyz()).status, { timeout: WAIT_MS }).toBe(503);
    expect((await readyz()).body.reason).toMatch(/^no frame lately from any live source \(since the last: rov \d+ ms\)$/);
    // The watchdog (60 s) has not said anything yet: readiness did not wait for it.
    const stalled = got.some((g) => g.msg.type === 'event' && g.msg.event.type === 'source-state' && g.msg.event.state === 'stalled');
    expect(stalled).toBe(false);

    pusher = StreamPusher.start({ kind: 'mpegts-udp', port });
    await expect.poll(async () => (await readyz()).status, { timeout: WAIT_MS }).toBe(200);
  });
});

describe('live source logs under serve', () => {
  it('name the stream and the stage once per line (no duplicate JSON keys)', async () => {
    const port = await freeUdpPort();
    const config = parsePipeline(
      `
name: logs
sources:
  - { use: live, name: rov, with: { url: "udp://127.0.0.1:${port}", stallTimeoutMs: 300 } }
model: { width: 224 }
`,
      'test',
      {},
    );
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const [built] = buildSources(config.sources, { width: 224, height: 128 }, () => undefined, logger);
    const sub = built!.frames.subscribe();
    await expect.poll(() => lines.some((l) => l.includes('live source stalled')), { timeout: WAIT_MS }).toBe(true);
    sub.unsubscribe();
    const stalled = lines.find((l) => l.includes('live source stalled'))!;
    expect(stalled.match(/"stream":/g)).toHaveLength(1);
    expect(stalled.match(/"stage":/g)).toHaveLength(1);
    expect(JSON.parse(stalled)).toMatchObject({ stream: 'rov', stage: 'live-source' });
  });
});
