/**
 * Ingest against a real nats-server: frames land in the work queue with their headers, a full
 * queue (discard: new) makes ingest wait instead of buffering, and the end-of-stream event
 * carries the frame count.
 */
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type JsMsg, type NatsConnection } from 'nats';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { runIngest } from '../src/cluster/run-ingest.js';
import { ensureWorkersConsumer } from '../src/cluster/cluster-connection.js';
import { backboneGeometry, sourceSize, sourcesFromArgs } from '../src/cluster/cluster-inputs.js';
import { framesStreamName, WORKERS_CONSUMER } from '../src/cluster/cluster-names.js';
import { decodeFrame } from '../src/cluster/frame-codec.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { tempDir } from './helpers/cli.js';

const silent = pino({ level: 'silent' });
const missing = natsServerMissing();
const FRAMES = 12;

describe.skipIf(missing)('ingest', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;

  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    dir = await tempDir('stego-ingest-');
    await writeSceneVideo(join(dir, 'clip.mp4'), { width: 192, height: 108, seed: 1, frames: FRAMES, fps: 15 });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('waits while the work queue is full, then queues every frame with its headers and announces the end', async () => {
    const prefix = 'bp';
    const [config] = sourcesFromArgs([join(dir, 'clip.mp4')]);
    if (!config) throw new Error('no source');
    expect(config.name).toBe('clip');
    const size = await sourceSize(config, backboneGeometry('builtin'), { width: 160 });
    expect(size).toEqual({ width: 160, height: 88 });
    const ends: Array<{ frames: string; event: unknown }> = [];
    nc.subscribe(`${prefix}.clip.events`, { callback: (_e, m) => ends.push({ frames: m.headers?.get('frames') ?? '', event: m.json() }) });

    const ingest = await runIngest({ nc, prefix, sources: [{ config, size }], limits: { maxMsgs: 4 }, logger: silent });
    let finished = false;
    void ingest.done.then(() => (finished = true));
    const jsm = await nc.jetstreamManager();
    const until = async (what: string, cond: () => boolean | Promise<boolean>): Promise<void> => {
      const end = Date.now() + 20_000;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until('a full queue', () => ingest.queueFull);
    expect((await jsm.streams.info(framesStreamName(prefix))).state.messages).toBe(4);
    expect(ingest.status()[0]?.frames).toBe(4);
    expect(finished).toBe(false);

    // A worker's consumer drains the queue: ingest goes on to the end.
    await ensureWorkersConsumer(jsm, prefix, 5_000);
    const consumer = await nc.jetstream().consumers.get(framesStreamName(prefix), WORKERS_CONSUMER);
    const got: JsMsg[] = [];
    while (got.length < FRAMES) {
      for await (const m of await consumer.fetch({ max_messages: 4, expires: 1000 })) {
        got.push(m);
        m.ack();
      }
    }
    const [result] = await ingest.done;
    expect(result).toMatchObject({ stream: 'clip', frames: FRAMES, dropped: 0 });

    const frames = await Promise.all(got.map((m) => decodeFrame(m.data, m.headers)));
    expect(frames.map((f) => f.frame.seq)).toEqual([...Array(FRAMES).keys()]);
    expect(got.every((m) => m.subject === 'bp.ingest.clip')).toBe(true);
    expect(new Set(frames.map((f) => f.run))).toEqual(new Set([result?.run]));
    for (const [i, { frame }] of frames.entries()) {
      expect(frame).toMatchObject({ streamId: 'clip', width: 160, height: 88 });
      expect(frame.rgb.length).toBe(160 * 88 * 3);
      expect(frame.pts).toBeCloseTo(i / 15, 3);
      expect(frame.capturedAt).toBeGreaterThan(Date.now() - 60_000);
    }
    await until('the end event', () => ends.some((e) => e.frames !== ''));
    expect(ends.find((e) => e.frames !== '')).toEqual({
      frames: String(FRAMES),
      event: { type: 'source-state', stream: 'clip', state: 'stopped', detail: `end of input: ${FRAMES} frames` },
    });
  });
});
