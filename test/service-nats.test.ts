import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Msg, type NatsConnection } from 'nats';
import { assertClassId, type ControlHandler } from '../src/sinks/control.js';
import { natsPublisher, type NatsPublisher, type NatsPublisherOptions } from '../src/sinks/nats-publisher.js';
import type { ClassInfo, FrameStats } from '../src/types.js';
import { NatsServer, freePort, natsServerMissing } from './helpers/nats-server.js';

const silent = pino({ level: 'silent' });
const missing = natsServerMissing();

function fakeControl(): { handler: ControlHandler; calls: string[] } {
  let classes: ClassInfo[] = [
    { id: 0, name: 'class 0', color: [30, 90, 160] },
    { id: 1, name: 'class 1', color: [220, 190, 120] },
  ];
  const calls: string[] = [];
  return {
    calls,
    handler: {
      renameClass(id, name) {
        assertClassId(classes, id);
        calls.push(`rename ${id} ${name}`);
        classes = classes.map((c) => (c.id === id ? { ...c, name } : c));
        return classes;
      },
      pauseLearning: () => void calls.push('pause'),
      resumeLearning: () => void calls.push('resume'),
      snapshotHead: () => Promise.resolve({ path: 'heads/head-v7.json', version: 7 }),
      status: () => ({ learning: 'running' }),
    },
  };
}

function stats(stream: string, seq: number): FrameStats {
  return {
    stream,
    seq,
    pts: seq / 25,
    capturedAt: 1_700_000_000_000 + seq,
    headVersion: 2,
    classes: [{ id: 0, name: 'water', color: [0, 80, 200], pixels: 640, fraction: 1 }],
  };
}

/** A plain subscriber that collects messages on a subject (after the server has the interest). */
async function collect(nc: NatsConnection, subject: string): Promise<Msg[]> {
  const got: Msg[] = [];
  nc.subscribe(subject, { callback: (_err, msg) => void got.push(msg) });
  await nc.flush();
  return got;
}

const json = (m: Msg): unknown => JSON.parse(Buffer.from(m.data).toString('utf8'));

