/**
 * WebSocket hub: the `/ws` endpoint of the service, and a `LivePublisher` the pipeline feeds.
 * Protocol in ./ws-protocol.ts and README "WebSocket protocol".
 *
 * Slow clients: before an image goes to a client, the hub looks at that client's `bufferedAmount`
 * (bytes handed to the socket and not yet written). Above `maxBufferedBytes` the image is dropped
 * for that client only and counted; stats, legends and events are always queued, so a slow client
 * loses frames, never stats. A client whose backlog passes `maxBackloggedBytes` anyway (it reads
 * nothing at all) is terminated. Sends never wait, so the pipeline and other clients never block.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createLogger } from '../internal/logger.js';
import { nonNegativeInt, positiveInt } from '../internal/check-options.js';
import { runControl, type ControlHandler } from './control.js';
import { eventStream, type ImageMeta, type LivePublisher, type ServiceEvent } from './sink.js';
import { counter, gauge } from '../internal/metrics.js';
import type { ClassInfo, FrameStats, WindowSummary } from '../types.js';
import {
  ALL_STREAMS,
  CHANNELS,
  encodeImageMessage,
  parseClientMessage,
  type Channel,
  type ControlMessage,
  type ImageChannel,
  type ServerMessage,
  type SubscribeMessage,
} from './ws-protocol.js';

export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
export const DEFAULT_MAX_BUFFERED_BYTES = 2 * 1024 * 1024;
export const DEFAULT_MAX_BACKLOGGED_BYTES = 64 * 1024 * 1024;
export const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
export const DEFAULT_MAX_CLIENTS = 256;

/** WebSocket close codes the hub uses. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TRY_AGAIN_LATER = 1013;

export interface WsHubOptions {
  /** Handles `control` messages; without it they get an `E_CONTROL` error reply. */
  readonly control?: ControlHandler;
  /** Metrics go here (default: a new registry, see `hub.registry`). */
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Largest inbound message, bytes (default 64 KiB); larger ones close the client with 1009. */
  readonly maxPayloadBytes?: number;
  /** Ping period, ms (default 30 000; 0 = no heartbeats). A client that misses one pong is terminated. */
  readonly heartbeatIntervalMs?: number;
  /** Per-client backlog above which images are dropped for that client, bytes (default 2 MiB). */
  readonly maxBufferedBytes?: number;
  /** Per-client backlog above which the client is terminated, bytes (default 64 MiB). */
  readonly maxBackloggedBytes?: number;
  /** How long `close()` waits for clients to answer the 1001 close before terminating them, ms (default 2000). */
  readonly closeTimeoutMs?: number;
  /** Connections beyond this many are closed with 1013 (default 256). */
  readonly maxClients?: number;
  /** The summaries kept of a stream since `sinceMs` (ms since the epoch), oldest first: answers `history` requests. */
  readonly history?: (stream: string, window: WindowSummary['window'], sinceMs: number) => readonly WindowSummary[];
}

export interface WsHubCounters {
  readonly clients: number;
  /** Messages queued to clients, all channels. */
  readonly sent: number;
  /** Images dropped for slow clients. */
  readonly dropped: number;
}

export interface WsHub extends LivePublisher {
  readonly registry: Registry;
  /** Hands an HTTP upgrade request (already authorised) to the hub. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  counters(): WsHubCounters;
}

interface Client {
  readonly ws: WebSocket;
  readonly id: number;
  readonly log: Logger;
  alive: boolean;
  /** undefined until the client subscribes; ALL_STREAMS inside means every stream. */
  streams: ReadonlySet<string> | undefined;
  channels: ReadonlySet<Channel>;
  dropped: number;
  /** Connected with the read-only token: may watch, not rename, pause, resume or snapshot. */
  readonly readOnly: boolean;
}

interface Legend {
  readonly classes: readonly ClassInfo[];
  readonly headVersion: number;
}

/** Set by the HTTP service on an upgrade request authorised by the read-only token. */
export const READ_ONLY_ACCESS = Symbol('stegostream.readOnly');

function isReadOnly(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [READ_ONLY_ACCESS]?: boolean })[READ_ONLY_ACCESS] === true;
}

/** Creates the hub. Options are checked here; nothing listens until `handleUpgrade` is called. */
export function createWsHub(options: WsHubOptions = {}): WsHub {
  return new Hub(options);
}

