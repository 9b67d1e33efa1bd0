/**
 * The NATS side every role shares: one connection (first connect retried, so start order does not
 * matter in compose or Kubernetes), the frames work-queue stream, the workers' durable consumer,
 * and the heads KV bucket. Every `ensure` is idempotent: whichever role starts first creates the
 * stream and consumer; the others find them and bring the tunable limits to their own values.
 */
import {
  AckPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  connect,
  nanos,
  type JetStreamManager,
  type KV,
  type NatsConnection,
} from 'nats';
import type { Logger } from 'pino';
import { NatsSecurityError } from '../errors.js';
import {
  describeNatsSecurity,
  explainNatsError,
  explainNatsStatus,
  natsConnectOptions,
  type NatsSecurity,
} from '../internal/nats-security.js';
import {
  framesStreamName,
  headsBucketName,
  ingestWildcard,
  resultsStreamName,
  resultsWildcard,
  WORKERS_CONSUMER,
} from './cluster-names.js';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
/** Frames the work queue holds before ingest has to wait (discard: new). */
export const DEFAULT_QUEUE_MAX_MSGS = 512;
/** Bytes the work queue holds before ingest has to wait. */
export const DEFAULT_QUEUE_MAX_BYTES = 256 * 1024 * 1024;
/** How long a worker may hold a frame without acking before it is redelivered, ms. */
export const DEFAULT_ACK_WAIT_MS = 30_000;
/** Frames delivered to workers and not yet acked, across all workers. */
export const DEFAULT_MAX_ACK_PENDING = 256;
/** Head versions the bucket keeps. */
export const HEADS_HISTORY = 10;
const RECONNECT_WAIT_MS = 1_000;
/** JetStream API error codes: stream or consumer exists with another configuration. */
const STREAM_NAME_IN_USE = 10058;
const CONSUMER_EXISTS = 10148;
const CONSUMER_NAME_EXISTS = 10013;

export interface QueueLimits {
  readonly maxMsgs?: number;
  readonly maxBytes?: number;
}

/**
 * Connects (retrying the first connection forever, except on a security failure: wrong
 * credentials or an untrusted certificate throw NatsSecurityError at once) and reconnects forever after.
 */
export async function connectCluster(
  servers: string | readonly string[],
  name: string,
  logger: Logger,
  security?: NatsSecurity,
): Promise<NatsConnection> {
  const secured = natsConnectOptions(name, servers, security);
  let nc: NatsConnection | undefined;
  for (let attempt = 1; nc === undefined; attempt++) {
    try {
      nc = await connect({
        ...secured.options,
        servers: secured.servers,
        name,
        // One attempt per call: this loop retries, so that a security failure can end it.
        waitOnFirstConnect: false,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: RECONNECT_WAIT_MS,
      });
    } catch (err) {
      const explained = explainNatsError(name, err, secured.security);
      if (explained instanceof NatsSecurityError) throw explained;
      if (attempt === 1) logger.warn({ err }, 'cannot connect to NATS yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_WAIT_MS));
    }
  }
  logger.info({ server: nc.getServer(), name, security: describeNatsSecurity(secured.security) }, 'connected to NATS');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') logger.warn({ server: s.data }, 'disconnected from NATS; reconnecting');
      else if (s.type === 'reconnect') logger.info({ server: s.data }, 'reconnected to NATS');
      else if (s.type === 'error') {
        // A permission lost while running: logged; the role keeps working on what it may still do.
        const explained = explainNatsStatus(name, s, secured.security);
        if (explained instanceof NatsSecurityError) logger.error({ code: explained.code }, explained.message);
      }
    }
  })().catch(() => undefined);
  return nc;
}

function apiCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } }).api_error?.err_code;
}

/** The work-queue stream of frames: file storage, discard new when full (ingest waits). */
export async function ensureFramesStream(jsm: JetStreamManager, prefix: string, limits: QueueLimits = {}): Promise<string> {
  const name = framesStreamName(prefix);
  const cfg = {
    subjects: [ingestWildcard(prefix)],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    max_msgs: limits.maxMsgs ?? DEFAULT_QUEUE_MAX_MSGS,
    max_bytes: limits.maxBytes ?? DEFAULT_QUEUE_MAX_BYTES,
    // Ingest's retries after a lost PubAck are recognised by msgID within this window.
    duplicate_window: nanos(120_000),
  };
  try {
    await jsm.streams.add({ name, ...cfg });
  } catch (err) {
    if (apiCode(err) !== STREAM_NAME_IN_USE) throw err;
    // Only ingest passes limits; the others take the stream as they find it.
    if (limits.maxMsgs !== undefined || limits.maxBytes !== undefined) {
      const { retention: _r, ...update } = cfg;
      await jsm.streams.update(name, update);
    }
  }
  return name;
}

