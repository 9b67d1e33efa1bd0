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
  const maxPayload = positiveInt('maxPayloadBytes', options.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES);
  const heartbeatMs = nonNegativeInt('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS);
  const maxBuffered = positiveInt('maxBufferedBytes', options.maxBufferedBytes, DEFAULT_MAX_BUFFERED_BYTES);
  const maxBacklogged = positiveInt('maxBackloggedBytes', options.maxBackloggedBytes, DEFAULT_MAX_BACKLOGGED_BYTES);
  const closeTimeoutMs = nonNegativeInt('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS);
  const maxClients = positiveInt('maxClients', options.maxClients, DEFAULT_MAX_CLIENTS);
  const registry = options.registry ?? new Registry();
  const log = (options.logger ?? createLogger()).child({ stage: 'ws-hub' });
  const control = options.control;

  const mClients = gauge(registry, 'stegostream_ws_clients', 'WebSocket clients connected');
  const mSent = counter(registry, 'stegostream_ws_messages_sent_total', 'Messages queued to WebSocket clients', ['channel']);
  const mDropped = counter(registry, 'stegostream_ws_messages_dropped_total', 'Images not sent to slow WebSocket clients', ['channel']);
  const mTerminated = counter(registry, 'stegostream_ws_clients_terminated_total', 'WebSocket clients cut off', ['reason']);
  const mControl = counter(registry, 'stegostream_ws_control_requests_total', 'Control requests over WebSocket', ['verb', 'outcome']);

  // perMessageDeflate off: frames are JPEG/PNG already, and compression would cost CPU per client.
  const wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false });
  const clients = new Set<Client>();
  const streams = new Set<string>();
  const legends = new Map<string, Legend>();
  const sourceStates = new Map<string, ServiceEvent>();
  let nextClientId = 1;
  let sent = 0;
  let dropped = 0;
  let closing: Promise<void> | undefined;

  const heartbeat =
    heartbeatMs > 0
      ? setInterval(() => {
          for (const c of clients) {
            if (!c.alive) {
              c.log.info('client missed a heartbeat; terminating');
              mTerminated.inc({ reason: 'heartbeat' });
              c.ws.terminate();
              continue;
            }
            c.alive = false;
            c.ws.ping();
          }
        }, heartbeatMs)
      : undefined;
  heartbeat?.unref();

  function wants(c: Client, stream: string, channel: Channel): boolean {
    return c.streams !== undefined && c.channels.has(channel) && (c.streams.has(ALL_STREAMS) || c.streams.has(stream));
  }

  function send(c: Client, data: Buffer, channel: Channel | 'reply', binary: boolean): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.ws.bufferedAmount > maxBacklogged) {
      c.log.warn({ bufferedAmount: c.ws.bufferedAmount }, 'client reads nothing; terminating');
      mTerminated.inc({ reason: 'slow-consumer' });
      c.ws.terminate();
      return;
    }
    c.ws.send(data, { binary });
    sent++;
    mSent.inc({ channel });
  }

  function sendJson(c: Client, message: ServerMessage, channel: Channel | 'reply' = 'reply'): void {
    send(c, Buffer.from(JSON.stringify(message)), channel, false);
  }

  /** Serialises once, queues to every client that wants (stream, channel). */
  function broadcast(stream: string | undefined, channel: Channel, message: ServerMessage): void {
    let data: Buffer | undefined;
    for (const c of clients) {
      if (stream === undefined ? c.streams === undefined || !c.channels.has(channel) : !wants(c, stream, channel)) continue;
      data ??= Buffer.from(JSON.stringify(message));
      send(c, data, channel, false);
    }
  }

  function congested(c: Client): boolean {
    return c.ws.bufferedAmount > maxBuffered;
  }

  function image(channel: ImageChannel, stream: string, meta: ImageMeta, bytes: Buffer): void {
    if (closing !== undefined) return;
    see(stream);
    let data: Buffer | undefined;
    for (const c of clients) {
      if (!wants(c, stream, channel)) continue;
      if (congested(c)) {
        c.dropped++;
        dropped++;
        mDropped.inc({ channel });
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
      send(c, data, channel, true);
    }
  }

  function see(stream: string): void {
    streams.add(stream);
  }

  function onSubscribe(c: Client, msg: SubscribeMessage): void {
    c.streams = new Set(msg.streams);
    c.channels = new Set(msg.channels);
    sendJson(c, { type: 'subscribed', streams: [...c.streams], channels: [...c.channels] });
    // Late joiners get the current legend and source state of every stream they now follow.
    for (const stream of streams) {
      const legend = legends.get(stream);
      if (legend !== undefined && wants(c, stream, 'classes')) sendJson(c, { type: 'classes', stream, ...legend }, 'classes');
      const state = sourceStates.get(stream);
      if (state !== undefined && wants(c, stream, 'events')) sendJson(c, { type: 'event', event: state }, 'events');
    }
  }

  async function onControl(c: Client, msg: ControlMessage): Promise<void> {
    const id = msg.id === undefined ? {} : { id: msg.id };
    if (control === undefined) {
      mControl.inc({ verb: msg.verb, outcome: 'disabled' });
      sendJson(c, { type: 'error', code: 'E_CONTROL', message: 'Control is not enabled on this service.', ...id });
      return;
    }
    const { type: _type, id: _id, verb, ...args } = msg;
    if (c.readOnly && verb !== 'status') {
      mControl.inc({ verb: msg.verb, outcome: 'forbidden' });
      sendJson(c, {
        type: 'error',
        code: 'E_CONTROL',
        message: `Control "${String(verb)}" refused: this connection used the read-only token (it may watch, not change). Use the service token.`,
        ...id,
      });
      return;
    }
    const reply = await runControl(control, verb, args, { classes: latestLegend()?.classes, logger: c.log });
    if (!reply.ok) {
      mControl.inc({ verb: reply.verb ?? 'unknown', outcome: 'error' });
      sendJson(c, { type: 'error', code: reply.error.code, message: reply.error.message, ...id });
      return;
    }
    mControl.inc({ verb: reply.verb, outcome: 'ok' });
    sendJson(c, { type: 'control-result', ...id, ...reply });
    if (reply.verb === 'rename') {
      c.log.info({ classes: reply.classes.length }, 'class renamed');
      // Every stream shares the head, so every stream's legend changes.
      for (const [stream, legend] of legends) republishLegend(stream, reply.classes, legend.headVersion);
    }
  }

  function republishLegend(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    legends.set(stream, { classes, headVersion });
    broadcast(stream, 'classes', { type: 'classes', stream, headVersion, classes });
  }

  function latestLegend(): Legend | undefined {
    let best: Legend | undefined;
    for (const l of legends.values()) if (best === undefined || l.headVersion >= best.headVersion) best = l;
    return best;
  }

  function onMessage(c: Client, raw: RawData, isBinary: boolean): void {
    if (isBinary) {
      sendJson(c, { type: 'error', code: 'E_BAD_MESSAGE', message: 'Binary messages are not accepted; send JSON text.' });
      return;
    }
    const text = Array.isArray(raw) ? Buffer.concat(raw).toString('utf8') : Buffer.from(raw as ArrayBuffer).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      const { ok: _ok, ...error } = parsed;
      sendJson(c, { type: 'error', ...error });
      return;
    }
    const msg = parsed.message;
    if (msg.type === 'subscribe') onSubscribe(c, msg);
    else if (msg.type === 'ping') sendJson(c, { type: 'pong' });
    else if (msg.type === 'history') {
      const summaries = options.history?.(msg.stream, msg.window, Date.now() - msg.seconds * 1000) ?? [];
      sendJson(c, { type: 'history', ...(msg.id === undefined ? {} : { id: msg.id }), stream: msg.stream, window: msg.window, summaries });
    } else
      onControl(c, msg).catch((err: unknown) => {
        // runControl never rejects; this guards the send path.
        c.log.error({ err }, 'control request failed');
      });
  }

  function onConnection(ws: WebSocket, req: IncomingMessage): void {
    const id = nextClientId++;
    const c: Client = {
      ws,
      id,
      log: log.child({ client: id, remote: req.socket.remoteAddress }),
      alive: true,
      streams: undefined,
      channels: new Set(),
      dropped: 0,
      readOnly: isReadOnly(req),
    };
    ws.on('error', (err) => c.log.debug({ err }, 'client connection error'));
    if (clients.size >= maxClients) {
      c.log.warn({ maxClients }, 'too many clients; refusing');
      ws.close(CLOSE_TRY_AGAIN_LATER, 'too many clients');
      return;
    }
    clients.add(c);
    mClients.inc();
    c.log.debug('client connected');
    ws.on('pong', () => {
      c.alive = true;
    });
    ws.on('message', (raw, isBinary) => onMessage(c, raw, isBinary));
    ws.on('close', (code) => {
      clients.delete(c);
      mClients.dec();
      c.log.debug({ code, droppedImages: c.dropped }, 'client disconnected');
    });
    sendJson(c, { type: 'hello', protocol: 1, streams: [...streams], channels: [...CHANNELS] });
  }

  return {
    name: 'ws-hub',
    registry,

    handleUpgrade(req, socket, head) {
      if (closing !== undefined) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req));
    },

    counters: () => ({ clients: clients.size, sent, dropped }),

    stats(s: FrameStats) {
      if (closing !== undefined) return;
      see(s.stream);
      broadcast(s.stream, 'stats', { type: 'stats', ...s });
    },

    summary(s: WindowSummary) {
      if (closing !== undefined) return;
      broadcast(s.stream, 'summary', { type: 'summary', ...s });
    },

    frame: (stream, meta, jpeg) => image('frames', stream, meta, jpeg),
    mask: (stream, meta, png) => image('masks', stream, meta, png),
    raw: (stream, meta, jpeg) => image('raw', stream, meta, jpeg),

    wantsRaw(stream) {
      for (const c of clients) if (wants(c, stream, 'raw') && !congested(c)) return true;
      return false;
    },

    wantsFrames(stream) {
      for (const c of clients) if (wants(c, stream, 'frames') && !congested(c)) return true;
      return false;
    },

    wantsMasks(stream) {
      for (const c of clients) if (wants(c, stream, 'masks') && !congested(c)) return true;
      return false;
    },

    classes(stream, classes, headVersion) {
      if (closing !== undefined) return;
      see(stream);
      republishLegend(stream, classes, headVersion);
    },

    event(e) {
      if (closing !== undefined) return;
      const stream = eventStream(e);
      if (stream !== undefined) {
        see(stream);
        if (e.type === 'source-state') sourceStates.set(stream, e);
      }
      broadcast(stream, 'events', { type: 'event', event: e });
    },

    close() {
      closing ??= (async () => {
        if (heartbeat !== undefined) clearInterval(heartbeat);
        const open = [...clients];
        const closed = open.map((c) => new Promise<void>((resolve) => c.ws.once('close', () => resolve())));
        for (const c of open) c.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, closeTimeoutMs);
        });
        await Promise.race([Promise.all(closed), timeout]);
        clearTimeout(timer);
        for (const c of clients) c.ws.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        log.debug({ sent, dropped }, 'hub closed');
      })();
      return closing;
    },
  };
}
