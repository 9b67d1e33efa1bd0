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
import { eventStream, type ImageMeta, type LivePublisher, type ServiceEvent } from './sink.js';
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
  return new Publisher(options);
}

/** Metrics of the publisher, made once per registry. */
function publisherMetrics(registry: Registry) {
  return {
    connected: gauge(registry, 'stegostream_nats_connected', '1 while connected to a NATS server, else 0'),
    status: counter(registry, 'stegostream_nats_status_events_total', 'NATS connection status events', ['type']),
    published: counter(registry, 'stegostream_nats_messages_published_total', 'Messages handed to the NATS client', ['channel']),
    dropped: counter(registry, 'stegostream_nats_messages_dropped_total', 'Messages not published to NATS', ['channel', 'reason']),
    buffered: gauge(registry, 'stegostream_nats_buffered_bytes', 'Bytes held while disconnected from NATS'),
    control: counter(registry, 'stegostream_nats_control_requests_total', 'Control requests over NATS', ['verb', 'outcome']),
  };
}

function json(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** The JetStream API error code of `err`, if it is one. */
function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } }).api_error?.err_code;
}

/**
 * The publisher's state and handlers. A class rather than one closure: publishing and holding,
 * control requests, JetStream set-up and the connection's life each read as a few short methods.
 */
class Publisher implements NatsPublisher {
  readonly name = 'nats';
  readonly prefix: string;
  readonly registry: Registry;
  private readonly options: NatsPublisherOptions;
  private readonly connectionName: string;
  private readonly secured: ReturnType<typeof natsConnectOptions>;
  private readonly reconnectTimeWait: number;
  private readonly bufLimit: number;
  private readonly drainTimeoutMs: number;
  private readonly js: ReturnType<typeof jetStreamConfig> | undefined;
  private readonly publishFrames: boolean;
  private readonly publishMasks: boolean;
  private readonly control: ControlHandler | undefined;
  private readonly log: Logger;
  private readonly m: ReturnType<typeof publisherMetrics>;

  private nc: NatsConnection | undefined;
  private connected = false;
  private closing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  private jsReady: boolean;
  private reconnects = 0;
  private published = 0;
  private dropped = 0;
  private readonly held: Held[] = [];
  private heldBytes = 0;
  private readonly legends = new Map<string, { classes: readonly ClassInfo[]; headVersion: number }>();
  private readonly lastLogged = new Map<string, number>();
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;

  constructor(options: NatsPublisherOptions) {
    const givenServers = [options.servers].flat();
    if (givenServers.length === 0 || givenServers.some((s) => typeof s !== 'string' || s === '')) {
      throw new BadOptionError('servers', 'NATS server URL(s) like "nats://127.0.0.1:4222"', options.servers);
    }
    this.options = options;
    this.connectionName = options.name ?? 'stegostream';
    // Reads secret files now, so a missing or expired one fails the start rather than every retry.
    this.secured = natsConnectOptions(this.connectionName, givenServers, options.security);
    this.prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
    this.reconnectTimeWait = positiveInt('reconnectTimeWaitMs', options.reconnectTimeWaitMs, DEFAULT_RECONNECT_TIME_WAIT_MS);
    this.bufLimit = nonNegativeInt('reconnectBufSize', options.reconnectBufSize, DEFAULT_RECONNECT_BUF_SIZE);
    this.drainTimeoutMs = nonNegativeInt('drainTimeoutMs', options.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS);
    this.js = options.jetstream === undefined ? undefined : jetStreamConfig(this.prefix, options.jetstream);
    this.jsReady = this.js === undefined;
    this.publishFrames = options.frames ?? true;
    this.publishMasks = options.masks ?? false;
    this.control = options.control;
    this.registry = options.registry ?? new Registry();
    this.log = (options.logger ?? createLogger()).child({ stage: 'nats', servers: this.secured.servers });
    this.m = publisherMetrics(this.registry);
    this.m.connected.set(0);
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => {}); // only callers of ready() care
    this.connectLoop().catch((err: unknown) => this.log.error({ err }, 'NATS connect loop failed'));
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  status(): NatsPublisherStatus {
    return {
      connected: this.connected,
      reconnects: this.reconnects,
      bufferedBytes: this.heldBytes,
      published: this.published,
      dropped: this.dropped,
    };
  }

