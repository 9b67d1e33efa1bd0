import type { StageCounters } from '../types.js';
import type { KeepEvery } from '../sources/keep-every.js';

/** How often each live stream's step is judged, ms: long enough for a few batches at a few fps. */
export const LIVE_RATE_WINDOW_MS = 2000;

/** Fewest frames a second a step may leave a feed: well inside any stall watch (1.5 s and up). */
export const MIN_KEPT_FPS = 3;

/** Factor on the step when the model took almost all of a stream's kept frames (nextKeepEvery). */
const RECOVERY = 0.6;

/** One stream's queue over a window: frames that reached it (kept by ffmpeg), and those it dropped. */
export interface RateWindow {
  readonly kept: number;
  readonly dropped: number;
  /** The window's length. */
  readonly seconds: number;
}

/**
 * The next step (one decoded frame in `k` kept) for a live stream, from what its drop-oldest
 * queue did in the last window. When more than a quarter of the kept frames were dropped, keep
 * about 1.25x what the model took (a free batch slot then still finds a fresh frame), but at most
 * halve the kept rate in one window; when under a tenth were dropped, keep about 1.6x as many, to
 * find out whether the model can take them. Between the two the step holds, so it settles instead
 * of swinging. No step leaves the feed fewer than MIN_KEPT_FPS frames a second.
 *
 * Why the limits: a window in which the model is briefly slow (its first batches, a learning
 * round's start, a busy moment) set the step from that moment alone, and a step of one back at a
 * time then took 16 s to undo it after four feeds started at once (the bench measured 0.6 of one
 * feed's aggregate where keeping every frame gave 1.27). A drop or two in a window is no signal:
 * with a queue of 2 and batches shared by several feeds, a feed the model keeps up with still
 * loses one now and then.
 */
export function nextKeepEvery(k: number, w: RateWindow): number {
  // Too few frames to judge: a stalled, starting or very slow feed.
  if (w.kept < 4) return k;
  const share = w.dropped / w.kept;
  if (share > 0.25) {
    const taken = Math.max(1, w.kept - w.dropped);
    const decoded = k * w.kept;
    const most = Math.max(1, Math.floor(decoded / (w.seconds * MIN_KEPT_FPS)));
    return Math.max(k, Math.min(most, 2 * k, Math.floor(decoded / (1.25 * taken))));
  }
  if (share < 0.1 && k > 1) return Math.min(k - 1, Math.round(k * RECOVERY));
  return k;
}

/**
 * Sets each live stream's step (sources with `keepEvery`) every LIVE_RATE_WINDOW_MS from the
 * batcher's counters, so that frames the model would never take are dropped inside ffmpeg, not
 * after costing a scale, an RGB conversion, a pipe and a queue slot. A stream's first window with
 * frames only sets the baseline. STEGOSTREAM_LIVE_RATE=off keeps every frame (to compare).
 * Returns the stop function.
 */
export function liveRateControl(
  sources: ReadonlyArray<{ readonly name: string; readonly keepEvery?: KeepEvery }>,
  counters: ReadonlyMap<string, StageCounters>,
  windowMs = LIVE_RATE_WINDOW_MS,
): () => void {
  if (process.env['STEGOSTREAM_LIVE_RATE'] === 'off') return () => undefined;
  const streams = new Map(sources.flatMap((s) => (s.keepEvery ? [[s.name, s.keepEvery] as const] : [])));
  const last = new Map<string, StageCounters>();
  const timer = setInterval(() => {
    for (const [stream, keep] of streams) {
      const c = counters.get(stream);
      if (!c) continue;
      const before = last.get(stream);
      last.set(stream, { ...c });
      // A stream's first window holds its ffmpeg's start and the model's first, slow batches:
      // judged, it set steps that took many windows to undo.
      if (!before || before.received === 0) continue;
      const window = { kept: c.received - before.received, dropped: c.dropped - before.dropped, seconds: windowMs / 1000 };
      keep.set(nextKeepEvery(keep.value, window));
    }
  }, windowMs);
  timer.unref();
  return () => clearInterval(timer);
}
