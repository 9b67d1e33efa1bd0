import type { WindowSummary } from '../types.js';

/** How long summaries are kept, ms: an hour, for charts that start with the past. */
export const HISTORY_MS = 3_600_000;

/**
 * The windowed summaries of the last hour, per stream and window, in memory (3600 one-second
 * summaries a stream at most, plus 360 ten-second and 60 one-minute ones): what a viewer that
 * loads late, or reloads, fills its chart with.
 */
export class SummaryHistory {
  private readonly byKey = new Map<string, WindowSummary[]>();

  constructor(private readonly keepMs = HISTORY_MS) {}

  add(s: WindowSummary): void {
    const key = `${s.stream}\n${s.window}`;
    let list = this.byKey.get(key);
    if (!list) this.byKey.set(key, (list = []));
    list.push(s);
    const oldest = Date.parse(s.end) - this.keepMs;
    let drop = 0;
    while (drop < list.length && Date.parse((list[drop] as WindowSummary).end) <= oldest) drop++;
    if (drop > 0) list.splice(0, drop);
  }

  /** A stream's summaries of one window ending after `sinceMs`, oldest first. */
  since(stream: string, window: WindowSummary['window'], sinceMs: number): WindowSummary[] {
    // Summaries loaded from JetStream after a restart may arrive after newer live ones: sort by end.
    return (this.byKey.get(`${stream}\n${window}`) ?? [])
      .filter((s) => Date.parse(s.end) > sinceMs)
      .sort((a, b) => Date.parse(a.end) - Date.parse(b.end));
  }
}
