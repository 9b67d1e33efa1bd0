/**
 * Ingest's per-stream counts, and each stream's end: once a source has ended and every frame it
 * emitted is published or dropped, the end goes out as a `stopped` event with the frame count
 * and is stored in the results stream for collectors that read later (once per stream).
 */
import type { Logger } from 'pino';
import type { ServiceEvent } from '../types.js';

export interface IngestStreamResult {
  readonly stream: string;
  /** Frames stored in the work queue. */
  readonly frames: number;
  /** Frames a live feed dropped because the queue was full or slow. */
  readonly dropped: number;
  readonly run: string;
}

interface StreamCounters {
  emitted: number;
  published: number;
  dropped: number;
  ended: boolean;
  endSent: boolean;
}

export interface IngestCountersOptions {
  readonly streams: readonly string[];
  readonly run: string;
  readonly publishEvent: (e: ServiceEvent, frames?: number) => void;
  /** Stores the end in the results stream. */
  readonly storeEnd: (stream: string, frames: number) => Promise<void>;
  readonly log: Logger;
}

export class IngestCounters {
  private readonly counters = new Map<string, StreamCounters>();
  /** Stores of each stream's end in the results stream: `done` waits for them. */
  private readonly endsStored: Promise<void>[] = [];

  constructor(private readonly o: IngestCountersOptions) {
    for (const s of o.streams) this.counters.set(s, { emitted: 0, published: 0, dropped: 0, ended: false, endSent: false });
  }

  emitted(stream: string): void {
    const c = this.counters.get(stream);
    if (c) c.emitted++;
  }

  published(stream: string): void {
    const c = this.counters.get(stream);
    if (c) c.published++;
  }

  dropped(stream: string): void {
    const c = this.counters.get(stream);
    if (c) c.dropped++;
    this.sendEndIfDone(stream);
  }

  ended(stream: string): void {
    const c = this.counters.get(stream);
    if (c) c.ended = true;
    this.sendEndIfDone(stream);
  }

  /** Every stream ends now with what it has published (a stop). */
  endAll(): void {
    for (const [name, c] of this.counters) {
      c.ended = true;
      c.emitted = c.published + c.dropped;
      this.sendEndIfDone(name);
    }
  }

  sendEndIfDone(stream: string): void {
    const c = this.counters.get(stream);
    if (!c || !c.ended || c.endSent || c.published + c.dropped < c.emitted) return;
    c.endSent = true;
    this.o.publishEvent({ type: 'source-state', stream, state: 'stopped', detail: `end of input: ${c.published} frames` }, c.published);
    this.o.log.info({ stream, frames: c.published, dropped: c.dropped }, 'stream ingested');
    this.endsStored.push(
      this.o
        .storeEnd(stream, c.published)
        .catch((err: unknown) => this.o.log.warn({ err, stream }, 'cannot store the end of the stream for late collectors')),
    );
  }

  /** Resolves once every end sent so far is stored (or failed to be). */
  async stored(): Promise<void> {
    await Promise.all(this.endsStored);
  }

  status(): IngestStreamResult[] {
    return [...this.counters.entries()].map(([stream, c]) => ({ stream, frames: c.published, dropped: c.dropped, run: this.o.run }));
  }
}
