/**
 * Puts one stream's results back in order and drops duplicates, within bounds: at-least-once
 * delivery redelivers a frame whose ack was lost (a duplicate) and a frame whose worker died (late,
 * after the ack wait). Items are released strictly by `seq` from 0 up; an item whose seq was
 * released already, or is held already, is a duplicate.
 *
 * Bounds: at most `window` items are held; when more arrive, or when the missing seq has been
 * missing for `gapTimeoutMs` while later ones wait, the missing seqs are given up as a gap (counted
 * and reported) and release goes on from the next held item. A gap item that turns up later is
 * dropped like a duplicate. Hand-written: no maintained library does a bounded reorder-and-dedupe buffer.
 */
export interface OrderedWindowOptions {
  /** Most items held while a lower seq is missing (default 4096). */
  readonly window?: number;
  /** How long a missing seq holds back later ones, ms (default 60 000; Infinity: until `window`). */
  readonly gapTimeoutMs?: number;
  readonly now?: () => number;
}

export interface Released<T> {
  readonly items: T[];
  /** Seq ranges given up, [from, to] inclusive. */
  readonly gaps: Array<readonly [number, number]>;
}

export const DEFAULT_ORDER_WINDOW = 4096;
export const DEFAULT_GAP_TIMEOUT_MS = 60_000;

export class OrderedWindow<T> {
  private readonly held = new Map<number, T>();
  private nextSeq = 0;
  /** When the current head of line (nextSeq) was first seen missing behind held items. */
  private missingSince: number | undefined;
  private readonly window: number;
  private readonly gapTimeoutMs: number;
  private readonly now: () => number;
  /** Items dropped: a copy of a seq already released, given up or held. */
  duplicates = 0;
  /** Seqs given up as gaps. */
  lost = 0;

  constructor(options: OrderedWindowOptions = {}) {
    this.window = options.window ?? DEFAULT_ORDER_WINDOW;
    this.gapTimeoutMs = options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.window) || this.window < 1) throw new RangeError(`window must be an integer >= 1, got ${this.window}`);
  }

  /** The next seq to release: every seq below it was released or given up. */
  get next(): number {
    return this.nextSeq;
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Adds one item; returns what is now in order. */
  push(seq: number, item: T): Released<T> {
    if (seq < this.nextSeq) {
      this.duplicates++;
      return { items: [], gaps: [] };
    }
    if (this.held.has(seq)) {
      this.duplicates++;
      return { items: [], gaps: [] };
    }
    this.held.set(seq, item);
    const out: Released<T> = { items: [], gaps: [] };
    this.release(out);
    while (this.held.size > this.window) this.skipGap(out);
    if (this.held.size > 0 && this.missingSince === undefined) this.missingSince = this.now();
    return out;
  }

  /** Gives up a missing seq that has held later items back for longer than the gap timeout. */
  expire(): Released<T> {
    const out: Released<T> = { items: [], gaps: [] };
    if (this.held.size > 0 && this.missingSince !== undefined && this.now() - this.missingSince >= this.gapTimeoutMs) this.skipGap(out);
    return out;
  }

  /** Releases everything held, in order, giving up what is missing between (end of stream). */
  drain(): Released<T> {
    const out: Released<T> = { items: [], gaps: [] };
    while (this.held.size > 0) this.skipGap(out);
    return out;
  }

  private release(out: Released<T>): void {
    let item = this.held.get(this.nextSeq);
    if (item === undefined) return;
    do {
      this.held.delete(this.nextSeq);
      out.items.push(item);
      this.nextSeq++;
      item = this.held.get(this.nextSeq);
    } while (item !== undefined);
    this.missingSince = this.held.size > 0 ? this.now() : undefined;
  }

  private skipGap(out: Released<T>): void {
    let lowest = Infinity;
    for (const s of this.held.keys()) if (s < lowest) lowest = s;
    if (lowest === Infinity) return;
    out.gaps.push([this.nextSeq, lowest - 1]);
    this.lost += lowest - this.nextSeq;
    this.nextSeq = lowest;
    this.release(out);
  }

  /** True while `seq` is held, waiting for an earlier one. */
  holds(seq: number): boolean {
    return this.held.has(seq);
  }

  /** Starts (before anything was pushed) at `next`: every seq below it was written by an earlier collector. */
  skipTo(next: number): void {
    if (this.held.size > 0 || this.nextSeq > 0) throw new Error('skipTo only on a fresh window');
    this.nextSeq = next;
  }

  /** True when `seq` was released or given up (a later copy of it is a duplicate or late). */
  passed(seq: number): boolean {
    return seq < this.nextSeq;
  }
}