  // ---- publishing and holding ----

  private logOnce(key: string, fn: () => void): void {
    const now = Date.now();
    if (now - (this.lastLogged.get(key) ?? -Infinity) < LOG_INTERVAL_MS) return;
    this.lastLogged.set(key, now);
    fn();
  }

  private drop(channel: StreamChannel, reason: string, err?: unknown): void {
    this.dropped++;
    this.m.dropped.inc({ channel, reason });
    this.logOnce(`drop:${reason}`, () => this.log.warn({ channel, reason, err, dropped: this.dropped }, 'NATS messages dropped'));
  }

  private publish(channel: StreamChannel, subject: string, data: Uint8Array, hdrs?: MsgHdrs): void {
    if (this.closing !== undefined) return this.drop(channel, 'closed');
    if (!this.connected || this.nc === undefined) {
      if (channel === 'frames' || channel === 'masks') return this.drop(channel, 'disconnected');
      if (this.heldBytes + data.length > this.bufLimit) return this.drop(channel, 'buffer-full');
      this.held.push({ subject, data, channel });
      this.heldBytes += data.length;
      this.m.buffered.set(this.heldBytes);
      return;
    }
    try {
      this.nc.publish(subject, data, hdrs === undefined ? undefined : { headers: hdrs });
      this.published++;
      this.m.published.inc({ channel });
    } catch (err) {
      // e.g. MAX_PAYLOAD_EXCEEDED for a huge frame, or the connection closing under us.
      this.drop(channel, (err as { code?: string }).code ?? 'error', err);
    }
  }

  private flushHeld(): void {
    const pending = this.held.splice(0);
    this.heldBytes = 0;
    this.m.buffered.set(0);
    for (const h of pending) this.publish(h.channel, h.subject, h.data);
    if (pending.length > 0) this.log.info({ messages: pending.length }, 'sent messages held while disconnected');
  }

  private publishLegend(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    this.legends.set(stream, { classes, headVersion });
    this.publish('classes', streamSubject(this.prefix, stream, 'classes'), json({ stream, headVersion, classes }));
  }

  private latestClasses(): readonly ClassInfo[] | undefined {
    let best: { classes: readonly ClassInfo[]; headVersion: number } | undefined;
    for (const l of this.legends.values()) if (best === undefined || l.headVersion >= best.headVersion) best = l;
    return best?.classes;
  }

  // ---- control requests ----

  /** Subscribes to the control subjects when there is a handler; says whether it did. */
  private subscribeControl(c: NatsConnection): boolean {
    if (this.control === undefined) return false;
    c.subscribe(controlSubject(this.prefix, '*'), {
      callback: (err, msg) => {
        if (err !== null) {
          const explained = explainNatsError(this.connectionName, err, this.secured.security);
          return explained instanceof NatsSecurityError
            ? this.log.error({ code: explained.code }, `control subscription failed: ${explained.message}`)
            : this.log.error({ err }, 'control subscription failed');
        }
        this.onControl(msg).catch((e: unknown) => this.log.error({ err: e }, 'control request failed'));
      },
    });
    return true;
  }

