/**
 * A duty-cycle limiter for the learner's background rounds. A round is seconds of Adam steps in
 * one JS thread; on a machine whose cores decoding and inference keep busy, a nice value alone
 * still let it take a sixth of the machine (learning on / off 0.84 in the bench). Pausing the
 * thread after each slice of work, for as long as the slice took times (1 - share) / share,
 * bounds the round's average use of its core at `share` whatever the scheduler does. The round
 * takes 1 / share times longer in wall time; inference keeps serving the current head meanwhile.
 */
import { BadOptionError } from '../errors.js';

/**
 * Default share of the machine a background round may take. Learning on / off in the bench
 * (rounds every 60 frames, 2 cores): see README "Learning" for the measured figures.
 */
export const DEFAULT_LEARN_CPU_SHARE = 0.1;

/** Work shorter than this is not paused after (a pause per k-means call would cost more in wake-ups than it saves). */
const SLICE_MS = 20;

export class DutyCycle {
  private readonly share: number;
  private readonly cell: Int32Array;
  private since = performance.now();
  private busyMs = 0;
  private idle = 0;

  /**
   * @param share the most of one core the thread keeps busy on average, in (0, 1]; 1 never pauses.
   * @param cell a shared Int32Array cell (`hurryCell`): once another thread sets it with
   *   `hurry`, pauses end at once and no more are taken (a round someone now waits for, such as
   *   the last one at shutdown, runs flat out).
   */
  constructor(share: number, cell: Int32Array = hurryCell()) {
    if (!(share > 0 && share <= 1)) throw new BadOptionError('learner CPU share', 'a number in (0, 1]', share);
    this.share = share;
    this.cell = cell;
  }

  /**
   * Called between pieces of work: once the work since the last pause reaches a slice, blocks
   * the calling thread long enough that work / (work + pause) = share. Blocking is the point:
   * the thread runs synchronous rounds, and messages queue up meanwhile as they do during work.
   */
  tick(): void {
    if (this.share >= 1 || Atomics.load(this.cell, 0) !== 0) return;
    const now = performance.now();
    this.busyMs += now - this.since;
    this.since = now;
    if (this.busyMs < SLICE_MS) return;
    const pause = (this.busyMs * (1 - this.share)) / this.share;
    this.busyMs = 0;
    // A sleep that works in workers and Node's main thread, and that `hurry` cuts short.
    Atomics.wait(this.cell, 0, 0, pause);
    const after = performance.now();
    this.idle += after - now;
    this.since = after;
  }

  /** Milliseconds spent paused so far. */
  get idleMs(): number {
    return this.idle;
  }
}

/**
 * The duty share of the learner's one thread that keeps it at `machineShare` of all `cores`:
 * on 2 cores, 0.1 of the machine is 0.2 of one core; on 16, the thread may run flat out.
 */
export function threadShare(machineShare: number, cores: number): number {
  return Math.min(1, machineShare * Math.max(1, cores));
}

/** A cell for `DutyCycle` that another thread can `hurry` (post its buffer to the worker). */
export function hurryCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** Ends the pauses of the DutyCycle that uses `cell`, now and for the rest of its round. */
export function hurry(cell: Int32Array): void {
  Atomics.store(cell, 0, 1);
  Atomics.notify(cell, 0);
}
