import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import type { Embedding, Frame, Segmentation } from '../types.js';
import type { InferenceClient } from '../backbone/inference-client.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import { featuresSubject } from './cluster-names.js';
import { encodeFeatures, sampleFeatures } from './feature-message.js';
import type { HeadWatch } from './head-watch.js';
import type { HeldFrames } from './held-frames.js';

/** A frame seen before the first head goes back to the queue for this long, ms. */
const WARMUP_NAK_DELAY_MS = 500;

export interface BatchSegmenterOptions {
  readonly nc: NatsConnection;
  readonly prefix: string;
  readonly inference: InferenceClient;
  readonly backboneName: string;
  readonly heads: HeadWatch;
  readonly held: HeldFrames;
  readonly batches: Counter;
  readonly headVersion: Gauge;
  readonly log: Logger;
  /** Send features of every n-th frame to the trainer (0: never). */
  readonly featuresEvery: number;
  /** Patches sampled per frame sent. */
  readonly featurePoints: number;
}

/**
 * The cluster worker's `segment` stage: swaps the newest head from KV in between batches (every
 * result of a batch carries the same head version), runs backbone + head once per working size,
 * and sends sampled features of every `featuresEvery`-th frame to the trainer. Until a head
 * exists, frames are embedded only, their features go to the trainer (so it can fit the first
 * head), and they are nak'ed back to the queue for later. A batch that fails inference is
 * returned to the queue (terminated after too many deliveries); the pipeline goes on.
 */
export class BatchSegmenter {
  private head: HeadState | undefined;
  batches = 0;

  constructor(private readonly o: BatchSegmenterOptions) {}

  get headVersion(): number {
    return this.head?.version ?? 0;
  }

  async segment(batch: readonly Frame[]): Promise<Segmentation[]> {
    const latest = this.o.heads.latest;
    if (latest !== undefined && latest !== this.head) {
      this.head = latest;
      this.o.headVersion.set(latest.version);
      this.o.log.info({ headVersion: latest.version }, 'head swapped in');
    }
    // One backbone call per working size (normally one).
    const groups = new Map<string, Frame[]>();
    for (const f of batch) {
      const k = `${f.width}x${f.height}`;
      groups.set(k, [...(groups.get(k) ?? []), f]);
    }
    const out: Segmentation[] = [];
    for (const group of groups.values()) {
      try {
        out.push(...(await this.segmentGroup(group)));
      } catch (err) {
        this.o.log.error({ err, frames: group.length }, 'batch failed; returning its frames to the queue');
        for (const f of group) this.o.held.fail(f);
      }
    }
    this.batches++;
    this.o.batches.inc();
    return out;
  }

  private async segmentGroup(group: Frame[]): Promise<Segmentation[]> {
    const head = this.head;
    if (head === undefined) {
      const r = await this.o.inference.infer(group);
      for (const e of r.embeddings) this.sendFeatures(e);
      for (const f of group) this.o.held.settle(f, 'nak', WARMUP_NAK_DELAY_MS);
      return [];
    }
    const r = await this.o.inference.infer(group, head);
    const classes = classInfos(head);
    const labels = r.labels ?? [];
    return r.embeddings.map((e, i) => {
      if (this.o.featuresEvery > 0 && e.frame.seq % this.o.featuresEvery === 0) this.sendFeatures(e);
      return { frame: e.frame, labels: labels[i] as Uint8Array, headVersion: head.version, classes, embedding: e };
    });
  }

  private sendFeatures(e: Embedding): void {
    const { data, headers } = encodeFeatures(sampleFeatures(e, this.o.featurePoints, this.o.backboneName));
    this.o.nc.publish(featuresSubject(this.o.prefix), data, { headers });
  }
}
