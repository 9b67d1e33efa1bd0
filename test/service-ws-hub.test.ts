import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import { assertClassId, type ControlHandler } from '../src/sinks/control.js';
import { startHttpService, type HttpService } from '../src/service/http-server.js';
import { createWsHub, type WsHub, type WsHubOptions } from '../src/sinks/ws-hub.js';
import { decodeImageMessage, encodeImageMessage, type ImageHeader } from '../src/sinks/ws-protocol.js';
import type { ClassInfo, FrameStats } from '../src/types.js';

const silent = pino({ level: 'silent' });

function fakeControl(): { handler: ControlHandler; calls: string[]; classes: () => ClassInfo[] } {
  let classes: ClassInfo[] = [
    { id: 0, name: 'class 0', color: [30, 90, 160] },
    { id: 1, name: 'class 1', color: [220, 190, 120] },
    { id: 2, name: 'class 2', color: [60, 160, 80] },
  ];
  const calls: string[] = [];
  const handler: ControlHandler = {
    renameClass(id, name) {
      assertClassId(classes, id);
      calls.push(`rename ${id} ${name}`);
      classes = classes.map((c) => (c.id === id ? { ...c, name } : c));
      return classes;
    },
    pauseLearning: () => void calls.push('pause'),
    resumeLearning: () => void calls.push('resume'),
    snapshotHead: () => Promise.resolve({ path: 'heads/head-v3.json', version: 3 }),
    status: () => ({ learning: 'running', streams: 2 }),
  };
  return { handler, calls, classes: () => classes };
}

function stats(stream: string, seq: number, classes: readonly ClassInfo[] = []): FrameStats {
  return {
    stream,
    seq,
    pts: seq / 25,
    capturedAt: 1_700_000_000_000 + seq * 40,
    headVersion: 1,
    classes: classes.map((c, i) => ({ ...c, pixels: 100 * (i + 1), fraction: (i + 1) / 6 })),
  };
}

type Json = Record<string, unknown> & { type: string };

/** A real `ws` client that records every message; `next` waits for one matching a predicate. */
class TestClient {
  readonly texts: Json[] = [];
  readonly images: Array<{ header: ImageHeader; bytes: Buffer }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.images.push(decodeImageMessage(data as Buffer));
      else this.texts.push(JSON.parse((data as Buffer).toString('utf8')) as Json);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {});
  }

  static open(url: string, options: ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  async subscribe(streams: string[], channels: string[]): Promise<void> {
    this.send({ type: 'subscribe', streams, channels });
    await this.next((m) => m.type === 'subscribed');
  }

  /** Resolves with the first text message after `from` that matches. */
  async next(match: (m: Json) => boolean, timeoutMs = 20_000, from = 0): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.texts.slice(from).find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(this.texts.slice(-5))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Sends and resolves with the next reply (a message of one of `types` arriving after the send). */
  async request(msg: unknown, types = ['error', 'control-result', 'pong', 'subscribed']): Promise<Json> {
    const from = this.texts.length;
    this.send(msg);
    return this.next((m) => types.includes(m.type), 5_000, from);
  }
}

