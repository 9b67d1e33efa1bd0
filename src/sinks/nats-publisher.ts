/**
 * NATS sink: a `LivePublisher` that publishes stats, overlays, label maps, legends and events on
 * the subjects of ./nats-subjects.ts, answers control requests on `<prefix>.ctl.<verb>`, and can
 * keep a JetStream stream of stats history.
 *
 * The pipeline never waits on NATS. Calls return at once; while the client is connected they go
 * to nats.js's outbound buffer. While it is not (before the first connection, or between a
 * disconnect and the reconnect) stats, legends and events are held here, in order, up to
 * `reconnectBufSize` bytes, and sent on reconnect; beyond that bound they are dropped and counted.
 * Frames and masks are not held: a stale overlay is worth less than the stats it would push out,
 * so they are dropped and counted while disconnected. (nats.js v2 has no reconnect buffer of its
 * own: it discards what was queued on every reconnect attempt, hence this one.)
 *
 * The first connection is retried by this module (reconnectTimeWaitMs apart, forever) so that
 * `close()` can stop it; once connected, nats.js reconnects forever by itself
 * (`maxReconnectAttempts: -1`). `close()` drains (bounded by `drainTimeoutMs`) and is idempotent.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  DebugEvents,
  DiscardPolicy,
  Events,
  RetentionPolicy,
  StorageType,
  connect,
  nanos,
  type ConnectionOptions,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type StreamConfig,
} from 'nats';
import { createLogger } from '../internal/logger.js';
import { BadOptionError, ConfigError, NatsSecurityError } from '../errors.js';
import { explainNatsError, explainNatsStatus, natsConnectOptions, type NatsSecurity } from '../internal/nats-security.js';
import { nonNegativeInt, positiveInt } from '../internal/check-options.js';
import { runControl, type ControlHandler } from './control.js';
import { eventStream, type LivePublisher, type ServiceEvent } from './sink.js';
import { counter, gauge } from '../internal/metrics.js';
import type { ClassInfo, FrameStats, WindowSummary } from '../types.js';
import {
  DEFAULT_PREFIX,
  checkPrefix,
  controlSubject,
  serviceEventsSubject,
  statsWildcard,
  streamSubject,
  summarySubject,
  type StreamChannel,
} from './nats-subjects.js';
import { imageHeaders } from './image-headers.js';

export const DEFAULT_RECONNECT_TIME_WAIT_MS = 2_000;
/** Same default as the Go client's reconnect buffer. */
export const DEFAULT_RECONNECT_BUF_SIZE = 8 * 1024 * 1024;
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000;
export const DEFAULT_JETSTREAM_STREAM = 'STEGOSTREAM_STATS';
export const DEFAULT_JETSTREAM_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
export const DEFAULT_JETSTREAM_MAX_BYTES = 1024 * 1024 * 1024;
/** Repeated failures of one kind are logged at most this often. */
const LOG_INTERVAL_MS = 10_000;

export interface NatsJetStreamOptions {
  /** JetStream stream name (default STEGOSTREAM_STATS). */
  readonly stream?: string;
  /** Stats older than this are discarded, ms (default 7 days). */
  readonly maxAgeMs?: number;
  /** Oldest stats are discarded beyond this size, bytes (default 1 GiB). */
  readonly maxBytes?: number;
}

