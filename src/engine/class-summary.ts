import type { ClassInfo, FrameStats } from '../types.js';

/** Share of each class over a whole run, accumulated from per-frame pixel counts. */
export class ClassSummary {
  private readonly pixels = new Map<number, number>();
  private total = 0;
  frames = 0;

  /** Adds one frame from its statistics record (the pixels are counted once, for the record). */
  add(stats: FrameStats): void {
    for (const c of stats.classes) {
      if (c.pixels > 0) this.pixels.set(c.id, (this.pixels.get(c.id) ?? 0) + c.pixels);
      this.total += c.pixels;
    }
    this.frames++;
  }

  rows(classes: readonly ClassInfo[]): { id: number; name: string; share: number }[] {
    return classes.map((c) => ({ id: c.id, name: c.name, share: this.total > 0 ? (this.pixels.get(c.id) ?? 0) / this.total : 0 }));
  }

  /** A plain-text table for the terminal. */
  table(classes: readonly ClassInfo[]): string {
    const rows = this.rows(classes);
    const w = Math.max(5, ...rows.map((r) => r.name.length));
    const lines = [
      `${'id'.padStart(3)}  ${'class'.padEnd(w)}  share`,
      ...rows.map((r) => `${String(r.id).padStart(3)}  ${r.name.padEnd(w)}  ${(r.share * 100).toFixed(1).padStart(5)}%`),
    ];
    return lines.join('\n');
  }
}
