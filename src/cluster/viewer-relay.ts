/**
 * The live viewer for a cluster: the service's viewer page and WebSocket protocol (`/`, `/ws`,
 * `/metrics`, `/healthz`, `/readyz`), fed from the results workers publish on NATS instead of
 * from a local pipeline: `<prefix>.*.stats`, `.frames`, `.classes`, `.events` and
 * `<prefix>.events` are relayed to the WebSocket hub as they come (a viewer is live: it shows
 * what arrives, duplicates and all; the collector is what puts results in order). Control requests
 * from viewers get an E_CONTROL reply: renames belong to the trainer's head.
 */
import type { Msg, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createWsHub } from '../sinks/ws-hub.js';
import { serviceEventsSubject } from '../sinks/nats-subjects.js';
import { startHttpService, type HttpService } from '../service/http-server.js';
import type { ServiceEvent } from '../service/live-publisher.js';
import type { ClassInfo, FrameStats } from '../types.js';

export interface ViewerRelayOptions {
  readonly nc: NatsConnection;
  readonly prefix: string;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
}

export async function startViewerRelay(options: ViewerRelayOptions): Promise<HttpService> {
  const { nc, prefix, logger } = options;
  const registry = new Registry();
  const hub = createWsHub({ registry, logger });
  const log = logger.child({ stage: 'viewer' });
  const parse = <T>(m: Msg): T | undefined => {
    try {
      return JSON.parse(Buffer.from(m.data).toString('utf8')) as T;
    } catch {
      return undefined;
    }
  };
  const on = (subject: string, fn: (m: Msg) => void): Subscription =>
    nc.subscribe(subject, {
      callback: (err, m) => {
        if (err) return log.error({ err, subject }, 'subscription failed');
        try {
          fn(m);
        } catch (e) {
          log.warn({ err: e, subject: m.subject }, 'cannot relay a message');
        }
      },
    });
  const subs = [
    on(`${prefix}.*.stats`, (m) => {
      const s = parse<FrameStats>(m);
      if (s) hub.stats(s);
    }),
    on(`${prefix}.*.frames`, (m) => {
      const h = m.headers;
      const stream = h?.get('stream') ?? '';
      if (stream === '' || !hub.wantsFrames(stream)) return;
      const n = (k: string): number => Number(h?.get(k) ?? 0);
      hub.frame(
        stream,
        { seq: n('seq'), pts: n('pts'), headVersion: n('head-version'), width: n('width'), height: n('height') },
        Buffer.from(m.data),
      );
    }),
    on(`${prefix}.*.classes`, (m) => {
      const c = parse<{ stream: string; headVersion: number; classes: ClassInfo[] }>(m);
      if (c) hub.classes(c.stream, c.classes, c.headVersion);
    }),
    on(`${prefix}.*.events`, (m) => {
      const e = parse<ServiceEvent>(m);
      if (e) hub.event(e);
    }),
    on(serviceEventsSubject(prefix), (m) => {
      const e = parse<ServiceEvent>(m);
      if (e) hub.event(e);
    }),
  ];
  const http = await startHttpService({
    hub,
    registry,
    host: options.host,
    port: options.port,
    logger,
    ready: () => (nc.isClosed() ? { ready: false, reason: 'not connected to NATS' } : { ready: true }),
  });
  log.info({ url: http.url }, 'cluster viewer listening');
  return {
    ...http,
    close: async () => {
      for (const s of subs) s.unsubscribe();
      await http.close();
    },
  };
}