/** Metrics of the hub, made once per registry. */
function hubMetrics(registry: Registry) {
  return {
    clients: gauge(registry, 'stegostream_ws_clients', 'WebSocket clients connected'),
    sent: counter(registry, 'stegostream_ws_messages_sent_total', 'Messages queued to WebSocket clients', ['channel']),
    dropped: counter(registry, 'stegostream_ws_messages_dropped_total', 'Images not sent to slow WebSocket clients', ['channel']),
    terminated: counter(registry, 'stegostream_ws_clients_terminated_total', 'WebSocket clients cut off', ['reason']),
    control: counter(registry, 'stegostream_ws_control_requests_total', 'Control requests over WebSocket', ['verb', 'outcome']),
  };
}

/**
 * The hub's state and its handlers. A class rather than one closure: the connection handling,
 * the request handling and the publishing side each read as a few short methods over one state.
 */
class Hub implements WsHub {
  readonly name = 'ws-hub';
  readonly registry: Registry;
  private readonly maxBuffered: number;
  private readonly maxBacklogged: number;
  private readonly closeTimeoutMs: number;
  private readonly maxClients: number;
  private readonly log: Logger;
  private readonly control: ControlHandler | undefined;
  private readonly history: WsHubOptions['history'];
  private readonly m: ReturnType<typeof hubMetrics>;
  // perMessageDeflate off: frames are JPEG/PNG already, and compression would cost CPU per client.
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private readonly streams = new Set<string>();
  private readonly legends = new Map<string, Legend>();
  private readonly sourceStates = new Map<string, ServiceEvent>();
  private readonly heartbeat: NodeJS.Timeout | undefined;
  private nextClientId = 1;
  private sent = 0;
  private dropped = 0;
  private closing: Promise<void> | undefined;

  constructor(options: WsHubOptions) {
    const maxPayload = positiveInt('maxPayloadBytes', options.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES);
    const heartbeatMs = nonNegativeInt('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS);
    this.maxBuffered = positiveInt('maxBufferedBytes', options.maxBufferedBytes, DEFAULT_MAX_BUFFERED_BYTES);
    this.maxBacklogged = positiveInt('maxBackloggedBytes', options.maxBackloggedBytes, DEFAULT_MAX_BACKLOGGED_BYTES);
    this.closeTimeoutMs = nonNegativeInt('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS);
    this.maxClients = positiveInt('maxClients', options.maxClients, DEFAULT_MAX_CLIENTS);
    this.registry = options.registry ?? new Registry();
    this.log = (options.logger ?? createLogger()).child({ stage: 'ws-hub' });
    this.control = options.control;
    this.history = options.history;
    this.m = hubMetrics(this.registry);
    this.wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false });
    this.heartbeat = heartbeatMs > 0 ? setInterval(() => this.beat(), heartbeatMs) : undefined;
    this.heartbeat?.unref();
  }