describe.skipIf(missing !== undefined)('nats publisher', () => {
  let server: NatsServer;
  const publishers: NatsPublisher[] = [];
  const conns: NatsConnection[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(async () => {
    await server?.dispose();
  });
  afterEach(async () => {
    await Promise.all(publishers.splice(0).map((p) => p.close()));
    await Promise.all(conns.splice(0).map((c) => c.close()));
    await server.restart(); // a test may leave it stopped
  });

  function publisher(options: Partial<NatsPublisherOptions> = {}): NatsPublisher {
    const p = natsPublisher({ servers: server.url, logger: silent, reconnectTimeWaitMs: 100, ...options });
    publishers.push(p);
    return p;
  }

  async function client(): Promise<NatsConnection> {
    const nc = await connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    conns.push(nc);
    return nc;
  }

  it('publishes stats, frames with headers, masks, legends and events on their subjects', async () => {
    const pub = publisher({ masks: true });
    await pub.ready();
    const nc = await client();
    const got = await collect(nc, 'stegostream.>');

    const meta = { seq: 12, pts: 0.48, headVersion: 2, width: 320, height: 180 };
    const legend: ClassInfo[] = [{ id: 0, name: 'water', color: [0, 80, 200] }];
    expect(pub.wantsFrames('dive.cam 1')).toBe(true);
    expect(pub.wantsMasks('dive.cam 1')).toBe(true);
    pub.stats(stats('dive.cam 1', 12));
    pub.frame('dive.cam 1', meta, Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
    pub.mask('dive.cam 1', meta, Buffer.from('png-bytes'));
    pub.classes('dive.cam 1', legend, 2);
    pub.event({ type: 'source-state', stream: 'dive.cam 1', state: 'live' });
    pub.event({ type: 'head-updated', version: 3 });
    await expect.poll(() => got.length).toBe(6);

    expect(got.map((m) => m.subject)).toEqual([
      'stegostream.dive_cam_1.stats',
      'stegostream.dive_cam_1.frames',
      'stegostream.dive_cam_1.masks',
      'stegostream.dive_cam_1.classes',
      'stegostream.dive_cam_1.events',
      'stegostream.events',
    ]);
    expect(json(got[0]!)).toEqual(stats('dive.cam 1', 12));
    const frame = got[1]!;
    expect(Buffer.from(frame.data)).toEqual(Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
    expect(frame.headers?.get('stream')).toBe('dive.cam 1');
    expect(frame.headers?.get('seq')).toBe('12');
    expect(frame.headers?.get('pts')).toBe('0.48');
    expect(frame.headers?.get('head-version')).toBe('2');
    expect(frame.headers?.get('content-type')).toBe('image/jpeg');
    expect(got[2]!.headers?.get('content-type')).toBe('image/png');
    expect(json(got[3]!)).toEqual({ stream: 'dive.cam 1', headVersion: 2, classes: legend });
    expect(json(got[4]!)).toEqual({ type: 'source-state', stream: 'dive.cam 1', state: 'live' });
    expect(json(got[5]!)).toEqual({ type: 'head-updated', version: 3 });
    expect(pub.status()).toMatchObject({ connected: true, published: 6, dropped: 0 });
  });

  it('answers control requests on <prefix>.ctl.<verb>, bad ones with an error reply', async () => {
    const control = fakeControl();
    const pub = publisher({ prefix: 'site1.stego', control: control.handler });
    await pub.ready();
    pub.classes(
      'cam1',
      [
        { id: 0, name: 'class 0', color: [30, 90, 160] },
        { id: 1, name: 'class 1', color: [220, 190, 120] },
      ],
      5,
    );
    const nc = await client();
    const legends = await collect(nc, 'site1.stego.cam1.classes');
    const ask = async (verb: string, body?: unknown): Promise<unknown> =>
      json(
        await nc.request(
          `site1.stego.ctl.${verb}`,
          body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
          { timeout: 15_000 },
        ),
      );

    await expect(ask('rename', { classId: 1, name: 'sand' })).resolves.toEqual({
      ok: true,
      verb: 'rename',
      classes: [
        { id: 0, name: 'class 0', color: [30, 90, 160] },
        { id: 1, name: 'sand', color: [220, 190, 120] },
      ],
    });
    await expect.poll(() => legends.length).toBe(1);
    expect(json(legends[0]!)).toMatchObject({ stream: 'cam1', headVersion: 5, classes: [{}, { name: 'sand' }] });
    await expect(ask('pause')).resolves.toEqual({ ok: true, verb: 'pause', learning: 'paused' });
    await expect(ask('resume', {})).resolves.toEqual({ ok: true, verb: 'resume', learning: 'running' });
    await expect(ask('snapshot')).resolves.toEqual({ ok: true, verb: 'snapshot', path: 'heads/head-v7.json', version: 7 });
    await expect(ask('status')).resolves.toEqual({ ok: true, verb: 'status', status: { learning: 'running' } });

    await expect(ask('explode')).resolves.toEqual({
      ok: false,
      verb: 'explode',
      error: {
        code: 'E_CONTROL',
        message: 'Unknown control verb "explode" of type string. Expected one of: rename, pause, resume, snapshot, status.',
      },
    });
    await expect(ask('rename', '{"classId":')).resolves.toEqual({
      ok: false,
      verb: 'rename',
      error: { code: 'E_BAD_JSON', message: 'Request body is not valid JSON: Unexpected end of JSON input' },
    });
    await expect(ask('rename', { name: 'sand' })).resolves.toMatchObject({
      ok: false,
      error: { code: 'E_CONTROL', message: 'Expected integer >= 0 for classId but received undefined' },
    });
    await expect(ask('rename', { classId: 5, name: 'sand' })).resolves.toMatchObject({
      error: { message: 'Class id 5 does not exist: the head has 2 classes (ids 0-1).' },
    });
    await expect(ask('rename', { classId: 0, name: '' })).resolves.toMatchObject({
      error: { message: 'Expected non-empty string of at most 64 characters for name but received "" of type string' },
    });
    expect(control.calls).toEqual(['rename 1 sand', 'pause', 'resume']);
  });

  it('keeps stats history in JetStream', async () => {
    const pub = publisher({ jetstream: { stream: 'HISTORY_A', maxAgeMs: 3_600_000, maxBytes: 10_000_000 } });
    await pub.ready();
    for (let seq = 0; seq < 5; seq++) pub.stats(stats('cam1', seq));
    pub.frame('cam1', { seq: 4, pts: 0.16, headVersion: 2, width: 2, height: 2 }, Buffer.alloc(10));
    const jsm = await (await client()).jetstreamManager();
    await expect.poll(async () => (await jsm.streams.info('HISTORY_A')).state.messages).toBe(5);
    const info = await jsm.streams.info('HISTORY_A');
    expect(info.config).toMatchObject({ subjects: ['stegostream.*.stats'], max_age: 3_600_000 * 1e6, max_bytes: 10_000_000 });
    const first = await jsm.streams.getMessage('HISTORY_A', { seq: 1 });
    expect(first.subject).toBe('stegostream.cam1.stats');
    expect(first.json()).toEqual(stats('cam1', 0));
    await jsm.streams.delete('HISTORY_A');
  });

  it('survives a server restart: never throws or blocks while down, holds stats, delivers after', async () => {
    const pub = publisher({ jetstream: { stream: 'HISTORY_B' } });
    await pub.ready();
    pub.stats(stats('cam1', 0));
    const jsm0 = await (await client()).jetstreamManager();
    // Core NATS is at-most-once: a message in flight when the server dies is lost, so let it land.
    await expect.poll(async () => (await jsm0.streams.info('HISTORY_B')).state.messages).toBe(1);

    await server.stop();
    await expect.poll(() => pub.status().connected).toBe(false);
    expect(pub.wantsFrames('cam1')).toBe(false);
    let slowest = 0;
    for (let seq = 1; seq <= 50; seq++) {
      // CPU time, not wall time: a busy machine may preempt this thread for longer than a call takes.
      const t0 = process.cpuUsage();
      pub.stats(stats('cam1', seq));
      pub.frame('cam1', { seq, pts: seq / 25, headVersion: 2, width: 2, height: 2 }, Buffer.alloc(1000));
      pub.event({ type: 'source-state', stream: 'cam1', state: 'stalled' });
      const used = process.cpuUsage(t0);
      slowest = Math.max(slowest, (used.user + used.system) / 1000);
    }
    expect(slowest).toBeLessThan(100); // sync calls that never wait for the server
    expect(pub.status().bufferedBytes).toBeGreaterThan(0);
    expect(pub.status().dropped).toBe(50); // the frames; stats and events are held

    await server.restart();
    await expect.poll(() => pub.status().connected, { timeout: 10_000 }).toBe(true);
    expect(pub.status()).toMatchObject({ reconnects: 1, bufferedBytes: 0 });
    const nc = await client();
    const live = await collect(nc, 'stegostream.cam1.stats');
    pub.stats(stats('cam1', 51));
    await expect.poll(() => live.length).toBe(1);
    expect(json(live[0]!)).toEqual(stats('cam1', 51));

    // Stats held during the outage reached the history, in order.
    const jsm = await nc.jetstreamManager();
    await expect.poll(async () => (await jsm.streams.info('HISTORY_B')).state.messages).toBe(52);
    expect((await jsm.streams.getMessage('HISTORY_B', { seq: 2 })).json()).toEqual(stats('cam1', 1));
    expect((await jsm.streams.getMessage('HISTORY_B', { seq: 51 })).json()).toEqual(stats('cam1', 50));
    const metrics = await pub.registry.metrics();
    expect(metrics).toContain('stegostream_nats_messages_dropped_total{channel="frames",reason="disconnected"} 50');
    expect(metrics).toContain('stegostream_nats_connected 1');
    expect(metrics).toContain('stegostream_nats_status_events_total{type="disconnect"} 1');
    await jsm.streams.delete('HISTORY_B');
  });

  it('drops stats beyond reconnectBufSize while it has never connected, and close() ends the retries', async () => {
    const port = await freePort(); // nothing listens here
    const pub = natsPublisher({ servers: `nats://127.0.0.1:${port}`, logger: silent, reconnectTimeWaitMs: 50, reconnectBufSize: 2_000 });
    const ready = pub.ready();
    for (let seq = 0; seq < 20; seq++) pub.stats(stats('cam1', seq));
    // Held in order until the next one would pass the bound; that one and all later are dropped.
    let fits = 0;
    let bytes = 0;
    while (fits < 20 && bytes + JSON.stringify(stats('cam1', fits)).length <= 2_000) bytes += JSON.stringify(stats('cam1', fits++)).length;
    const { bufferedBytes, dropped } = pub.status();
    expect(bufferedBytes).toBe(bytes);
    expect(dropped).toBe(20 - fits);
    expect(await pub.registry.metrics()).toContain(
      `stegostream_nats_messages_dropped_total{channel="stats",reason="buffer-full"} ${dropped}`,
    );
    await pub.close();
    await expect(ready).rejects.toThrow('NATS publisher closed before it connected');
  });

  it('connects when the server comes up after it, sending what it held', async () => {
    await server.stop();
    const pub = publisher({ jetstream: { stream: 'HISTORY_C' } });
    for (let seq = 0; seq < 3; seq++) pub.stats(stats('cam2', seq));
    await server.restart();
    await pub.ready();
    const jsm = await (await client()).jetstreamManager();
    // The stream was created before the held stats went out, so none is missing.
    await expect.poll(async () => (await jsm.streams.info('HISTORY_C')).state.messages).toBe(3);
    await jsm.streams.delete('HISTORY_C');
  });

  it('checks options at call time', () => {
    expect(() => natsPublisher({ servers: [] })).toThrow(
      'Expected NATS server URL(s) like "nats://127.0.0.1:4222" for servers but received  of type object',
    );
    expect(() => natsPublisher({ servers: server.url, prefix: 'a..b' })).toThrow(
      'Expected NATS subject prefix like "stegostream" or "site1.stego" (tokens of A-Z a-z 0-9 _ -, joined by dots) for prefix but received "a..b" of type string',
    );
    expect(() => natsPublisher({ servers: server.url, reconnectBufSize: -1 })).toThrow(
      'Expected integer >= 0 for reconnectBufSize but received -1 of type number',
    );
  });
});
