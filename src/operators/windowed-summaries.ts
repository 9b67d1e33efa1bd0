import type { ClassInfo, FrameStats, WindowSummary } from '../types.js';

/** The summary windows, by name: their length in ms. */
export const SUMMARY_WINDOWS = { '1s': 1_000, '10s': 10_000, '60s': 60_000 } as const;
export type SummaryWindow = keyof typeof SUMMARY_WINDOWS;

interface Accumulator {
  /** Window start, ms since the epoch (a multiple of the window length). */
  readonly start: number;
  frames: number;
  firstSeq: number;
  lastSeq: number;
  headVersion: number;
  /** Per class id: sum, min and max of the fraction over the window's frames (absent = 0). */
  readonly sums: Map<number, { sum: number; min: number; max: number }>;
  /** The legend of the window's last frame. */
  classes: readonly Pick<ClassInfo, 'id' | 'name' | 'color'>[];
}

/**
 * Per-stream summaries of the class statistics over windows aligned to the wall clock (1 s, 10 s,
 * 60 s: a 10 s window runs from :00 to :10, :10 to :20...), so a dashboard or a logger subscribes
 * at 1 Hz instead of at the frame rate. For each class: the mean, min and max fraction over the
 * window's frames (a class missing from a frame, after a class-count change, counts as 0 there);
 * the frame count; the last head version. A window is emitted once the clock has passed its end
 * (`flush`), and only if it holds frames: a stopped stream goes quiet rather than reporting zeros.
 */
export class WindowedSummaries {
  private readonly open = new Map<string, Accumulator>();

  constructor(
    private readonly emit: (s: WindowSummary) => void,
    private readonly windows: readonly SummaryWindow[] = ['1s', '10s', '60s'],
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds one frame's statistics, dated by the wall clock now (frames arrive as they are segmented). */
  add(s: FrameStats): void {
    const t = this.now();
    this.flush(t);
    for (const w of this.windows) {
      const len = SUMMARY_WINDOWS[w];
      const key = `${s.stream}\n${w}`;
      let acc = this.open.get(key);
      if (!acc) {
        const start = Math.floor(t / len) * len;
        this.open.set(key, (acc = { start, frames: 0, firstSeq: s.seq, lastSeq: s.seq, headVersion: 0, sums: new Map(), classes: [] }));
      }
      for (const [id, v] of acc.sums) if (!s.classes.some((c) => c.id === id)) v.min = Math.min(v.min, 0);
      for (const c of s.classes) {
        const v = acc.sums.get(c.id);
        // A class first seen mid-window had fraction 0 in the frames before.
        if (!v) acc.sums.set(c.id, { sum: c.fraction, min: acc.frames > 0 ? Math.min(0, c.fraction) : c.fraction, max: c.fraction });
        else {
          v.sum += c.fraction;
          v.min = Math.min(v.min, c.fraction);
          v.max = Math.max(v.max, c.fraction);
        }
      }
      acc.frames++;
      acc.lastSeq = s.seq;
      acc.headVersion = s.headVersion;
      acc.classes = s.classes.map((c) => ({ id: c.id, name: c.name, color: c.color }));
    }
  }

  /** Emits every window that ended by `t` (ms since the epoch); call it now and then (e.g. 4 Hz). */
  flush(t = this.now()): void {
    for (const [key, acc] of this.open) {
      const [stream, w] = key.split('\n') as [string, SummaryWindow];
      const end = acc.start + SUMMARY_WINDOWS[w];
      if (t < end) continue;
      this.open.delete(key);
      this.emit({
        stream,
        window: w,
        start: new Date(acc.start).toISOString(),
        end: new Date(end).toISOString(),
        frames: acc.frames,
        firstSeq: acc.firstSeq,
        lastSeq: acc.lastSeq,
        headVersion: acc.headVersion,
        classes: acc.classes.map((c) => {
          const v = acc.sums.get(c.id) ?? { sum: 0, min: 0, max: 0 };
          return { ...c, mean: v.sum / acc.frames, min: v.min, max: v.max };
        }),
      });
    }
  }
}