  // ---- connections ----

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        c.log.info('client missed a heartbeat; terminating');
        this.m.terminated.inc({ reason: 'heartbeat' });
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closing !== undefined) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const id = this.nextClientId++;
    const c: Client = {
      ws,
      id,
      log: this.log.child({ client: id, remote: req.socket.remoteAddress }),
      alive: true,
      streams: undefined,
      channels: new Set(),
      dropped: 0,
      readOnly: isReadOnly(req),
    };
    ws.on('error', (err) => c.log.debug({ err }, 'client connection error'));
    if (this.clients.size >= this.maxClients) {
      c.log.warn({ maxClients: this.maxClients }, 'too many clients; refusing');
      ws.close(CLOSE_TRY_AGAIN_LATER, 'too many clients');
      return;
    }
    this.clients.add(c);
    this.m.clients.inc();
    c.log.debug('client connected');
    ws.on('pong', () => {
      c.alive = true;
    });
    ws.on('message', (raw, isBinary) => this.onMessage(c, raw, isBinary));
    ws.on('close', (code) => {
      this.clients.delete(c);
      this.m.clients.dec();
      c.log.debug({ code, droppedImages: c.dropped }, 'client disconnected');
    });
    this.sendJson(c, { type: 'hello', protocol: 1, streams: [...this.streams], channels: [...CHANNELS] });
  }

  // ---- sending ----

  private wants(c: Client, stream: string, channel: Channel): boolean {
    return c.streams !== undefined && c.channels.has(channel) && (c.streams.has(ALL_STREAMS) || c.streams.has(stream));
  }

  private congested(c: Client): boolean {
    return c.ws.bufferedAmount > this.maxBuffered;
  }

  private send(c: Client, data: Buffer, channel: Channel | 'reply', binary: boolean): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.ws.bufferedAmount > this.maxBacklogged) {
      c.log.warn({ bufferedAmount: c.ws.bufferedAmount }, 'client reads nothing; terminating');
      this.m.terminated.inc({ reason: 'slow-consumer' });
      c.ws.terminate();
      return;
    }
    c.ws.send(data, { binary });
    this.sent++;
    this.m.sent.inc({ channel });
  }

  private sendJson(c: Client, message: ServerMessage, channel: Channel | 'reply' = 'reply'): void {
    this.send(c, Buffer.from(JSON.stringify(message)), channel, false);
  }

  /** Serialises once, queues to every client that wants (stream, channel). */
  private broadcast(stream: string | undefined, channel: Channel, message: ServerMessage): void {
    let data: Buffer | undefined;
    for (const c of this.clients) {
      if (stream === undefined ? c.streams === undefined || !c.channels.has(channel) : !this.wants(c, stream, channel)) continue;
      data ??= Buffer.from(JSON.stringify(message));
      this.send(c, data, channel, false);
    }
  }

  private image(channel: ImageChannel, stream: string, meta: ImageMeta, bytes: Buffer): void {
    if (this.closing !== undefined) return;
    this.streams.add(stream);
    let data: Buffer | undefined;
    for (const c of this.clients) {
      if (!this.wants(c, stream, channel)) continue;
      if (this.congested(c)) {
        c.dropped++;
        this.dropped++;
        this.m.dropped.inc({ channel });
        continue;
      }
      data ??= encodeImageMessage(
        {
          channel,
          stream,
          seq: meta.seq,
          pts: meta.pts,
          headVersion: meta.headVersion,
          width: meta.width,
          height: meta.height,
          mime: channel === 'masks' ? 'image/png' : 'image/jpeg',
        },
        bytes,
      );
      this.send(c, data, channel, true);
    }
  }

  /** True when some client follows (stream, channel) and can take an image now. */
  private anyWants(stream: string, channel: ImageChannel): boolean {
    for (const c of this.clients) if (this.wants(c, stream, channel) && !this.congested(c)) return true;
    return false;
  }

  private republishLegend(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    this.legends.set(stream, { classes, headVersion });
    this.broadcast(stream, 'classes', { type: 'classes', stream, headVersion, classes });
  }

  private latestLegend(): Legend | undefined {
    let best: Legend | undefined;
    for (const l of this.legends.values()) if (best === undefined || l.headVersion >= best.headVersion) best = l;
    return best;
  }

  // ---- requests ----

  private onMessage(c: Client, raw: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.sendJson(c, { type: 'error', code: 'E_BAD_MESSAGE', message: 'Binary messages are not accepted; send JSON text.' });
      return;
    }
    const text = Array.isArray(raw) ? Buffer.concat(raw).toString('utf8') : Buffer.from(raw as ArrayBuffer).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      const { ok: _ok, ...error } = parsed;
      this.sendJson(c, { type: 'error', ...error });
      return;
    }
    const msg = parsed.message;
    if (msg.type === 'subscribe') this.onSubscribe(c, msg);
    else if (msg.type === 'ping') this.sendJson(c, { type: 'pong' });
    else if (msg.type === 'history') {
      const summaries = this.history?.(msg.stream, msg.window, Date.now() - msg.seconds * 1000) ?? [];
      this.sendJson(c, {
        type: 'history',
        ...(msg.id === undefined ? {} : { id: msg.id }),
        stream: msg.stream,
        window: msg.window,
        summaries,
      });
    } else
      this.onControl(c, msg).catch((err: unknown) => {
        // runControl never rejects; this guards the send path.
        c.log.error({ err }, 'control request failed');
      });
  }

  private onSubscribe(c: Client, msg: SubscribeMessage): void {
    c.streams = new Set(msg.streams);
    c.channels = new Set(msg.channels);
    this.sendJson(c, { type: 'subscribed', streams: [...c.streams], channels: [...c.channels] });
    // Late joiners get the current legend and source state of every stream they now follow.
    for (const stream of this.streams) {
      const legend = this.legends.get(stream);
      if (legend !== undefined && this.wants(c, stream, 'classes')) this.sendJson(c, { type: 'classes', stream, ...legend }, 'classes');
      const state = this.sourceStates.get(stream);
      if (state !== undefined && this.wants(c, stream, 'events')) this.sendJson(c, { type: 'event', event: state }, 'events');
    }
  }

  private async onControl(c: Client, msg: ControlMessage): Promise<void> {
    const id = msg.id === undefined ? {} : { id: msg.id };
    if (this.control === undefined) {
      this.m.control.inc({ verb: msg.verb, outcome: 'disabled' });
      this.sendJson(c, { type: 'error', code: 'E_CONTROL', message: 'Control is not enabled on this service.', ...id });
      return;
    }
    const { type: _type, id: _id, verb, ...args } = msg;
    if (c.readOnly && verb !== 'status') {
      this.m.control.inc({ verb: msg.verb, outcome: 'forbidden' });
      this.sendJson(c, {
        type: 'error',
        code: 'E_CONTROL',
        message: `Control "${String(verb)}" refused: this connection used the read-only token (it may watch, not change). Use the service token.`,
        ...id,
      });
      return;
    }
    const reply = await runControl(this.control, verb, args, { classes: this.latestLegend()?.classes, logger: c.log });
    if (!reply.ok) {
      this.m.control.inc({ verb: reply.verb ?? 'unknown', outcome: 'error' });
      this.sendJson(c, { type: 'error', code: reply.error.code, message: reply.error.message, ...id });
      return;
    }
    this.m.control.inc({ verb: reply.verb, outcome: 'ok' });
    this.sendJson(c, { type: 'control-result', ...id, ...reply });
    if (reply.verb === 'rename') {
      c.log.info({ classes: reply.classes.length }, 'class renamed');
      // Every stream shares the head, so every stream's legend changes.
      for (const [stream, legend] of this.legends) this.republishLegend(stream, reply.classes, legend.headVersion);
    }
  }

  // ---- LivePublisher ----

  counters(): WsHubCounters {
    return { clients: this.clients.size, sent: this.sent, dropped: this.dropped };
  }

  stats(s: FrameStats): void {
    if (this.closing !== undefined) return;
    this.streams.add(s.stream);
    this.broadcast(s.stream, 'stats', { type: 'stats', ...s });
  }

  summary(s: WindowSummary): void {
    if (this.closing !== undefined) return;
    this.broadcast(s.stream, 'summary', { type: 'summary', ...s });
  }

  frame(stream: string, meta: ImageMeta, jpeg: Buffer): void {
    this.image('frames', stream, meta, jpeg);
  }

  mask(stream: string, meta: ImageMeta, png: Buffer): void {
    this.image('masks', stream, meta, png);
  }

  raw(stream: string, meta: ImageMeta, jpeg: Buffer): void {
    this.image('raw', stream, meta, jpeg);
  }

  wantsRaw(stream: string): boolean {
    return this.anyWants(stream, 'raw');
  }

  wantsFrames(stream: string): boolean {
    return this.anyWants(stream, 'frames');
  }

  wantsMasks(stream: string): boolean {
    return this.anyWants(stream, 'masks');
  }

  classes(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    if (this.closing !== undefined) return;
    this.streams.add(stream);
    this.republishLegend(stream, classes, headVersion);
  }

  event(e: ServiceEvent): void {
    if (this.closing !== undefined) return;
    const stream = eventStream(e);
    if (stream !== undefined) {
      this.streams.add(stream);
      if (e.type === 'source-state') this.sourceStates.set(stream, e);
    }
    this.broadcast(stream, 'events', { type: 'event', event: e });
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    const open = [...this.clients];
    const closed = open.map((c) => new Promise<void>((resolve) => c.ws.once('close', () => resolve())));
    for (const c of open) c.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.closeTimeoutMs);
    });
    await Promise.race([Promise.all(closed), timeout]);
    clearTimeout(timer);
    for (const c of this.clients) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.log.debug({ sent: this.sent, dropped: this.dropped }, 'hub closed');
  }
}
