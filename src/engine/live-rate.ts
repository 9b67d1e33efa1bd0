import type { StageCounters } from '../types.js';
import type { KeepEvery } from '../sources/keep-every.js';

/** How often each live stream's step is judged, ms: long enough for a few batches at a few fps. */
export const LIVE_RATE_WINDOW_MS = 2000;

/** Fewest frames a second a step may leave a feed: well inside any stall watch (1.5 s and up). */
export const MIN_KEPT_FPS = 3;

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
 * about 1.25x what the model took (a free batch slot then still finds a fresh frame); when
 * almost none were dropped, keep one more in every k, to find out whether the model can take it.
 * Between the two the step holds, so it settles instead of swinging. No step leaves the feed
 * fewer than MIN_KEPT_FPS frames a second.
 */
export function nextKeepEvery(k: number, w: RateWindow): number {
  // Too few frames to judge: a stalled, starting or very slow feed.
  if (w.kept < 4) return k;
  const share = w.dropped / w.kept;
  if (share > 0.25) {
    const taken = Math.max(1, w.kept - w.dropped);
    const decoded = k * w.kept;
    const most = Math.max(1, Math.floor(decoded / (w.seconds * MIN_KEPT_FPS)));
    return Math.max(k, Math.min(most, Math.floor(decoded / (1.25 * taken))));
  }
  if (share < 0.05 && k > 1) return k - 1;
  return k;
}

/**
 * Sets each live stream's step (sources with `keepEvery`) every LIVE_RATE_WINDOW_MS from the
 * batcher's counters, so that frames the model would never take are dropped inside ffmpeg, not
 * after costing a scale, an RGB conversion, a pipe and a queue slot. STEGOSTREAM_LIVE_RATE=off
 * keeps every frame (to compare). Returns the stop function.
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
      const before = last.get(stream) ?? { received: 0, processed: 0, dropped: 0 };
      last.set(stream, { ...c });
      const window = { kept: c.received - before.received, dropped: c.dropped - before.dropped, seconds: windowMs / 1000 };
      keep.set(nextKeepEvery(keep.value, window));
    }
  }, windowMs);
  timer.unref();
  return () => clearInterval(timer);
}
