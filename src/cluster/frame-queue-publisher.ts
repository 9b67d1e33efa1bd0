/**
 * Publishes ingest's frames to the work-queue stream: numbered per stream in publish order,
 * encoded in parallel, published in order per stream (a retry holds back the stream's later
 * frames, so the queue keeps each stream's order) and in parallel across streams. A full queue
 * (JetStream refuses the publish) is waited out with exponential retries (./run-ingest.ts).
 */
import type { JetStreamClient, MsgHdrs, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import { ingestSubject } from './cluster-names.js';
import { encodeFrame, type FrameFormat } from './frame-codec.js';
import { ensureFramesStream, ensureResultsStream, isStreamGone, type QueueLimits } from './cluster-connection.js';

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;
export const PUBLISH_TIMEOUT_MS = 10_000;
/** A full queue is logged at most this often, ms. */
const LOG_INTERVAL_MS = 10_000;

type Encoded = Promise<{ data: Uint8Array; headers: MsgHdrs }>;

export interface FrameQueuePublisherOptions {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly prefix: string;
  readonly run: string;
  readonly format: FrameFormat;
  readonly quality: number;
  /** Ask workers for each frame's label map (header `want: masks`). */
  readonly masks: boolean;
  readonly log: Logger;
  /** Called after each frame is stored in the queue. */
  readonly onStored: (stream: string, seq: number) => void;
  /** The work queue's limits, to create it again after a server came back without its store. */
  readonly limits: QueueLimits;
}

export class FrameQueuePublisher {
  /** True while the last publish attempt found the queue full. */
  queueFull = false;
  /** Set when the run stops: a frame that cannot be stored at once is given up. */
  stopping = false;
  private lastFullLog = -Infinity;
  private readonly assigned = new Map<string, number>();

  constructor(private readonly o: FrameQueuePublisherOptions) {}

  /** Numbers, encodes and publishes a batch; resolves once every frame of it is stored. */
  async publishBatch(batch: readonly Frame[]): Promise<void> {
    // Numbers are given in batch order, so a stream's frames keep their order.
    const perStream = new Map<string, Array<{ f: Frame; seq: number; encoded: Encoded }>>();
    for (const f of batch) {
      const seq = this.nextSeq(f.streamId);
      const encoded = encodeFrame(seq === f.seq ? f : { ...f, seq }, this.o.run, this.o.format, this.o.quality);
      encoded.catch(() => undefined);
      perStream.set(f.streamId, [...(perStream.get(f.streamId) ?? []), { f, seq, encoded }]);
    }
    await Promise.all(
      [...perStream.values()].map(async (list) => {
        for (const { f, seq, encoded } of list) await this.publish(f, seq, encoded);
      }),
    );
  }

  private nextSeq(stream: string): number {
    const n = this.assigned.get(stream) ?? 0;
    this.assigned.set(stream, n + 1);
    return n;
  }

  private async publish(frame: Frame, seq: number, encoded: Encoded): Promise<void> {
    const { js, prefix, run } = this.o;
    const { data, headers } = await encoded;
    if (this.o.masks) headers.set('want', 'masks');
    const subject = ingestSubject(prefix, frame.streamId);
    const msgID = `${run}:${frame.streamId}:${seq}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await js.publish(subject, data, { headers, msgID, timeout: PUBLISH_TIMEOUT_MS });
        this.queueFull = false;
        this.o.onStored(frame.streamId, seq);
        return;
      } catch (err) {
        if ((err as { code?: string }).code === 'MAX_PAYLOAD_EXCEEDED') throw this.tooLarge(frame, data.length, err);
        if (this.stopping && attempt > 0) throw err;
        if (isStreamGone(err)) await this.recreateQueue();
        this.queueFull = true;
        const now = Date.now();
        if (now - this.lastFullLog > LOG_INTERVAL_MS) {
          this.lastFullLog = now;
          this.o.log.warn({ err: (err as Error).message, stream: frame.streamId }, 'work queue full or unavailable; waiting for workers');
        }
        await new Promise((r) => setTimeout(r, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10))));
      }
    }
  }

  private async recreateQueue(): Promise<void> {
    try {
      const jsm = await this.o.nc.jetstreamManager();
      await ensureFramesStream(jsm, this.o.prefix, this.o.limits);
      await ensureResultsStream(jsm, this.o.prefix);
      this.o.log.warn('the work queue was gone from the server (restarted without its store?); created it again');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'cannot create the work queue again yet');
    }
  }

  private tooLarge(f: Frame, bytes: number, cause: unknown): Error {
    return new Error(
      `a ${f.width}x${f.height} ${this.o.format} frame (${bytes} bytes) is larger than the NATS server's max_payload (${this.o.nc.info?.max_payload ?? '?'} bytes): use --frame-format jpeg, a smaller --width, or raise max_payload in the server config`,
      { cause },
    );
  }
}
