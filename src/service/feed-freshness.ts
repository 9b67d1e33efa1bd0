/**
 * When each stream's last frame arrived, and how often frames come: a feed that stops is seen at
 * once by `/readyz`, not only when the source's stall watchdog fires (`stallTimeoutMs`, seconds
 * later, and long by design: a listening input waits out an outage with its port open).
 */

/** A stream is fresh while its last frame is at most this many typical intervals old... */
const INTERVALS = 4;
/** ...and never less than this, ms (a frame every 40 ms would otherwise allow 160 ms of jitter). */
const MIN_WINDOW_MS = 1_000;
/** Weight of the newest interval in the running mean. */
const ALPHA = 0.1;

export class FeedFreshness {
  private readonly last = new Map<string, { at: number; meanMs: number | undefined }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A frame of `stream` arrived (once per frame: the entry is updated in place). */
  seen(stream: string): void {
    const t = this.now();
    const prev = this.last.get(stream);
    if (prev === undefined) {
      this.last.set(stream, { at: t, meanMs: undefined });
      return;
    }
    const gap = t - prev.at;
    prev.meanMs = prev.meanMs === undefined ? gap : prev.meanMs + ALPHA * (gap - prev.meanMs);
    prev.at = t;
  }

  /** How long `stream` may go without a frame before it counts as stopped, ms. */
  windowMs(stream: string): number {
    const mean = this.last.get(stream)?.meanMs;
    return Math.max(MIN_WINDOW_MS, mean === undefined ? 0 : INTERVALS * mean);
  }

  /** True while `stream`'s last frame is recent for its rate; false before its first frame. */
  fresh(stream: string): boolean {
    const l = this.last.get(stream);
    return l !== undefined && this.now() - l.at <= this.windowMs(stream);
  }

  /** ms since `stream`'s last frame, if it had one. */
  ageMs(stream: string): number | undefined {
    const l = this.last.get(stream);
    return l === undefined ? undefined : this.now() - l.at;
  }
}
