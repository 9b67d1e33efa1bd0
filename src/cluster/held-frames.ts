import type { JsMsg } from 'nats';
import type { Counter } from 'prom-client';
import type { Frame } from '../types.js';
import { FlowGate } from '../internal/flow-gate.js';
import type { WireFrame } from './frame-codec.js';

/** Deliveries after which a frame that keeps failing is terminated rather than retried. */
export const MAX_FAILED_DELIVERIES = 20;
/** A frame that failed inference or storing is retried after this long, ms. */
export const FAILURE_NAK_DELAY_MS = 2_000;

export interface WorkerCounters {
  readonly frames: Counter<'outcome'>;
  readonly redelivered: Counter;
}

/**
 * The work-queue messages a worker holds: fetched and not yet acked, nak'ed or terminated. Each is
 * kept alive with `working()` while it waits or runs, so a long batch is not redelivered; the
 * frames decoded from them map back to their message for the ack. A gate bounds how many frames
 * are handed to the pipeline and not yet settled (about two batches: one running, one ready).
 */
export class HeldFrames {
  private readonly pending = new Set<JsMsg>();
  private readonly byFrame = new Map<Frame, { readonly m: JsMsg; readonly w: WireFrame }>();
  private readonly keepAlive: NodeJS.Timeout;
  readonly gate: FlowGate;
  redelivered = 0;
  /** Frames whose result was stored and acked. */
  acked = 0;

  constructor(
    ackWaitMs: number,
    batchSize: number,
    private readonly counters: WorkerCounters,
  ) {
    // One batch being segmented, one in the backbone, one being fetched and decoded, one stored.
    this.gate = new FlowGate(batchSize * 4);
    this.keepAlive = setInterval(
      () => {
        for (const m of this.pending) m.working();
      },
      Math.max(250, Math.floor(ackWaitMs / 3)),
    );
    this.keepAlive.unref();
  }

  /** A message fetched: kept alive from now on. */
  hold(m: JsMsg): void {
    this.pending.add(m);
    if (m.redelivered) {
      this.redelivered++;
      this.counters.redelivered.inc();
    }
  }

  /** The frame decoded from a held message, about to enter the pipeline (holds one gate credit). */
  attach(w: WireFrame, m: JsMsg): void {
    this.byFrame.set(w.frame, { m, w });
  }

  /** Header `want: masks` of the frame's message. */
  wantsMask(frame: Frame): boolean {
    return this.byFrame.get(frame)?.w.wantMask ?? false;
  }

  /** The ingest run the frame belongs to (undefined: not a held frame). */
  run(frame: Frame): string | undefined {
    return this.byFrame.get(frame)?.w.run;
  }

  /** Settles a message that never became a pipeline frame (not a frame, or fetched while closing). */
  settleMessage(m: JsMsg, how: 'nak' | 'term'): void {
    if (!this.pending.delete(m)) return;
    if (how === 'nak') m.nak();
    else {
      this.counters.frames.inc({ outcome: 'terminated' });
      m.term();
    }
  }

  /** Acks a frame whose result is stored, or naks it back to the queue (after `delayMs`). */
  settle(frame: Frame, how: 'ack' | 'nak', delayMs?: number): void {
    const held = this.byFrame.get(frame);
    if (!held) return;
    this.byFrame.delete(frame);
    this.pending.delete(held.m);
    if (how === 'ack') {
      held.m.ack();
      this.acked++;
      this.counters.frames.inc({ outcome: 'acked' });
    } else held.m.nak(delayMs);
    this.gate.release();
  }

  /** A frame that failed: back to the queue for a retry, or terminated after too many deliveries. */
  fail(frame: Frame): void {
    const held = this.byFrame.get(frame);
    if (!held) return;
    if (held.m.info.deliveryCount < MAX_FAILED_DELIVERIES) return this.settle(frame, 'nak', FAILURE_NAK_DELAY_MS);
    this.byFrame.delete(frame);
    this.pending.delete(held.m);
    this.counters.frames.inc({ outcome: 'terminated' });
    held.m.term();
    this.gate.release();
  }

  /** On shutdown: every message still held goes back to the queue at once. */
  nakAll(): void {
    for (const m of this.pending) m.nak();
    this.pending.clear();
    this.byFrame.clear();
    clearInterval(this.keepAlive);
    this.gate.close();
  }
}