export interface NatsPublisherOptions {
  /** Server URL(s), e.g. "nats://127.0.0.1:4222". */
  readonly servers: string | readonly string[];
  /** Subject prefix (default "stegostream"). */
  readonly prefix?: string;
  /** Client name shown by the server (default "stegostream"). */
  readonly name?: string;
  /** Answers `<prefix>.ctl.<verb>` requests; without it nothing subscribes to control subjects. */
  readonly control?: ControlHandler;
  /** Publish overlay JPEGs on `.frames` (default true). */
  readonly frames?: boolean;
  /** Publish label-map PNGs on `.masks` (default false: the pipeline then skips encoding them). */
  readonly masks?: boolean;
  /** Wait between connection attempts, ms (default 2000). */
  readonly reconnectTimeWaitMs?: number;
  /** Bytes of stats/legends/events held while disconnected (default 8 MiB). */
  readonly reconnectBufSize?: number;
  /** How long `close()` waits for the drain, ms (default 5000). */
  readonly drainTimeoutMs?: number;
  /** Keep stats history in a JetStream stream (`<prefix>.*.stats`); off unless given. */
  readonly jetstream?: NatsJetStreamOptions;
  /** Extra nats.js options (auth, TLS, pingInterval...); the reconnect options above win. */
  readonly connectOptions?: Omit<ConnectionOptions, 'servers' | 'reconnect' | 'maxReconnectAttempts' | 'waitOnFirstConnect'>;
  /** Credentials and TLS (user/pass, token, NKey, creds, tls), read when the publisher is made. */
  readonly security?: NatsSecurity;
  readonly registry?: Registry;
  readonly logger?: Logger;
}

export interface NatsPublisherStatus {
  readonly connected: boolean;
  readonly reconnects: number;
  /** Bytes held for sending once connected. */
  readonly bufferedBytes: number;
  readonly published: number;
  readonly dropped: number;
}

export interface NatsPublisher extends LivePublisher {
  readonly prefix: string;
  readonly registry: Registry;
  /** Resolves once connected, subscribed to control and (if configured) the JetStream stream exists; rejects if closed first. */
  ready(): Promise<void>;
  status(): NatsPublisherStatus;
}

interface Held {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly channel: StreamChannel;
}

