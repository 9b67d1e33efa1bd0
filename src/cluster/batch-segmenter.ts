import type { NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import type { Embedding, Frame, Segmentation, StagedCall } from '../types.js';
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
 * result of a batch carries the same head version), runs backbone + head once per working size
 * (the next batch's backbone while this one is segmented),
 * and sends sampled features of every `featuresEvery`-th frame to the trainer. Until a head
 * exists, frames are embedded only, their features go to the trainer (so it can fit the first
 * head), and they are nak'ed back to the queue for later. A batch that fails inference is
 * returned to the queue (terminated after too many deliveries); the pipeline goes on.
 */
export class BatchSegmenter {
  private head: HeadState | undefined;
  /** Settles when the last staged batch has been segmented. */
  private segmented: Promise<unknown> = Promise.resolve();
  batches = 0;

  constructor(private readonly o: BatchSegmenterOptions) {}

  get headVersion(): number {
    return this.head?.version ?? 0;
  }

  /**
   * One batch in two stages, as `SegmentationEngine.stage`: the backbone runs at once (`taken`),
   * the segmentation after the batch before has been segmented, with the newest head then. A
   * group that fails either stage goes back to the queue; `results` never rejects.
   */
  stage(batch: readonly Frame[]): StagedCall<Segmentation> {
    // One backbone call per working size (normally one).
    const groups = new Map<string, Frame[]>();
    for (const f of batch) {
      const k = `${f.width}x${f.height}`;
      groups.set(k, [...(groups.get(k) ?? []), f]);
    }
    const embedded = [...groups.values()].map((group) => ({
      group,
      embeddings: this.o.inference.embed(group).then(
        (e): Embedding[] | Error => e,
        (err: unknown) => err as Error,
      ),
    }));
    const before = this.segmented;
    const results = (async (): Promise<Segmentation[]> => {
      await before;
      this.swapHead();
      const out: Segmentation[] = [];
      for (const { group, embeddings } of embedded) {
        try {
          const e = await embeddings;
          if (e instanceof Error) throw e;
          out.push(...(await this.segmentGroup(group, e)));
        } catch (err) {
          this.o.log.error({ err, frames: group.length }, 'batch failed; returning its frames to the queue');
          for (const f of group) this.o.held.fail(f);
        }
      }
      this.batches++;
      this.o.batches.inc();
      return out;
    })();
    this.segmented = results;
    return { taken: Promise.all(embedded.map((g) => g.embeddings)), results };
  }

  private swapHead(): void {
    const latest = this.o.heads.latest;
    if (latest !== undefined && latest !== this.head) {
      this.head = latest;
      this.o.headVersion.set(latest.version);
      this.o.log.info({ headVersion: latest.version }, 'head swapped in');
    }
  }

  private async segmentGroup(group: Frame[], embeddings: Embedding[]): Promise<Segmentation[]> {
    const head = this.head;
    if (head === undefined) {
      for (const e of embeddings) this.sendFeatures(e);
      for (const f of group) this.o.held.settle(f, 'nak', WARMUP_NAK_DELAY_MS);
      return [];
    }
    const labels = await this.o.inference.segment(group, head, embeddings);
    const classes = classInfos(head);
    return embeddings.map((e, i) => {
      if (this.o.featuresEvery > 0 && e.frame.seq % this.o.featuresEvery === 0) this.sendFeatures(e);
      return { frame: e.frame, labels: labels[i] as Uint8Array, headVersion: head.version, classes, embedding: e };
    });
  }

  private sendFeatures(e: Embedding): void {
    const { data, headers } = encodeFeatures(sampleFeatures(e, this.o.featurePoints, this.o.backboneName));
    this.o.nc.publish(featuresSubject(this.o.prefix), data, { headers });
  }
}
