/**
 * Credit-based backpressure between a source and the end of the pipeline.
 *
 * RxJS has no pull protocol, so a lossless (`wait`) source asks the gate for a credit before it
 * emits each frame and the last stage gives the credit back once the frame is fully handled. While
 * no credit is free the source stops reading ffmpeg's stdout, so the OS pipe fills and ffmpeg
 * blocks: memory stays flat however long the video is.
 */
export class FlowGate {
  /** Frames emitted and not yet released. */
  private inFlight = 0;
  private readonly waiters: Array<() => void> = [];
  private closed = false;

  /** @param limit most frames in flight at once (>= 1). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`FlowGate limit must be an integer >= 1, got ${limit}`);
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Resolves once a credit is free; takes it. Resolves at once after `close()`. */
  acquire(): Promise<void> {
    if (this.closed || this.inFlight < this.limit) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(() => {
        this.inFlight++;
        resolve();
      });
    });
  }

  /** Gives `n` credits back (a frame finished, or was dropped). */
  release(n = 1): void {
    this.inFlight = Math.max(0, this.inFlight - n);
    while (this.waiters.length > 0 && (this.closed || this.inFlight < this.limit)) this.waiters.shift()?.();
  }

  /** Lets every waiter through: used on teardown so no source hangs on a gate nobody releases. */
  close(): void {
    this.closed = true;
    this.release(0);
  }
}