/** Creates the publisher and starts connecting in the background; options are checked first. */
export function natsPublisher(options: NatsPublisherOptions): NatsPublisher {
  const givenServers = [options.servers].flat();
  if (givenServers.length === 0 || givenServers.some((s) => typeof s !== 'string' || s === '')) {
    throw new BadOptionError('servers', 'NATS server URL(s) like "nats://127.0.0.1:4222"', options.servers);
  }
  const connectionName = options.name ?? 'stegostream';
  // Reads secret files now, so a missing or expired one fails the start rather than every retry.
  const secured = natsConnectOptions(connectionName, givenServers, options.security);
  const servers = secured.servers;
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const reconnectTimeWait = positiveInt('reconnectTimeWaitMs', options.reconnectTimeWaitMs, DEFAULT_RECONNECT_TIME_WAIT_MS);
  const bufLimit = nonNegativeInt('reconnectBufSize', options.reconnectBufSize, DEFAULT_RECONNECT_BUF_SIZE);
  const drainTimeoutMs = nonNegativeInt('drainTimeoutMs', options.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS);
  const js = options.jetstream === undefined ? undefined : jetStreamConfig(prefix, options.jetstream);
  const publishFrames = options.frames ?? true;
  const publishMasks = options.masks ?? false;
  const control = options.control;
  const registry = options.registry ?? new Registry();
  const log = (options.logger ?? createLogger()).child({ stage: 'nats', servers });

  const mConnected = gauge(registry, 'stegostream_nats_connected', '1 while connected to a NATS server, else 0');
  const mStatus = counter(registry, 'stegostream_nats_status_events_total', 'NATS connection status events', ['type']);
  const mPublished = counter(registry, 'stegostream_nats_messages_published_total', 'Messages handed to the NATS client', ['channel']);
  const mDropped = counter(registry, 'stegostream_nats_messages_dropped_total', 'Messages not published to NATS', ['channel', 'reason']);
  const mBuffered = gauge(registry, 'stegostream_nats_buffered_bytes', 'Bytes held while disconnected from NATS');
  const mControl = counter(registry, 'stegostream_nats_control_requests_total', 'Control requests over NATS', ['verb', 'outcome']);
  mConnected.set(0);

  let nc: NatsConnection | undefined;
  let connected = false;
  let closing: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeRetry: (() => void) | undefined;
  let jsReady = js === undefined;
  let reconnects = 0;
  let published = 0;
  let dropped = 0;
  const held: Held[] = [];
  let heldBytes = 0;
  const legends = new Map<string, { classes: readonly ClassInfo[]; headVersion: number }>();
  const lastLogged = new Map<string, number>();

  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const readyPromise = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  readyPromise.catch(() => {}); // only callers of ready() care

  function logOnce(key: string, fn: () => void): void {
    const now = Date.now();
    if (now - (lastLogged.get(key) ?? -Infinity) < LOG_INTERVAL_MS) return;
    lastLogged.set(key, now);
    fn();
  }

  function drop(channel: StreamChannel, reason: string, err?: unknown): void {
    dropped++;
    mDropped.inc({ channel, reason });
    logOnce(`drop:${reason}`, () => log.warn({ channel, reason, err, dropped }, 'NATS messages dropped'));
  }

  function publish(channel: StreamChannel, subject: string, data: Uint8Array, hdrs?: MsgHdrs): void {
    if (closing !== undefined) return drop(channel, 'closed');
    if (!connected || nc === undefined) {
      if (channel === 'frames' || channel === 'masks') return drop(channel, 'disconnected');
      if (heldBytes + data.length > bufLimit) return drop(channel, 'buffer-full');
      held.push({ subject, data, channel });
      heldBytes += data.length;
      mBuffered.set(heldBytes);
      return;
    }
    try {
      nc.publish(subject, data, hdrs === undefined ? undefined : { headers: hdrs });
      published++;
      mPublished.inc({ channel });
    } catch (err) {
      // e.g. MAX_PAYLOAD_EXCEEDED for a huge frame, or the connection closing under us.
      drop(channel, (err as { code?: string }).code ?? 'error', err);
    }
  }

  function flushHeld(): void {
    const pending = held.splice(0);
    heldBytes = 0;
    mBuffered.set(0);
    for (const h of pending) publish(h.channel, h.subject, h.data);
    if (pending.length > 0) log.info({ messages: pending.length }, 'sent messages held while disconnected');
  }

  function json(value: unknown): Uint8Array {
    return Buffer.from(JSON.stringify(value), 'utf8');
  }

  function publishLegend(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    legends.set(stream, { classes, headVersion });
    publish('classes', streamSubject(prefix, stream, 'classes'), json({ stream, headVersion, classes }));
  }

  function latestClasses(): readonly ClassInfo[] | undefined {
    let best: { classes: readonly ClassInfo[]; headVersion: number } | undefined;
    for (const l of legends.values()) if (best === undefined || l.headVersion >= best.headVersion) best = l;
    return best?.classes;
  }

  async function onControl(msg: Msg): Promise<void> {
    if (msg.reply === undefined || msg.reply === '') return; // a publish, not a request: nothing to answer
    const verb = msg.subject.slice(controlSubject(prefix, '').length);
    let args: unknown = {};
    if (msg.data.length > 0) {
      try {
        args = JSON.parse(Buffer.from(msg.data).toString('utf8'));
      } catch (err) {
        mControl.inc({ verb, outcome: 'error' });
        msg.respond(
          json({ ok: false, verb, error: { code: 'E_BAD_JSON', message: `Request body is not valid JSON: ${(err as Error).message}` } }),
        );
        return;
      }
    }
    const reply = control === undefined ? undefined : await runControl(control, verb, args, { classes: latestClasses(), logger: log });
    if (reply === undefined) return;
    mControl.inc({ verb: reply.verb ?? 'unknown', outcome: reply.ok ? 'ok' : 'error' });
    msg.respond(json(reply));
    if (reply.ok && reply.verb === 'rename') {
      // The service's handler usually publishes the renamed legend itself (through `classes()`,
      // before replying): only a legend not already sent goes out, so each goes out once.
      const renamed = JSON.stringify(reply.classes);
      for (const [stream, legend] of legends) {
        if (JSON.stringify(legend.classes) !== renamed) publishLegend(stream, reply.classes, legend.headVersion);
      }
    }
  }

  /**
   * Creates the stats history stream, or brings it to our configuration. Run on every (re)connect:
   * a server restarted without its store, or a replacement node, has no stream any more, and
   * without one the stats would go on being published with no history kept.
   */
  async function ensureJetStream(c: NatsConnection): Promise<void> {
    if (js === undefined) return;
    const jsm = await c.jetstreamManager();
    if (jsReady) {
      try {
        await jsm.streams.info(js.name);
        return;
      } catch (err) {
        // 10059: stream not found. Anything else (no JetStream yet, a timeout) is thrown.
        if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== 10059) throw err;
        log.warn({ stream: js.name }, 'JetStream stats history is gone from the server (restarted without its store?); re-creating it');
        jsReady = false;
      }
    }
    try {
      await jsm.streams.add(js);
    } catch (err) {
      // 10058: the stream exists with another configuration; bring it to ours.
      if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== 10058) throw err;
      const { name, ...update } = js;
      await jsm.streams.update(name, update);
    }
    jsReady = true;
    log.info({ stream: js.name, subjects: js.subjects }, 'JetStream stats history ready');
  }

  async function onConnected(c: NatsConnection): Promise<void> {
    nc = c;
    if (control !== undefined) {
      c.subscribe(controlSubject(prefix, '*'), {
        callback: (err, msg) => {
          if (err !== null) {
            const explained = explainNatsError(connectionName, err, secured.security);
            return explained instanceof NatsSecurityError
              ? log.error({ code: explained.code }, `control subscription failed: ${explained.message}`)
              : log.error({ err }, 'control subscription failed');
          }
          onControl(msg).catch((e: unknown) => log.error({ err: e }, 'control request failed'));
        },
      });
    }
    // Set up JetStream before releasing held stats, so they land in the history too.
    try {
      await ensureJetStream(c);
    } catch (err) {
      log.error({ err, stream: js?.name }, 'cannot set up JetStream stats history; stats are still published');
    }
    connected = true;
    mConnected.set(1);
    flushHeld();
    log.info({ server: c.getServer() }, 'connected to NATS');
    watchStatus(c).catch((err: unknown) => log.error({ err }, 'NATS status watch failed'));
    resolveReady();
  }

  async function watchStatus(c: NatsConnection): Promise<void> {
    for await (const s of c.status()) {
      mStatus.inc({ type: s.type });
      switch (s.type) {
        case Events.Disconnect:
          connected = false;
          mConnected.set(0);
          log.warn({ server: s.data }, 'disconnected from NATS; holding stats until reconnected');
          break;
        case DebugEvents.Reconnecting:
          logOnce('reconnecting', () => log.info('reconnecting to NATS'));
          break;
        case Events.Reconnect:
          reconnects++;
          try {
            await ensureJetStream(c);
          } catch (err) {
            log.error({ err }, 'cannot set up JetStream stats history');
          }
          connected = true;
          mConnected.set(1);
          log.info({ server: s.data, reconnects }, 'reconnected to NATS');
          flushHeld();
          break;
        case Events.LDM:
          log.warn({ server: s.data }, 'NATS server entering lame duck mode');
          break;
        case Events.Error: {
          // A permission lost while running: said once per cause; segmenting goes on regardless.
          const explained = explainNatsStatus(connectionName, s, secured.security);
          if (explained instanceof NatsSecurityError)
            logOnce(`security:${explained.message}`, () => log.error({ code: explained.code }, explained.message));
          else log.error({ data: s.data }, 'NATS async error');
          break;
        }
        default:
          break;
      }
    }
    connected = false;
    mConnected.set(0);
  }

  async function connectLoop(): Promise<void> {
    let attempt = 0;
    while (closing === undefined) {
      attempt++;
      try {
        const c = await connect({
          ...options.connectOptions,
          ...secured.options,
          servers: [...servers],
          name: connectionName,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait,
          // One attempt per call: this loop retries, so that close() can stop it.
          waitOnFirstConnect: false,
        });
        if (closing !== undefined) {
          await c.close();
          return;
        }
        await onConnected(c);
        return;
      } catch (err) {
        const explained = explainNatsError(connectionName, err, secured.security);
        if (explained instanceof NatsSecurityError) {
          // Retried all the same (the server's configuration may be fixed), but said once, plainly.
          logOnce('security', () => log.error({ code: explained.code, attempt }, explained.message));
        } else {
          logOnce('connect', () => log.warn({ err, attempt }, 'cannot connect to NATS yet; retrying'));
        }
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          retryTimer = setTimeout(resolve, reconnectTimeWait);
        });
      }
    }
  }

  connectLoop().catch((err: unknown) => log.error({ err }, 'NATS connect loop failed'));

  return {
    name: 'nats',
    prefix,
    registry,
    ready: () => readyPromise,
    status: () => ({ connected, reconnects, bufferedBytes: heldBytes, published, dropped }),

    stats(s: FrameStats) {
      publish('stats', streamSubject(prefix, s.stream, 'stats'), json(s));
    },

    summary(s: WindowSummary) {
      publish('summary', summarySubject(prefix, s.stream, s.window), json(s));
    },

    frame(stream, meta, jpeg) {
      if (!publishFrames) return;
      publish('frames', streamSubject(prefix, stream, 'frames'), jpeg, imageHeaders(stream, meta, 'image/jpeg'));
    },

    mask(stream, meta, png) {
      if (!publishMasks) return;
      publish('masks', streamSubject(prefix, stream, 'masks'), png, imageHeaders(stream, meta, 'image/png'));
    },

    wantsFrames: () => publishFrames && connected && closing === undefined,
    wantsMasks: () => publishMasks && connected && closing === undefined,

    classes(stream, classes, headVersion) {
      publishLegend(stream, classes, headVersion);
    },

    event(e: ServiceEvent) {
      const stream = eventStream(e);
      publish('events', stream === undefined ? serviceEventsSubject(prefix) : streamSubject(prefix, stream, 'events'), json(e));
    },

    close() {
      closing ??= (async () => {
        clearTimeout(retryTimer);
        wakeRetry?.();
        rejectReady(new Error('NATS publisher closed before it connected'));
        const c = nc;
        if (c === undefined || c.isClosed()) return;
        if (held.length > 0) log.warn({ messages: held.length }, 'closing with messages held while disconnected; they are lost');
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          c.drain().then(
            () => true,
            () => false,
          ),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), drainTimeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (!c.isClosed()) await c.close();
        connected = false;
        mConnected.set(0);
        log.info({ drained, published, dropped }, 'NATS publisher closed');
      })();
      return closing;
    },
  };
}

function jetStreamConfig(prefix: string, o: NatsJetStreamOptions): Partial<StreamConfig> & { name: string; subjects: string[] } {
  const name = o.stream ?? DEFAULT_JETSTREAM_STREAM;
  if (!/^[^\s.*>/\\]+$/.test(name)) {
    throw new ConfigError('nats.jetstream', [
      `stream: expected a name without spaces, ".", "*", ">", "/" or "\\", received ${JSON.stringify(name)}`,
    ]);
  }
  const maxAgeMs = positiveInt('jetstream.maxAgeMs', o.maxAgeMs, DEFAULT_JETSTREAM_MAX_AGE_MS);
  const maxBytes = positiveInt('jetstream.maxBytes', o.maxBytes, DEFAULT_JETSTREAM_MAX_BYTES);
  return {
    name,
    subjects: [statsWildcard(prefix)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(maxAgeMs),
    max_bytes: maxBytes,
  };
}
