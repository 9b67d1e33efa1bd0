/** The cluster viewer relays results workers publish on NATS to WebSocket clients of the viewer. */
import { once } from 'node:events';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connect, headers, type NatsConnection } from 'nats';
import { startViewerRelay } from '../src/cluster/viewer-relay.js';
import type { HttpService } from '../src/service/http-server.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';

const missing = natsServerMissing();

describe.skipIf(missing)('collect --viewer-port', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let viewer: HttpService;

  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    viewer = await startViewerRelay({ nc, prefix: 'stegostream', host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await viewer?.close();
    await nc?.close();
    await server?.dispose();
  });

  it('serves the viewer page, relays stats, legends and overlay frames from NATS, and forwards control to the trainer', async () => {
    expect((await fetch(`${viewer.url}/`)).headers.get('content-type')).toContain('text/html');
    expect((await fetch(`${viewer.url}/readyz`)).status).toBe(200);
    const ws = new WebSocket(`${viewer.url.replace('http', 'ws')}/ws`, { headers: { origin: viewer.url } });
    const texts: Array<Record<string, unknown>> = [];
    const binaries: Buffer[] = [];
    ws.on('message', (data, isBinary) =>
      isBinary ? binaries.push(data as Buffer) : texts.push(JSON.parse(String(data)) as Record<string, unknown>),
    );
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'frames', 'classes'] }));
    const until = async (cond: () => boolean): Promise<void> => {
      const end = Date.now() + 10_000;
      while (!cond()) {
        if (Date.now() > end) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until(() => texts.some((m) => m['type'] === 'subscribed'));
    const stats = { stream: 'reef', seq: 3, pts: 0.2, capturedAt: 1, headVersion: 2, classes: [] };
    nc.publish(
      'stegostream.reef.classes',
      JSON.stringify({ stream: 'reef', headVersion: 2, classes: [{ id: 0, name: 'sand', color: [1, 2, 3] }] }),
    );
    nc.publish('stegostream.reef.stats', JSON.stringify(stats));
    const h = headers();
    for (const [k, v] of Object.entries({ stream: 'reef', seq: '3', pts: '0.2', 'head-version': '2', width: '16', height: '8' }))
      h.set(k, v);
    nc.publish('stegostream.reef.frames', Buffer.from([0xff, 0xd8, 0xff, 0xd9]), { headers: h });
    await until(() => texts.some((m) => m['type'] === 'stats') && texts.some((m) => m['type'] === 'classes') && binaries.length > 0);
    expect(texts.find((m) => m['type'] === 'stats')).toEqual({ type: 'stats', ...stats });
    expect(texts.find((m) => m['type'] === 'classes')).toMatchObject({
      stream: 'reef',
      headVersion: 2,
      classes: [{ id: 0, name: 'sand' }],
    });
    expect(binaries[0]?.subarray(-4)).toEqual(Buffer.from([0xff, 0xd8, 0xff, 0xd9]));

    // A rename from a viewer goes to the trainer on <prefix>.ctl.rename.
    const asked: unknown[] = [];
    nc.subscribe('stegostream.ctl.rename', {
      callback: (_e, m) => (asked.push(m.json()), m.respond(JSON.stringify({ ok: true, verb: 'rename', classes: [] }))),
    });
    await nc.flush();
    ws.send(JSON.stringify({ type: 'control', id: 'r1', verb: 'rename', classId: 0, name: 'seabed' }));
    await until(() => texts.some((m) => m['type'] === 'control-result') && asked.length > 0);
    expect(texts.find((m) => m['type'] === 'control-result')).toMatchObject({
      id: 'r1',
      ok: true,
      verb: 'rename',
      classes: [{ id: 0, name: 'seabed' }],
    });
    expect(asked).toEqual([{ classId: 0, name: 'seabed' }]);
    ws.send(JSON.stringify({ type: 'control', id: 'r2', verb: 'rename', classId: 7, name: 'x' }));
    await until(() => texts.some((m) => m['id'] === 'r2'));
    expect(texts.find((m) => m['id'] === 'r2')).toEqual({
      type: 'error',
      id: 'r2',
      code: 'E_CONTROL',
      message: 'Class id 7 does not exist: the head has 1 classes (ids 0-0).',
    });
    ws.close();
  });
});
