import cliProgress from 'cli-progress';
import type { ProgressFactory, ProgressMeter } from '../types.js';

/** Interval of the plain progress lines when stderr is not a terminal, ms. */
export const PLAIN_PROGRESS_INTERVAL_MS = 5000;
/**
 * No ETA before this many frames and this long after the first: the first batches wait for the
 * learning round and warm-up, and an ETA from them is off by an order of magnitude.
 */
const ETA_MIN_FRAMES = 12;
const ETA_MIN_MS = 3000;

/**
 * Frames, fps and ETA: a cli-progress bar on a terminal, a plain line every few seconds
 * otherwise (logs, CI). Writes to stderr so stdout stays for results.
 */
export class ProgressReporter implements ProgressMeter {
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly start = performance.now();
  private lastLine = 0;
  private done = 0;
  /** Time and count of the first tick: the rate for the ETA is measured from there. */
  private first: { at: number; done: number } | undefined;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    enabled = true,
  ) {
    if (enabled && process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {value}/{total} frames | {fps} fps{eta}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total ?? 0, 0, { fps: '0.0', eta: '' });
    }
    this.enabled = enabled;
  }

  private readonly enabled: boolean;

  get fps(): number {
    const s = (performance.now() - this.start) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  /** Seconds left at the rate since the first tick, once a few batches have been timed. */
  private etaSeconds(): number | undefined {
    const first = this.first;
    if (!first || this.total === undefined) return undefined;
    const ms = performance.now() - first.at;
    const frames = this.done - first.done;
    if (frames < ETA_MIN_FRAMES || ms < ETA_MIN_MS) return undefined;
    return Math.max(0, ((this.total - this.done) * ms) / frames / 1000);
  }

  tick(n = 1): void {
    this.first ??= { at: performance.now(), done: this.done };
    this.done += n;
    const eta = this.etaSeconds();
    if (!this.enabled) return;
    if (this.bar) {
      if (this.total === undefined || this.done > this.total) this.bar.setTotal(this.done);
      this.bar.update(this.done, { fps: this.fps.toFixed(1), eta: eta === undefined ? '' : ` | ETA ${eta.toFixed(0)}s` });
      return;
    }
    const now = performance.now();
    if (now - this.lastLine >= PLAIN_PROGRESS_INTERVAL_MS) {
      this.lastLine = now;
      process.stderr.write(
        `${this.label}: ${this.done}${this.total !== undefined ? `/${this.total}` : ''} frames, ${this.fps.toFixed(1)} fps${eta === undefined ? '' : ` eta ${eta.toFixed(0)}s`}\n`,
      );
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** Progress meters for runners: ProgressReporters, silent unless `enabled`. */
export function progressBars(enabled: boolean): ProgressFactory {
  return (label, total) => new ProgressReporter(label, total, enabled);
}
