import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startHttpService, type HttpService, type Readiness } from '../src/service/http-server.js';
import { createWsHub } from '../src/sinks/ws-hub.js';

const silent = pino({ level: 'silent' });

describe('http service', () => {
  const services: HttpService[] = [];
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
  });

  it('serves /healthz, /readyz from the pipeline, /metrics from its registry and the viewer', async () => {
    const registry = new Registry();
    const frames = new Counter({ name: 'stegostream_frames_total', help: 'frames', registers: [registry] });
    frames.inc(3);
    const hub = createWsHub({ registry, logger: silent });
    let readiness: Readiness = { ready: false, reason: 'loading backbone' };
    const service = await startHttpService({ hub, registry, ready: () => readiness, port: 0, logger: silent });
    services.push(service);
    expect(service.port).toBeGreaterThan(0);
    expect(service.url).toBe(`http://127.0.0.1:${service.port}`);

    const health = await fetch(`${service.url}/healthz`);
    expect(health.status).toBe(200);
    await expect(health.json()).resolves.toEqual({ ok: true });

    const notReady = await fetch(`${service.url}/readyz`);
    expect(notReady.status).toBe(503);
    await expect(notReady.json()).resolves.toEqual({ ready: false, reason: 'loading backbone' });
    readiness = { ready: true };
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
    await expect(ready.json()).resolves.toEqual({ ready: true });

    const metrics = await fetch(`${service.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toBe(registry.contentType);
    const text = await metrics.text();
    expect(text).toContain('stegostream_frames_total 3');
    expect(text).toContain('# TYPE stegostream_ws_clients gauge');
    expect(text).toContain('stegostream_ws_clients 0');

    const page = await fetch(`${service.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('<title>stegostream · live</title>');

    expect((await fetch(`${service.url}/nope`)).status).toBe(404);
    expect((await fetch(`${service.url}/healthz`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${service.url}/ws`)).status).toBe(426);
  });

  it('is not ready without a pipeline, and a failing readiness check is a 503 with the reason', async () => {
    const bare = await startHttpService({ port: 0, logger: silent });
    services.push(bare);
    expect(await (await fetch(`${bare.url}/readyz`)).json()).toEqual({ ready: false, reason: 'no pipeline attached' });
    const throwing = await startHttpService({
      port: 0,
      logger: silent,
      ready: () => {
        throw new Error('pipeline state unknown');
      },
    });
    services.push(throwing);
    const res = await fetch(`${throwing.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, reason: 'readiness check failed: pipeline state unknown' });
  });

  it('reports a port in use as a ListenError with the way to pick another, and close() is idempotent and closes clients with 1001', async () => {
    const hub = createWsHub({ logger: silent });
    const first = await startHttpService({ hub, port: 0, logger: silent, closeTimeoutMs: 500 });
    services.push(first);
    await expect(startHttpService({ port: first.port, logger: silent })).rejects.toThrow(
      `Cannot listen on 127.0.0.1:${first.port}: the port is in use (EADDRINUSE); choose another host or port`,
    );
    await expect(startHttpService({ port: first.port, logger: silent, portHint: 'use --health-port' })).rejects.toMatchObject({
      code: 'E_LISTEN',
      message: `Cannot listen on 127.0.0.1:${first.port}: the port is in use (EADDRINUSE); use --health-port`,
    });
    const ws = new WebSocket(`ws://127.0.0.1:${first.port}/ws`);
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await Promise.all([first.close(), first.close()]);
    expect(await closed).toBe(1001);
    await expect(fetch(`${first.url}/healthz`)).rejects.toThrow();
  });
  it('listens before the pipeline exists: /ws answers 503 until the hub is attached, then serves it', async () => {
    const service = await startHttpService({ hubLater: true, port: 0, logger: silent });
    services.push(service);
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const early = new WebSocket(`${service.url.replace(/^http/, 'ws')}/ws`);
    await expect(new Promise((resolve, reject) => (early.once('open', resolve), early.once('error', reject)))).rejects.toThrow(
      'Unexpected server response: 503',
    );
    service.attachHub(createWsHub({ logger: silent }));
    const ws = new WebSocket(`${service.url.replace(/^http/, 'ws')}/ws`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.terminate();
  });
});
