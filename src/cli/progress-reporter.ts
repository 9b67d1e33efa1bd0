import cliProgress from 'cli-progress';
import type { ProgressFactory, ProgressMeter } from '../types.js';

/** Interval of the plain progress lines when stderr is not a terminal, ms. */
export const PLAIN_PROGRESS_INTERVAL_MS = 5000;

/**
 * Frames, fps and ETA: a cli-progress bar on a terminal, a plain line every few seconds
 * otherwise (logs, CI). Writes to stderr so stdout stays for results.
 */
export class ProgressReporter implements ProgressMeter {
  private readonly bar: cliProgress.SingleBar | undefined;
  private readonly start = performance.now();
  private lastLine = 0;
  private done = 0;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    enabled = true,
  ) {
    if (enabled && process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {value}/{total} frames | {fps} fps | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total ?? 0, 0, { fps: '0.0' });
    }
    this.enabled = enabled;
  }

  private readonly enabled: boolean;

  get fps(): number {
    const s = (performance.now() - this.start) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  tick(n = 1): void {
    this.done += n;
    if (!this.enabled) return;
    if (this.bar) {
      if (this.total === undefined || this.done > this.total) this.bar.setTotal(this.done);
      this.bar.update(this.done, { fps: this.fps.toFixed(1) });
      return;
    }
    const now = performance.now();
    if (now - this.lastLine >= PLAIN_PROGRESS_INTERVAL_MS) {
      this.lastLine = now;
      const eta = this.total !== undefined && this.fps > 0 ? ` eta ${Math.max(0, (this.total - this.done) / this.fps).toFixed(0)}s` : '';
      process.stderr.write(
        `${this.label}: ${this.done}${this.total !== undefined ? `/${this.total}` : ''} frames, ${this.fps.toFixed(1)} fps${eta}\n`,
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