/** How long the results stream keeps a result for a collector that is away, ms (24 h). */
export const DEFAULT_RESULTS_MAX_AGE_MS = 24 * 3600_000;
/** Bytes of results the stream keeps; the oldest go first beyond it (1 GiB). */
export const DEFAULT_RESULTS_MAX_BYTES = 1024 * 1024 * 1024;
/** A worker's result published again within this window (a redelivered frame) is stored once, ms. */
export const RESULTS_DUPLICATE_WINDOW_MS = 10 * 60_000;

export interface ResultsLimits {
  readonly maxAgeMs?: number;
  readonly maxBytes?: number;
}

/**
 * The results stream: every segmented frame's stats (and mask, when its ingest asked for masks),
 * kept so that a collector that starts late or restarts reads what it missed. Bounded by age and
 * size (discard old); workers publish with a msgID per (run, stream, seq), so a frame segmented
 * twice after a redelivery is stored once within the duplicate window.
 */
export async function ensureResultsStream(jsm: JetStreamManager, prefix: string, limits: ResultsLimits = {}): Promise<string> {
  const name = resultsStreamName(prefix);
  const cfg = {
    subjects: [resultsWildcard(prefix)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(limits.maxAgeMs ?? DEFAULT_RESULTS_MAX_AGE_MS),
    max_bytes: limits.maxBytes ?? DEFAULT_RESULTS_MAX_BYTES,
    duplicate_window: nanos(Math.min(RESULTS_DUPLICATE_WINDOW_MS, limits.maxAgeMs ?? DEFAULT_RESULTS_MAX_AGE_MS)),
  };
  try {
    await jsm.streams.add({ name, ...cfg });
  } catch (err) {
    if (apiCode(err) !== STREAM_NAME_IN_USE) throw err;
    if (limits.maxAgeMs !== undefined || limits.maxBytes !== undefined) {
      const { retention: _r, ...update } = cfg;
      await jsm.streams.update(name, update);
    }
  }
  return name;
}

/** The durable pull consumer every worker shares: each frame goes to one worker (queue-group semantics). */
export async function ensureWorkersConsumer(
  jsm: JetStreamManager,
  prefix: string,
  ackWaitMs = DEFAULT_ACK_WAIT_MS,
  maxAckPending = DEFAULT_MAX_ACK_PENDING,
): Promise<void> {
  const stream = framesStreamName(prefix);
  const cfg = {
    durable_name: WORKERS_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
    filter_subject: ingestWildcard(prefix),
  };
  try {
    await jsm.consumers.add(stream, cfg);
  } catch (err) {
    const code = apiCode(err);
    if (code !== CONSUMER_EXISTS && code !== CONSUMER_NAME_EXISTS) throw err;
    await jsm.consumers.update(stream, WORKERS_CONSUMER, { ack_wait: cfg.ack_wait, max_ack_pending: maxAckPending });
  }
}

/** The heads bucket (key `head`, key `trainer-lease`), created on first use. */
export async function openHeadsBucket(nc: NatsConnection, prefix: string): Promise<KV> {
  return nc.jetstream().views.kv(headsBucketName(prefix), { history: HEADS_HISTORY, storage: StorageType.File });
}

/**
 * True when `err` says the server could not be reached or did not answer (a disconnect, a
 * timeout): worth retrying as it is once the connection is back.
 */
export function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return (
    code === 'TIMEOUT' ||
    code === 'DISCONNECT' ||
    code === 'CONNECTION_CLOSED' ||
    code === 'CONNECTION_REFUSED' ||
    code === 'CONNECTION_TIMEOUT'
  );
}

/**
 * True when `err` says a JetStream stream, KV bucket or consumer is not there: nothing answered
 * on its subject (503), or the API said "stream not found" (10059) or "consumer not found"
 * (10014), as after a server restarted without its store. The caller re-creates it.
 */
export function isStreamGone(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number } };
  return e.code === '503' || e.api_error?.err_code === 10059 || e.api_error?.err_code === 10014;
}