describe('ws hub', () => {
  let service: HttpService | undefined;
  let hub: WsHub | undefined;
  const clients: TestClient[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await service?.close();
    await hub?.close();
    service = undefined;
    hub = undefined;
  });

  async function start(opts: WsHubOptions & { token?: string } = {}): Promise<{ hub: WsHub; url: string }> {
    const { token, ...hubOptions } = opts;
    hub = createWsHub({ logger: silent, ...hubOptions });
    service = await startHttpService({ hub, port: 0, logger: silent, ...(token === undefined ? {} : { token }) });
    return { hub, url: `ws://127.0.0.1:${service.port}/ws` };
  }

  async function client(url: string, options: ClientOptions = {}): Promise<TestClient> {
    const c = await TestClient.open(url, options);
    clients.push(c);
    return c;
  }

  it('sends hello, then only the streams and channels a client subscribed to', async () => {
    const { hub, url } = await start();
    hub.stats(stats('cam1', 0));
    const a = await client(url);
    const b = await client(url);
    await expect(a.next((m) => m.type === 'hello')).resolves.toMatchObject({ protocol: 1, streams: ['cam1'] });
    expect(hub.wantsFrames('cam1')).toBe(false);
    await a.subscribe(['cam1'], ['stats']);
    expect(hub.wantsFrames('cam1')).toBe(false);
    await b.subscribe(['*'], ['stats', 'frames', 'classes', 'events']);
    expect(hub.wantsFrames('cam2')).toBe(true);
    expect(hub.wantsMasks('cam2')).toBe(false);

    const legend: ClassInfo[] = [{ id: 0, name: 'water', color: [0, 0, 255] }];
    hub.stats(stats('cam2', 1));
    hub.frame('cam1', { seq: 1, pts: 0.04, headVersion: 1, width: 4, height: 2 }, Buffer.from([0xff, 0xd8, 1, 2]));
    hub.classes('cam2', legend, 1);
    hub.event({ type: 'source-state', stream: 'cam2', state: 'live' });
    hub.event({ type: 'head-updated', version: 2 });
    hub.mask('cam1', { seq: 1, pts: 0.04, headVersion: 1, width: 4, height: 2 }, Buffer.from([0x89, 0x50]));
    hub.stats(stats('cam1', 2)); // last: both clients follow cam1 stats, and order is kept per client

    await a.next((m) => m.type === 'stats' && m['seq'] === 2);
    await b.next((m) => m.type === 'stats' && m['seq'] === 2);
    const aData = a.texts.filter((m) => !['hello', 'subscribed'].includes(m.type));
    expect(aData.map((m) => [m.type, m['stream'], m['seq']])).toEqual([['stats', 'cam1', 2]]);
    expect(a.images).toEqual([]);
    const bData = b.texts.filter((m) => !['hello', 'subscribed'].includes(m.type));
    expect(bData.map((m) => m.type)).toEqual(['stats', 'classes', 'event', 'event', 'stats']);
    expect(bData[1]).toEqual({ type: 'classes', stream: 'cam2', headVersion: 1, classes: legend });
    expect(bData[2]).toEqual({ type: 'event', event: { type: 'source-state', stream: 'cam2', state: 'live' } });
    expect(bData[3]).toEqual({ type: 'event', event: { type: 'head-updated', version: 2 } });
    expect(b.images.map((i) => i.header.channel)).toEqual(['frames']);
  });

  it('frames binary images as a 4-byte big-endian header length, a JSON header, then the bytes', async () => {
    const { hub, url } = await start();
    const c = await client(url);
    await c.subscribe(['cam1'], ['frames', 'masks']);
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 9, 8, 7, 0xff, 0xd9]);
    hub.frame('cam1', { seq: 7, pts: 0.28, headVersion: 3, width: 640, height: 360 }, jpeg);
    hub.mask('cam1', { seq: 7, pts: 0.28, headVersion: 3, width: 640, height: 360 }, Buffer.from('png'));
    await expect.poll(() => c.images.length).toBe(2);

    // Parse the raw bytes by hand, as a client in another language would.
    const raw = encodeImageMessage(c.images[0]!.header, c.images[0]!.bytes);
    const n = raw.readUInt32BE(0);
    expect(JSON.parse(raw.subarray(4, 4 + n).toString('utf8'))).toEqual({
      channel: 'frames',
      stream: 'cam1',
      seq: 7,
      pts: 0.28,
      headVersion: 3,
      width: 640,
      height: 360,
      mime: 'image/jpeg',
    });
    expect(raw.subarray(4 + n)).toEqual(jpeg);
    expect(c.images[1]!.header).toMatchObject({ channel: 'masks', mime: 'image/png' });
    expect(c.images[1]!.bytes.toString()).toBe('png');
    expect(() => decodeImageMessage(Buffer.from([0, 0, 1, 0, 1]))).toThrow('Image message header length 256 exceeds the message (5 bytes)');
  });

  it('drops frames, never stats, for a client that stops reading, without slowing anyone', async () => {
    const { hub, url } = await start({ maxBufferedBytes: 256 * 1024, heartbeatIntervalMs: 0 });
    const fast = await client(url);
    const slow = await client(url);
    await fast.subscribe(['*'], ['stats', 'frames']);
    await slow.subscribe(['*'], ['stats', 'frames']);
    slow.ws.pause(); // reads nothing from here on

    const total = 300;
    const jpeg = Buffer.alloc(100 * 1024, 7);
    let slowest = 0;
    for (let seq = 0; seq < total; seq++) {
      // CPU time, not wall time: a busy machine may preempt this thread for longer than a call takes.
      const t0 = process.cpuUsage();
      hub.stats(stats('cam1', seq));
      hub.frame('cam1', { seq, pts: seq / 25, headVersion: 1, width: 320, height: 180 }, jpeg);
      const used = process.cpuUsage(t0);
      slowest = Math.max(slowest, (used.user + used.system) / 1000);
      // Pace on the fast client (a latch, not a sleep): it must get every frame.
      await expect.poll(() => fast.images.length, { interval: 1, timeout: 20_000 }).toBe(seq + 1);
    }
    expect(slowest).toBeLessThan(100); // sync calls that never wait for a slow client
    expect(fast.texts.filter((m) => m.type === 'stats')).toHaveLength(total);

    const dropped = hub.counters().dropped;
    expect(dropped).toBeGreaterThan(0);
    slow.ws.resume();
    await slow.next((m) => m.type === 'stats' && m['seq'] === total - 1, 10_000);
    expect(slow.texts.filter((m) => m.type === 'stats').map((m) => m['seq'])).toEqual([...Array(total).keys()]);
    await expect.poll(() => slow.images.length).toBe(total - dropped);
    const metrics = await hub.registry.metrics();
    expect(metrics).toContain(`stegostream_ws_messages_dropped_total{channel="frames"} ${dropped}`);
  });

  it('answers malformed messages with an error and keeps the connection open', async () => {
    const { url } = await start({ control: fakeControl().handler });
    const c = await client(url);
    await expect(c.request('not json')).resolves.toEqual({
      type: 'error',
      code: 'E_BAD_JSON',
      message: `Message is not valid JSON: Unexpected token 'o', "not json" is not valid JSON`,
    });
    await expect(c.request('[1,2]')).resolves.toEqual({
      type: 'error',
      code: 'E_BAD_MESSAGE',
      message: 'Expected a JSON object with a "type" field but received [1,2]',
    });
    await expect(c.request({ type: 'launch', id: 5 })).resolves.toEqual({
      type: 'error',
      code: 'E_UNKNOWN_TYPE',
      message: 'Unknown message type "launch". Expected "subscribe", "control", "history" or "ping".',
      id: 5,
    });
    await expect(c.request({ type: 'subscribe', streams: ['a'], channels: ['stats', 'video'] })).resolves.toEqual({
      type: 'error',
      code: 'E_BAD_MESSAGE',
      message: 'subscribe.channels[1]: Invalid option: expected one of "stats"|"frames"|"masks"|"raw"|"classes"|"events"|"summary"',
    });
    await expect(c.request(Buffer.from([1, 2, 3]))).resolves.toEqual({
      type: 'error',
      code: 'E_BAD_MESSAGE',
      message: 'Binary messages are not accepted; send JSON text.',
    });
    await expect(c.request({ type: 'control', id: 'r1', verb: 'explode' })).resolves.toEqual({
      type: 'error',
      id: 'r1',
      code: 'E_CONTROL',
      message: 'Unknown control verb "explode" of type string. Expected one of: rename, pause, resume, snapshot, status.',
    });
    await expect(c.request({ type: 'control', id: 'r2', verb: 'rename', name: 'sand' })).resolves.toMatchObject({
      id: 'r2',
      code: 'E_CONTROL',
      message: 'Expected integer >= 0 for classId but received undefined',
    });
    await expect(c.request({ type: 'control', id: 'r3', verb: 'rename', classId: 9, name: 'sand' })).resolves.toMatchObject({
      code: 'E_CONTROL',
      message: 'Class id 9 does not exist: the head has 3 classes (ids 0-2).',
    });
    await expect(c.request({ type: 'control', id: 'r4', verb: 'rename', classId: 1, name: 'x'.repeat(65) })).resolves.toMatchObject({
      message: `Expected non-empty string of at most 64 characters for name but received "${'x'.repeat(65)}" of type string`,
    });
    await expect(c.request({ type: 'control', id: 'r5', verb: 'rename', classId: 1, name: '  ' })).resolves.toMatchObject({
      message: 'Expected non-empty string of at most 64 characters for name but received "  " of type string',
    });
    await expect(c.request({ type: 'control', id: 'r6', verb: 'rename', classId: 1, name: 42 })).resolves.toMatchObject({
      message: 'Expected non-empty string of at most 64 characters for name but received 42 of type number',
    });
    await expect(c.request({ type: 'ping' })).resolves.toEqual({ type: 'pong' });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('runs control verbs and broadcasts a rename to every client', async () => {
    const control = fakeControl();
    const { hub, url } = await start({ control: control.handler });
    const a = await client(url);
    const b = await client(url);
    await a.subscribe(['*'], ['classes']);
    await b.subscribe(['cam1'], ['classes']);
    hub.classes('cam1', control.classes(), 4);
    await b.next((m) => m.type === 'classes');

    const from = b.texts.length;
    await expect(a.request({ type: 'control', id: 1, verb: 'rename', classId: 2, name: ' sea grass ' })).resolves.toMatchObject({
      type: 'control-result',
      id: 1,
      ok: true,
      verb: 'rename',
      classes: [{ name: 'class 0' }, { name: 'class 1' }, { id: 2, name: 'sea grass', color: [60, 160, 80] }],
    });
    const update = await b.next((m) => m.type === 'classes', 5_000, from);
    expect(update).toMatchObject({ stream: 'cam1', headVersion: 4, classes: [{}, {}, { name: 'sea grass' }] });

    await expect(a.request({ type: 'control', id: 2, verb: 'pause' })).resolves.toEqual({
      type: 'control-result',
      id: 2,
      ok: true,
      verb: 'pause',
      learning: 'paused',
    });
    await expect(a.request({ type: 'control', id: 3, verb: 'resume' })).resolves.toMatchObject({ learning: 'running' });
    await expect(a.request({ type: 'control', id: 4, verb: 'snapshot' })).resolves.toMatchObject({
      path: 'heads/head-v3.json',
      version: 3,
    });
    await expect(a.request({ type: 'control', id: 5, verb: 'status' })).resolves.toMatchObject({ status: { learning: 'running' } });
    expect(control.calls).toEqual(['rename 2 sea grass', 'pause', 'resume']);

    // A late subscriber gets the current legend at once.
    const c = await client(url);
    await c.subscribe(['cam1'], ['classes']);
    await expect(c.next((m) => m.type === 'classes')).resolves.toMatchObject({ classes: [{}, {}, { name: 'sea grass' }] });
  });

  it('closes a client that sends more than maxPayload with 1009', async () => {
    const { url } = await start({ maxPayloadBytes: 64 * 1024 });
    const c = await client(url);
    c.send(JSON.stringify({ type: 'subscribe', streams: ['x'.repeat(70 * 1024)] }));
    await expect(c.closed).resolves.toMatchObject({ code: 1009 });
  });

  it('enforces the bearer token (header or ?token=) and refuses other origins', async () => {
    const { url } = await start({ token: 's3cret' });
    await expect(TestClient.open(url)).rejects.toThrow('Unexpected server response: 401');
    await expect(TestClient.open(`${url}?token=wrong`)).rejects.toThrow('Unexpected server response: 401');
    await expect(TestClient.open(url, { headers: { Authorization: 'Bearer nope' } })).rejects.toThrow('Unexpected server response: 401');
    const byHeader = await client(url, { headers: { Authorization: 'Bearer s3cret' } });
    const byQuery = await client(`${url}?token=s3cret`);
    await expect(byHeader.next((m) => m.type === 'hello')).resolves.toBeTruthy();
    await expect(byQuery.next((m) => m.type === 'hello')).resolves.toBeTruthy();
    await expect(TestClient.open(`${url}?token=s3cret`, { origin: 'http://evil.example' })).rejects.toThrow(
      'Unexpected server response: 403',
    );
    const host = new URL(url).host;
    await expect(client(`${url}?token=s3cret`, { origin: `http://${host}` })).resolves.toBeTruthy();
  });

  it('terminates a client that stops answering pings', async () => {
    // A second between pings: a busy event loop (the client answering pings lives in it too)
    // must not cost the live client its connection. Without heartbeats the dead one would stay
    // open and the test time out.
    const { hub, url } = await start({ heartbeatIntervalMs: 1_000 });
    const dead = await client(url, { autoPong: false });
    const alive = await client(url);
    await expect(dead.closed).resolves.toMatchObject({ code: 1006 });
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    await expect.poll(() => hub.counters().clients).toBe(1);
  });

  it('close() sends 1001 to clients and is idempotent; later publishes are ignored', async () => {
    const { hub, url } = await start();
    const c = await client(url);
    await c.subscribe(['*'], ['stats']);
    const closing = Promise.all([hub.close(), hub.close()]);
    await expect(c.closed).resolves.toEqual({ code: 1001, reason: 'server shutting down' });
    await closing;
    expect(() => hub.stats(stats('cam1', 1))).not.toThrow();
    await expect(TestClient.open(url)).rejects.toThrow('Unexpected server response: 503');
  });
});