  private async onControl(msg: Msg): Promise<void> {
    if (msg.reply === undefined || msg.reply === '') return; // a publish, not a request: nothing to answer
    const verb = msg.subject.slice(controlSubject(this.prefix, '').length);
    let args: unknown = {};
    if (msg.data.length > 0) {
      try {
        args = JSON.parse(Buffer.from(msg.data).toString('utf8'));
      } catch (err) {
        this.m.control.inc({ verb, outcome: 'error' });
        msg.respond(
          json({ ok: false, verb, error: { code: 'E_BAD_JSON', message: `Request body is not valid JSON: ${(err as Error).message}` } }),
        );
        return;
      }
    }
    const reply =
      this.control === undefined
        ? undefined
        : await runControl(this.control, verb, args, { classes: this.latestClasses(), logger: this.log });
    if (reply === undefined) return;
    this.m.control.inc({ verb: reply.verb ?? 'unknown', outcome: reply.ok ? 'ok' : 'error' });
    msg.respond(json(reply));
    if (reply.ok && reply.verb === 'rename') {
      // The service's handler usually publishes the renamed legend itself (through `classes()`,
      // before replying): only a legend not already sent goes out, so each goes out once.
      const renamed = JSON.stringify(reply.classes);
      for (const [stream, legend] of this.legends) {
        if (JSON.stringify(legend.classes) !== renamed) this.publishLegend(stream, reply.classes, legend.headVersion);
      }
    }
  }

  // ---- JetStream ----

  /**
   * Creates the stats history stream, or brings it to our configuration. Run on every (re)connect:
   * a server restarted without its store, or a replacement node, has no stream any more, and
   * without one the stats would go on being published with no history kept.
   */
  private async ensureJetStream(c: NatsConnection): Promise<void> {
    const js = this.js;
    if (js === undefined) return;
    const jsm = await c.jetstreamManager();
    if (this.jsReady) {
      try {
        await jsm.streams.info(js.name);
        return;
      } catch (err) {
        // 10059: stream not found. Anything else (no JetStream yet, a timeout) is thrown.
        if (apiErrorCode(err) !== 10059) throw err;
        this.log.warn(
          { stream: js.name },
          'JetStream stats history is gone from the server (restarted without its store?); re-creating it',
        );
        this.jsReady = false;
      }
    }
    try {
      await jsm.streams.add(js);
    } catch (err) {
      // 10058: the stream exists with another configuration; bring it to ours.
      if (apiErrorCode(err) !== 10058) throw err;
      const { name, ...update } = js;
      await jsm.streams.update(name, update);
    }
    this.jsReady = true;
    this.log.info({ stream: js.name, subjects: js.subjects }, 'JetStream stats history ready');
  }

  // ---- the connection's life ----

  private async connectLoop(): Promise<void> {
    let attempt = 0;
    while (this.closing === undefined) {
      attempt++;
      try {
        const c = await connect({
          ...this.options.connectOptions,
          ...this.secured.options,
          servers: [...this.secured.servers],
          name: this.connectionName,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.reconnectTimeWait,
          // One attempt per call: this loop retries, so that close() can stop it.
          waitOnFirstConnect: false,
        });
        if (this.closing !== undefined) {
          await c.close();
          return;
        }
        await this.onConnected(c);
        return;
      } catch (err) {
        this.logConnectFailure(err, attempt);
        await new Promise<void>((resolve) => {
          this.wakeRetry = resolve;
          this.retryTimer = setTimeout(resolve, this.reconnectTimeWait);
        });
      }
    }
  }

  private logConnectFailure(err: unknown, attempt: number): void {
    const explained = explainNatsError(this.connectionName, err, this.secured.security);
    if (explained instanceof NatsSecurityError) {
      // Retried all the same (the server's configuration may be fixed), but said once, plainly.
      this.logOnce('security', () => this.log.error({ code: explained.code, attempt }, explained.message));
    } else {
      this.logOnce('connect', () => this.log.warn({ err, attempt }, 'cannot connect to NATS yet; retrying'));
    }
  }

  private async onConnected(c: NatsConnection): Promise<void> {
    this.nc = c;
    if (this.subscribeControl(c)) {
      // ready() promises a subscribed control subject: the server has the SUB once a PING that
      // follows it is answered (a request from another connection right after would find no one).
      await c.flush().catch((err: unknown) => this.log.warn({ err }, 'NATS flush after subscribing failed'));
    }
    // Set up JetStream before releasing held stats, so they land in the history too.
    try {
      await this.ensureJetStream(c);
    } catch (err) {
      this.log.error({ err, stream: this.js?.name }, 'cannot set up JetStream stats history; stats are still published');
    }
    this.setConnected(true);
    this.flushHeld();
    this.log.info({ server: c.getServer() }, 'connected to NATS');
    this.watchStatus(c).catch((err: unknown) => this.log.error({ err }, 'NATS status watch failed'));
    this.resolveReady();
  }

