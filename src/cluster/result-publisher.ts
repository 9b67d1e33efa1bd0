/**
 * A worker's results, on the subjects and in the shapes of the single-process NATS sink
 * (../sinks/nats-publisher.ts): `<prefix>.<stream>.stats` (FrameStats JSON), `.classes` (legend,
 * when the head version or a class name changes), `.frames` (overlay JPEG) and `.masks` (label PNG) with the
 * sink's image headers. Stats messages also carry headers `worker`, `head-version` and `run`
 * (extra, for the collector and operators; consumers of the sink's stats ignore them).
 *
 * Unlike the sink, nothing is held or dropped here: each result is also stored in the results
 * stream (`<prefix>.results.<stream>.seg`, ./cluster-connection.ts `ensureResultsStream`) with
 * msgID `<run>:<stream>:<seq>`, and `publish` resolves only once JetStream has acked it; the
 * worker acks its frames after that, so a lost connection means redelivery, not loss. The stored
 * result is JSON `{ stats, mask? }`, `mask` the label PNG in base64 when the frame asked for it.
 */
import { headers as natsHeaders, type JetStreamClient, type NatsConnection } from 'nats';
import { imageHeaders } from '../sinks/image-headers.js';
import type { ClassInfo, FrameStats, RenderedFrame, Segmentation } from '../types.js';
import { renderFrame } from '../operators/render-outputs.js';
import { serviceEventsSubject, streamSubject } from '../sinks/nats-subjects.js';
import { resultsSubject } from './cluster-names.js';
import type { ServiceEvent } from '../sinks/sink.js';

export interface ResultPublisherOptions {
  readonly nc: NatsConnection;
  readonly prefix: string;
  readonly worker: string;
  /** Overlay JPEGs on `.frames` (default true, as the sink). */
  readonly frames?: boolean;
  /** Label PNGs on `.masks` (default false, as the sink). */
  readonly masks?: boolean;
  /** Default 75. */
  readonly jpegQuality?: number;
}

/** A result as the results stream stores it. */
export interface StoredResult {
  readonly stats: FrameStats;
  /** Indexed label PNG, base64, when the frame's ingest asked for masks. */
  readonly mask?: string;
}

/** How long a result's store may take before the batch is returned to the queue, ms. */
const STORE_TIMEOUT_MS = 10_000;

export class ResultPublisher {
  /** Per stream: the legend last announced (head version and names), to announce changes only. */
  private readonly legendKey = new Map<string, string>();
  private published = 0;
  private readonly js: JetStreamClient;

  constructor(private readonly options: ResultPublisherOptions) {
    this.js = options.nc.jetstream();
  }

  get count(): number {
    return this.published;
  }

  /**
   * Publishes one frame's results (stats first, then legend and images) and stores it in the
   * results stream; resolves once stored (rejects if it could not be: the frame goes back to the queue).
   */
  async publish(frame: RenderedFrame | Segmentation, run: string, wantMask = false): Promise<FrameStats> {
    const { nc, prefix } = this.options;
    const r = 'seg' in frame ? frame : this.render(frame, wantMask);
    const { seg, stats, meta } = r;
    const f = seg.frame;
    const stream = f.streamId;
    const key = `${seg.headVersion}\n${seg.classes.map((c) => c.name).join('\n')}`;
    if (this.legendKey.get(stream) !== key) {
      this.legendKey.set(stream, key);
      this.legend(stream, seg.classes, seg.headVersion);
    }
    const h = natsHeaders();
    h.set('worker', this.options.worker);
    h.set('head-version', String(seg.headVersion));
    h.set('run', run);
    nc.publish(streamSubject(prefix, stream, 'stats'), json(stats), { headers: h });
    const png = r.png;
    const stored: StoredResult = { stats, ...(wantMask && png ? { mask: Buffer.from(png).toString('base64') } : {}) };
    const storing = this.js.publish(resultsSubject(prefix, stream), json(stored), {
      msgID: `${run}:${stream}:${f.seq}`,
      headers: h,
      timeout: STORE_TIMEOUT_MS,
    });
    if (png && (this.options.masks ?? false)) {
      nc.publish(streamSubject(prefix, stream, 'masks'), png, { headers: imageHeaders(stream, meta, 'image/png') });
    }
    if (r.jpeg) {
      const jpeg = await r.jpeg;
      nc.publish(streamSubject(prefix, stream, 'frames'), jpeg.data, { headers: imageHeaders(stream, jpeg.meta, 'image/jpeg') });
    }
    await storing;
    this.published++;
    return stats;
  }

  /** A segmentation rendered as the worker's pipeline renders it (for callers that have not). */
  private render(seg: Segmentation, wantMask: boolean): RenderedFrame {
    return renderFrame(seg, {
      png: () => (this.options.masks ?? false) || wantMask,
      jpeg: () => this.options.frames ?? true,
      ...(this.options.jpegQuality !== undefined ? { jpegQuality: this.options.jpegQuality } : {}),
    });
  }

  legend(stream: string, classes: readonly ClassInfo[], headVersion: number): void {
    this.options.nc.publish(streamSubject(this.options.prefix, stream, 'classes'), json({ stream, headVersion, classes }));
  }

  event(e: ServiceEvent): void {
    const stream = 'stream' in e ? e.stream : undefined;
    const { nc, prefix } = this.options;
    nc.publish(stream === undefined ? serviceEventsSubject(prefix) : streamSubject(prefix, stream, 'events'), json(e));
  }
}

function json(v: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(v), 'utf8');
}
