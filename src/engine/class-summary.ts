import type { ClassInfo } from '../types.js';

/** Share of each class over a whole run, accumulated from per-frame pixel counts. */
export class ClassSummary {
  private readonly pixels = new Map<number, number>();
  private total = 0;
  frames = 0;

  add(labels: Uint8Array): void {
    const counts = new Float64Array(256);
    for (let i = 0; i < labels.length; i++) counts[labels[i] as number] = (counts[labels[i] as number] as number) + 1;
    counts.forEach((c, id) => {
      if (c > 0) this.pixels.set(id, (this.pixels.get(id) ?? 0) + c);
    });
    this.total += labels.length;
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
