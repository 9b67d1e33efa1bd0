/**
 * A duty-cycle limiter for the learner's background rounds. A round is seconds of Adam steps in
 * one JS thread; on a machine whose cores decoding and inference keep busy, a nice value alone
 * still let it take a sixth of the machine (learning on / off 0.84 in the bench). Pausing the
 * thread after each slice of work, for as long as the slice took times (1 - share) / share,
 * bounds the round's average use of its core at `share` whatever the scheduler does. The round
 * takes 1 / share times longer in wall time; inference keeps serving the current head meanwhile.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { BadOptionError } from '../errors.js';

/**
 * Default share of the machine a background round may take. Learning on / off in the bench
 * (rounds every 60 frames, 2 cores): see README "Learning" for the measured figures.
 */
export const DEFAULT_LEARN_CPU_SHARE = 0.1;

/** Work shorter than this is not paused after (a pause per k-means call would cost more in wake-ups than it saves). */
const SLICE_MS = 20;

/** Cores an adaptive round leaves free for everything else even on an idle machine (a frame arriving, a client connecting). */
export const RESERVE_CORES = 0.5;
/** The most of its core an adaptive round takes: it keeps pausing a little, which is when it measures the machine. */
export const MAX_ADAPTIVE_SHARE = 0.9;
/** Pause time (ms) measured before the share is re-set: /proc/stat counts in 10 ms ticks, so shorter would be noise. */
const PROBE_MS = 200;

/** The machine's CPU time so far, summed over cores, in any one unit: idle (with iowait) and total. */
export type CpuClock = () => { readonly idle: number; readonly total: number };

/**
 * The CPU clock of this machine: the first line of /proc/stat on Linux (a 20 µs read), else
 * `os.cpus()` (slower, everywhere).
 */
export function machineCpuClock(): CpuClock {
  try {
    readFileSync('/proc/stat', 'latin1');
    return () => {
      const line = readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n', 1)[0] as string;
      // cpu user nice system idle iowait irq softirq steal (guest time is already in user).
      const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
      const total = v.reduce((a, b) => a + b, 0);
      return { idle: (v[3] ?? 0) + (v[4] ?? 0), total };
    };
  } catch {
    return () => {
      let idle = 0;
      let total = 0;
      for (const c of cpus()) {
        idle += c.times.idle;
        total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
      }
      return { idle, total };
    };
  }
}

/**
 * The share of its core an adaptive round takes, from the cores the rest of the machine left
 * idle while the round was paused: what is free beyond RESERVE_CORES, between the configured
 * `floor` and MAX_ADAPTIVE_SHARE. A saturated pipeline leaves nothing free: the floor holds.
 */
export function adaptiveShare(freeCores: number, floor: number): number {
  return Math.max(floor, Math.min(MAX_ADAPTIVE_SHARE, freeCores - RESERVE_CORES));
}

/** What an adaptive DutyCycle measures the machine with. */
export interface AdaptiveCpu {
  readonly clock: CpuClock;
  readonly cores: number;
}

export class DutyCycle {
  private readonly floor: number;
  private share: number;
  private readonly cell: Int32Array;
  private since = performance.now();
  private busyMs = 0;
  private idle = 0;
  private work = 0;
  private probeIdle = 0;
  private probeTotal = 0;
  /** `idle` when the current probe began. */
  private probeStart = 0;

  /**
   * @param share the most of one core the thread keeps busy on average, in (0, 1]; 1 never pauses.
   * @param cell a shared Int32Array cell (`hurryCell`): once another thread sets it with
   *   `hurry`, pauses end at once and no more are taken (a round someone now waits for, such as
   *   the last one at shutdown, runs flat out).
   * @param adaptive with it, `share` is a floor: while the thread pauses it measures how much of
   *   the machine the rest leaves idle, and takes what is free (adaptiveShare). A live feed slower
   *   than the model leaves cores idle that a fixed share would waste; a saturated pipeline
   *   leaves none, and the round keeps to `share`.
   */
  constructor(
    share: number,
    cell: Int32Array = hurryCell(),
    private readonly adaptive?: AdaptiveCpu,
  ) {
    if (!(share > 0 && share <= 1)) throw new BadOptionError('learner CPU share', 'a number in (0, 1]', share);
    this.floor = share;
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
    this.work += this.busyMs;
    this.busyMs = 0;
    const before = this.adaptive?.clock();
    // A sleep that works in workers and Node's main thread, and that `hurry` cuts short.
    Atomics.wait(this.cell, 0, 0, pause);
    const after = performance.now();
    this.idle += after - now;
    this.since = after;
    if (this.adaptive && before) this.measure(before);
  }

  /** Adds the pause just ended to the probe; once it is long enough, re-sets the share from it. */
  private measure(before: { idle: number; total: number }): void {
    const { clock, cores } = this.adaptive as AdaptiveCpu;
    const now = clock();
    this.probeIdle += now.idle - before.idle;
    this.probeTotal += now.total - before.total;
    // Clock units differ (ticks, ms); the total over the probe is known in ms of wall time x cores.
    if (this.probeTotal <= 0 || this.probeWallMs() < PROBE_MS) return;
    this.share = adaptiveShare((cores * this.probeIdle) / this.probeTotal, this.floor);
    this.probeIdle = 0;
    this.probeTotal = 0;
    this.probeStart = this.idle;
  }

  private probeWallMs(): number {
    return this.idle - this.probeStart;
  }

  /** The share the thread keeps to now (the floor, or what the machine left free). */
  get currentShare(): number {
    return this.share;
  }

  /** Milliseconds spent paused so far. */
  get idleMs(): number {
    return this.idle;
  }

  /** Milliseconds of work that were followed by a pause, so far. */
  get workMs(): number {
    return this.work;
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