  private setConnected(connected: boolean): void {
    this.connected = connected;
    this.m.connected.set(connected ? 1 : 0);
  }

  private async watchStatus(c: NatsConnection): Promise<void> {
    for await (const s of c.status()) {
      this.m.status.inc({ type: s.type });
      switch (s.type) {
        case Events.Disconnect:
          this.setConnected(false);
          this.log.warn({ server: s.data }, 'disconnected from NATS; holding stats until reconnected');
          break;
        case DebugEvents.Reconnecting:
          this.logOnce('reconnecting', () => this.log.info('reconnecting to NATS'));
          break;
        case Events.Reconnect:
          await this.onReconnected(c, s.data);
          break;
        case Events.LDM:
          this.log.warn({ server: s.data }, 'NATS server entering lame duck mode');
          break;
        case Events.Error: {
          // A permission lost while running: said once per cause; segmenting goes on regardless.
          const explained = explainNatsStatus(this.connectionName, s, this.secured.security);
          if (explained instanceof NatsSecurityError)
            this.logOnce(`security:${explained.message}`, () => this.log.error({ code: explained.code }, explained.message));
          else this.log.error({ data: s.data }, 'NATS async error');
          break;
        }
        default:
          break;
      }
    }
    this.setConnected(false);
  }

  private async onReconnected(c: NatsConnection, server: unknown): Promise<void> {
    this.reconnects++;
    try {
      await this.ensureJetStream(c);
    } catch (err) {
      this.log.error({ err }, 'cannot set up JetStream stats history');
    }
    this.setConnected(true);
    this.log.info({ server, reconnects: this.reconnects }, 'reconnected to NATS');
    this.flushHeld();
  }

  // ---- LivePublisher ----

  stats(s: FrameStats): void {
    this.publish('stats', streamSubject(this.prefix, s.stream, 'stats'), json(s));
  }

  summary(s: WindowSummary): void {
    this.publish('summary', summarySubject(this.prefix, s.stream, s.window), json(s));
  }

  frame(stream: string, meta: ImageMeta, jpeg: Buffer): void {
    if (!this.publishFrames) return;
    this.publish('frames', streamSubject(this.prefix, stream, 'frames'), jpeg, imageHeaders(stream, meta, 'image/jpeg'));
  }

  mask(stream: string, meta: ImageMeta, png: Buffer): void {
    if (!this.publishMasks) return;
    this.publish('masks', streamSubject(this.prefix, stream, 'masks'), png, imageHeaders(stream, meta, 'image/png'));
  }

  wantsFrames(): boolean {
    return this.publishFrames && this.connected && this.closing === undefined;
  }

  wantsMasks(): boolean {
    return this.publishMasks && this.connected && this.closing === undefined;
  }

  classes(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    this.publishLegend(stream, classes, headVersion);
  }

  event(e: ServiceEvent): void {
    const stream = eventStream(e);
    this.publish(
      'events',
      stream === undefined ? serviceEventsSubject(this.prefix) : streamSubject(this.prefix, stream, 'events'),
      json(e),
    );
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    this.rejectReady(new Error('NATS publisher closed before it connected'));
    const c = this.nc;
    if (c === undefined || c.isClosed()) return;
    if (this.held.length > 0) this.log.warn({ messages: this.held.length }, 'closing with messages held while disconnected; they are lost');
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      c.drain().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!c.isClosed()) await c.close();
    this.setConnected(false);
    this.log.info({ drained, published: this.published, dropped: this.dropped }, 'NATS publisher closed');
  }
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
