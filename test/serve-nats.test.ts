/**
 * The live service publishing to a real nats-server: subjects and headers, a server restart in
 * the middle of a run, and control over request-reply (rename reaching WebSocket clients too,
 * pause/resume, snapshot, bad requests).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Msg, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { runService, type RunningService } from '../src/service/run-service.js';
import type { ServerMessage } from '../src/sinks/ws-protocol.js';
import type { FrameStats } from '../src/types.js';
import { tempDir } from './helpers/cli.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';

const silent = pino({ level: 'silent' });
const missing = natsServerMissing();
const WAIT_MS = 20_000;

const json = (m: Msg): unknown => JSON.parse(Buffer.from(m.data).toString('utf8'));

describe.skipIf(missing !== undefined)('serve to NATS', () => {
  let server: NatsServer;
  let service: RunningService | undefined;
  let nc: NatsConnection | undefined;
  let ws: WebSocket | undefined;

  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(async () => {
    await server?.dispose();
  });
  afterEach(async () => {
    ws?.terminate();
    await nc?.close();
    await service?.close();
    service = undefined;
    await server.restart();
  });

  async function serve(checkpoint: string): Promise<RunningService> {
    const config = parsePipeline(
      `
name: nats-test
sources:
  - { use: scene, name: reef, with: { fps: 15 } }
model: { width: 224, batch: { size: 2, maxDelayMs: 10 } }
learning: { classes: 4, names: [water, sand, rock, coral], trainEvery: 1000, checkpoint: "${checkpoint}" }
sinks:
  - use: websocket
  - use: nats
    with: { servers: "\${NATS_URL}", jetstream: { stream: TEST_STATS } }
`,
      'test',
      { NATS_URL: server.url },
    );
    service = await runService(config, { logger: silent, port: 0 });
    await expect.poll(async () => (await fetch(`${service!.url}/readyz`)).status, { timeout: WAIT_MS }).toBe(200);
    return service;
  }

  async function client(): Promise<NatsConnection> {
    nc = await connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    return nc;
  }

  /** Collects messages on `subject` (interest registered with the server before it returns). */
  async function collect(c: NatsConnection, subject: string): Promise<Msg[]> {
    const got: Msg[] = [];
    c.subscribe(subject, { callback: (_err, msg) => void got.push(msg) });
    await c.flush();
    return got;
  }

  it('publishes stats, overlay frames with headers and the legend; stats published after a server restart arrive', async () => {
    const dir = await tempDir();
    await serve(join(dir, 'head.ckpt'));
    const c = await client();
    const stats = await collect(c, 'stegostream.reef.stats');
    const frames = await collect(c, 'stegostream.reef.frames');
    await expect.poll(() => stats.length >= 5 && frames.length >= 3, { timeout: WAIT_MS }).toBe(true);

    const s = json(stats[0]!) as FrameStats;
    expect(s).toMatchObject({ stream: 'reef', classes: [{ name: 'water' }, { name: 'sand' }, { name: 'rock' }, { name: 'coral' }] });
    expect(s.headVersion).toBeGreaterThanOrEqual(1);
    // A frame is published after its stats (its JPEG is encoded first), so the subscription may
    // have started between the two: compare a frame whose stats this subscriber received.
    const seqOf = (m: (typeof frames)[number]): number => Number(m.headers?.get('seq'));
    const statSeqs = (): Set<number> => new Set(stats.map((m) => (json(m) as FrameStats).seq));
    await expect.poll(() => frames.some((m) => statSeqs().has(seqOf(m))), { timeout: WAIT_MS }).toBe(true);
    const f = frames.find((m) => statSeqs().has(seqOf(m)))!;
    expect(Buffer.from(f.data).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect(f.headers?.get('stream')).toBe('reef');
    expect(f.headers?.get('content-type')).toBe('image/jpeg');
    expect(f.headers?.get('width')).toBe('224');
    expect(f.headers?.get('height')).toBe('128');
    expect(Number(f.headers?.get('head-version'))).toBeGreaterThanOrEqual(1);
    const seq = Number(f.headers?.get('seq'));
    expect(stats.map((m) => (json(m) as FrameStats).seq)).toContain(seq);
    expect(Number(f.headers?.get('pts'))).toBeCloseTo(stats.map((m) => json(m) as FrameStats).find((x) => x.seq === seq)?.pts ?? NaN, 6);

    // JetStream keeps the history.
    const jsm = await c.jetstreamManager();
    await expect.poll(async () => (await jsm.streams.info('TEST_STATS')).state.messages, { timeout: WAIT_MS }).toBeGreaterThan(0);

    await server.stop();
    const restartedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1_000));
    await server.restart();
    // Both the service and this client reconnect by themselves; stats of frames captured after
    // the restart arrive.
    await expect
      .poll(() => stats.filter((m) => (json(m) as FrameStats).capturedAt > restartedAt + 1_000).length, { timeout: WAIT_MS })
      .toBeGreaterThanOrEqual(5);
    const seqs = stats.map((m) => (json(m) as FrameStats).seq);
    expect(seqs.every((q, i) => i === 0 || q > seqs[i - 1]!)).toBe(true);
    const metrics = await (await fetch(`${service!.url}/metrics`)).text();
    expect(metrics).toMatch(/^stegostream_nats_connected 1$/m);
    expect(metrics).toMatch(/^stegostream_nats_status_events_total\{type="reconnect"\} [1-9]/m);
  });

  it('keeps segmenting through a nats-server crash that loses its store, and re-creates the JetStream stats history', async () => {
    const dir = await tempDir();
    await serve(join(dir, 'head.ckpt'));
    const c = await client();
    const stats = await collect(c, 'stegostream.reef.stats');
    const jsm = await c.jetstreamManager();
    await expect.poll(async () => (await jsm.streams.info('TEST_STATS')).state.messages, { timeout: WAIT_MS }).toBeGreaterThan(0);

    await server.kill(true);
    const downAt = Date.now();
    await server.restart();
    // The service reconnects by itself, sees its stream gone and makes it again: history resumes.
    await expect
      .poll(
        async () => {
          try {
            return (await (await c.jetstreamManager()).streams.info('TEST_STATS')).state.messages;
          } catch {
            return 0;
          }
        },
        { timeout: WAIT_MS },
      )
      .toBeGreaterThan(0);
    await expect
      .poll(() => stats.filter((m) => (json(m) as FrameStats).capturedAt > downAt).length, { timeout: WAIT_MS })
      .toBeGreaterThanOrEqual(3);
    const seqs = stats.map((m) => (json(m) as FrameStats).seq);
    expect(seqs.every((q, i) => i === 0 || q > seqs[i - 1]!)).toBe(true);
  });

  it('answers control requests; a rename reaches WebSocket clients; bad requests get ok:false', async () => {
    const dir = await tempDir();
    const checkpoint = join(dir, 'heads', 'reef.ckpt');
    const s = await serve(checkpoint);
    const c = await client();
    const legends = await collect(c, 'stegostream.reef.classes');
    const events = await collect(c, 'stegostream.events');
    const ask = async (verb: string, body?: unknown): Promise<unknown> =>
      json(
        await c.request(`stegostream.ctl.${verb}`, body === undefined ? undefined : Buffer.from(JSON.stringify(body)), { timeout: 15_000 }),
      );

    // A viewer connected over WebSocket.
    const wsGot: ServerMessage[] = [];
    ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/ws`);
    ws.on('message', (d: Buffer, isBinary) => void (isBinary || wsGot.push(JSON.parse(d.toString('utf8')) as ServerMessage)));
    await new Promise((resolve) => ws!.once('open', resolve));
    ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['classes', 'events'] }));
    await expect.poll(() => wsGot.some((m) => m.type === 'classes'), { timeout: WAIT_MS }).toBe(true);

    const renamed = (await ask('rename', { classId: 1, name: 'sand dune' })) as {
      ok: boolean;
      verb: string;
      classes: Array<{ id: number; name: string }>;
    };
    expect(renamed).toMatchObject({ ok: true, verb: 'rename' });
    expect(renamed.classes.map((k) => k.name)).toEqual(['water', 'sand dune', 'rock', 'coral']);
    const named = (m: ServerMessage): boolean => m.type === 'classes' && m.classes[1]?.name === 'sand dune';
    await expect.poll(() => wsGot.some(named), { timeout: WAIT_MS }).toBe(true);
    await expect
      .poll(() => legends.some((m) => (json(m) as { classes: Array<{ name: string }> }).classes[1]?.name === 'sand dune'))
      .toBe(true);
    // Stats of later frames carry the new name.
    const later = await collect(c, 'stegostream.reef.stats');
    // (a batch already in flight at the rename may still carry the old name)
    await expect
      .poll(() => later.length > 0 && (json(later.at(-1)!) as FrameStats).classes[1]?.name === 'sand dune', { timeout: WAIT_MS })
      .toBe(true);

    await expect(ask('pause')).resolves.toEqual({ ok: true, verb: 'pause', learning: 'paused' });
    await expect.poll(() => events.some((m) => (json(m) as { learning?: string }).learning === 'paused'), { timeout: WAIT_MS }).toBe(true);
    // The rename's legend went out once on each sink: one per head version, here and on WebSocket
    // (the pause's event came after it on both, in order).
    const versions = (ms: Array<{ headVersion: number; classes: Array<{ name: string }> }>): number[] =>
      ms.filter((m) => m.classes[1]?.name === 'sand dune').map((m) => m.headVersion);
    const natsVersions = versions(legends.map((m) => json(m) as { headVersion: number; classes: Array<{ name: string }> }));
    expect(new Set(natsVersions).size).toBe(natsVersions.length);
    const wsVersions = versions(
      wsGot.filter((m) => m.type === 'classes') as unknown as Array<{ headVersion: number; classes: Array<{ name: string }> }>,
    );
    expect(new Set(wsVersions).size).toBe(wsVersions.length);
    await expect
      .poll(
        () => wsGot.some((m) => m.type === 'event' && JSON.stringify(m.event) === JSON.stringify({ type: 'pipeline', learning: 'paused' })),
        {
          timeout: WAIT_MS,
        },
      )
      .toBe(true);
    const status = (await ask('status')) as { ok: boolean; status: { learning: string; headVersion: number } };
    expect(status).toMatchObject({
      ok: true,
      verb: 'status',
      status: { pipeline: 'nats-test', learning: 'paused', sources: { reef: 'live' } },
    });
    await expect(ask('resume')).resolves.toEqual({ ok: true, verb: 'resume', learning: 'running' });

    const snap = (await ask('snapshot')) as { ok: boolean; path: string; version: number };
    expect(snap).toMatchObject({ ok: true, verb: 'snapshot', path: checkpoint });
    // Learning resumed just before, so a round may have finished in between.
    expect(snap.version).toBeGreaterThanOrEqual(status.status.headVersion);
    expect(existsSync(checkpoint)).toBe(true);

    await expect(ask('explode', {})).resolves.toEqual({
      ok: false,
      verb: 'explode',
      error: {
        code: 'E_CONTROL',
        message: 'Unknown control verb "explode" of type string. Expected one of: rename, pause, resume, snapshot, status.',
      },
    });
    await expect(ask('rename', { classId: 9, name: 'kelp' })).resolves.toEqual({
      ok: false,
      verb: 'rename',
      error: { code: 'E_CONTROL', message: 'Class id 9 does not exist: the head has 4 classes (ids 0-3).' },
    });
    await expect(ask('rename', { classId: 'one', name: 'kelp' })).resolves.toEqual({
      ok: false,
      verb: 'rename',
      error: { code: 'E_CONTROL', message: 'Expected integer >= 0 for classId but received "one" of type string' },
    });
    // The legend is unchanged by the refused requests.
    expect(((await ask('status')) as { status: { classes: Array<{ name: string }> } }).status.classes.map((k) => k.name)).toEqual([
      'water',
      'sand dune',
      'rock',
      'coral',
    ]);
  });
});
