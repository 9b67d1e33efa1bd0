/**
 * The live viewer for a cluster: the service's viewer page and WebSocket protocol (`/`, `/ws`,
 * `/metrics`, `/healthz`, `/readyz`), fed from the results workers publish on NATS instead of
 * from a local pipeline: `<prefix>.*.stats`, `.frames`, `.classes`, `.events` and
 * `<prefix>.events` are relayed to the WebSocket hub as they come (a viewer is live: it shows
 * what arrives, duplicates and all; the collector is what puts results in order). Control requests
 * from viewers (rename, pause, resume, snapshot) are forwarded to the trainer on `<prefix>.ctl.<verb>`.
 */
import type { Msg, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createWsHub } from '../sinks/ws-hub.js';
import { controlSubject, serviceEventsSubject } from '../sinks/nats-subjects.js';
import { assertClassId, type ControlHandler } from '../sinks/control.js';
import { ControlError } from '../errors.js';
import { startHttpService, type HttpService } from '../service/http-server.js';
import type { ServiceEvent } from '../sinks/sink.js';
import type { ClassInfo, FrameStats } from '../types.js';

/** How long a control request waits for the trainer, ms. */
const CONTROL_TIMEOUT_MS = 5_000;

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
  const log = logger.child({ stage: 'viewer' });
  // Control from viewers goes to the trainer over NATS (<prefix>.ctl.<verb>). Renames answer at once
  // with the legend as it will be (checked against the latest legend seen); the trainer publishes it.
  let legend: { classes: ClassInfo[]; headVersion: number } | undefined;
  const streams = new Set<string>();
  const ask = async (verb: string, body: object = {}): Promise<Record<string, unknown>> => {
    const reply = await nc.request(controlSubject(prefix, verb), JSON.stringify(body), { timeout: CONTROL_TIMEOUT_MS });
    return reply.json<Record<string, unknown>>();
  };
  const tell = (verb: string, body: object = {}): void =>
    void ask(verb, body).then(
      (r) => (r['ok'] === true ? undefined : log.warn({ verb, reply: r }, 'the trainer refused a control request')),
      (err: unknown) => log.warn({ err: (err as Error).message, verb }, 'no trainer answered a control request'),
    );
  const control: ControlHandler = {
    renameClass(id, name) {
      const classes = legend?.classes ?? [];
      assertClassId(classes, id);
      tell('rename', { classId: id, name });
      return classes.map((c) => (c.id === id ? { ...c, name } : c));
    },
    pauseLearning: () => tell('pause'),
    resumeLearning: () => tell('resume'),
    async snapshotHead() {
      const r = await ask('snapshot').catch((err: unknown) => {
        throw new ControlError(`No trainer answered on ${controlSubject(prefix, 'snapshot')}: ${(err as Error).message}`);
      });
      if (r['ok'] !== true)
        throw new ControlError(String((r['error'] as { message?: string } | undefined)?.message ?? 'the trainer refused'));
      return { path: String(r['path']), version: Number(r['version']) };
    },
    status: () => ({ role: 'viewer', streams: [...streams], headVersion: legend?.headVersion ?? 0 }),
  };
  const hub = createWsHub({ registry, logger, control });
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
      if (!s) return;
      streams.add(s.stream);
      hub.stats(s);
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
      if (!c) return;
      if (legend === undefined || c.headVersion >= legend.headVersion) legend = { classes: c.classes, headVersion: c.headVersion };
      hub.classes(c.stream, c.classes, c.headVersion);
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
