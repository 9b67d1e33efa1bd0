import type { FfmpegRun } from '../internal/ffmpeg-process.js';

/**
 * How many of a live feed's decoded frames ffmpeg passes on: one in `value`. The rest are dropped
 * inside ffmpeg (a `framestep` whose timeline `enable` expression is set at run time through
 * ffmpeg's command channel), before they are scaled, converted to RGB, piped and queued: a frame
 * the model would never see costs only its decoding. `serve` sets it per stream from what the
 * stream's queue drops (live-rate.ts); 1 passes every frame.
 */
export class KeepEvery {
  /** Largest step: a 30 fps feed still gives 2 frames a second, well inside a stall watch. */
  static readonly MAX = 15;
  private k = 1;
  private readonly listeners = new Set<(k: number) => void>();

  get value(): number {
    return this.k;
  }

  /** Sets the step (a whole number, clamped to 1..MAX); listeners hear only real changes. */
  set(k: number): void {
    const next = Math.min(KeepEvery.MAX, Math.max(1, Math.round(Number.isFinite(k) ? k : 1)));
    if (next === this.k) return;
    this.k = next;
    for (const fn of this.listeners) fn(next);
  }

  /** Calls `fn` with each new step; returns the unsubscribe. */
  onChange(fn: (k: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** Sets a running ffmpeg's step (its keep filter's `enable`); false when ffmpeg is not running. */
export function sendKeep(run: Pick<FfmpegRun, 'command'>, k: number): boolean {
  return run.command(KEEP_FILTER, 'enable', keepExpression(k));
}

/** The named filter that drops frames inside ffmpeg. */
export const KEEP_FILTER = 'framestep@keep';

/** Its `enable` expression: enabled (dropping) except on every k-th decoded frame. */
export function keepExpression(k: number): string {
  return k <= 1 ? '0' : `mod(n,${k})`;
}

/**
 * The filter as the head of a -vf chain. With a step no count reaches, an enabled framestep
 * drops every frame but the first; the timeline's `enable` decides which frames reach it at all.
 */
export function keepFilter(k: number): string {
  return `${KEEP_FILTER}=step=1073741824:enable=${keepExpression(k).replace(/,/g, '\\,')}`;
}
