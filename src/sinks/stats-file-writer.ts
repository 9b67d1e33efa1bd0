import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { extname } from 'node:path';
import type { ClassInfo, FrameStats } from '../types.js';
import { BadOptionError, isNoSpace, OutputFullError, OutputUnwritableError } from '../errors.js';

export type StatsFormat = 'csv' | 'jsonl';

/** Picks the format from the file extension: .csv or .jsonl (also .ndjson). */
export function statsFormatFor(path: string): StatsFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new BadOptionError('--stats', 'a file name ending in .csv or .jsonl', path);
}

/** The CSV's columns before the class columns (README "Statistics files"). */
export const STATS_CSV_COLUMNS = ['stream', 'seq', 'pts', 'time', 'file', 'head_version'] as const;

/** Scale from working to input pixels, for object boxes in files. */
export interface BoxScale {
  readonly x: number;
  readonly y: number;
}

/**
 * A statistics record as the files hold it: snake_case keys (the same names as the CSV's
 * columns), object boxes as COCO `[x, y, width, height]` in input pixels.
 */
export function statsFileRecord(s: FrameStats, scale: BoxScale = { x: 1, y: 1 }): Record<string, unknown> {
  return {
    stream: s.stream,
    seq: s.seq,
    pts: s.pts,
    ...(s.time !== undefined ? { time: s.time } : {}),
    ...(s.file !== undefined ? { file: s.file } : {}),
    captured_at: s.capturedAt,
    head_version: s.headVersion,
    classes: s.classes,
    ...(s.objects
      ? {
          objects: s.objects.map((o) => {
            const [x0, y0, x1, y1] = o.box;
            const r = (v: number): number => Math.round(v * 100) / 100;
            return { bbox: [r(x0 * scale.x), r(y0 * scale.y), r((x1 - x0) * scale.x), r((y1 - y0) * scale.y)], score: o.score };
          }),
        }
      : {}),
  };
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes one row per frame: CSV (`stream,seq,pts,time,file,head_version,<class name>...` with the
 * pixel fraction of each class) or JSON lines (`statsFileRecord`). Rows are flushed as they
 * come, so an interrupted run leaves a valid file with every row written so far; `close()`
 * ends the file. Honours stream backpressure. A CSV's header is written by `start()` when the
 * classes are known before the first row (process), else with the first row; a file that
 * already holds rows is appended to (`append`), header kept. A full disk is `OutputFullError`.
 */
export class StatsFileWriter {
  private readonly out: WriteStream;
  private readonly format: StatsFormat;
  private header: string[] | undefined;
  private failure: Error | undefined;
  private closed = false;
  private rows = 0;

  private constructor(
    private readonly path: string,
    out: WriteStream,
    header?: string[],
    private readonly boxScale?: BoxScale,
  ) {
    this.format = statsFormatFor(path);
    this.out = out;
    this.header = header;
    out.on('error', (err) => {
      this.failure ??= this.toError(err);
    });
  }

  /** `append`: keep what the file holds (its CSV header names the columns) and add rows after it. */
  static async open(path: string, options: { append?: { header?: string[] }; boxScale?: BoxScale } = {}): Promise<StatsFileWriter> {
    statsFormatFor(path);
    const out = createWriteStream(path, { flags: options.append ? 'a' : 'w' });
    try {
      await once(out, 'open');
    } catch (err) {
      throw new OutputUnwritableError(path, (err as Error).message, err);
    }
    return new StatsFileWriter(path, out, options.append?.header, options.boxScale);
  }

  /** Writes the CSV header now (the file is never without it once rows may follow). */
  start(classes: readonly ClassInfo[]): void {
    if (this.format !== 'csv' || this.header) return;
    this.writeHeader(classes.map((c) => c.name));
  }

  private writeHeader(names: string[]): void {
    this.header = names;
    this.out.write([...STATS_CSV_COLUMNS, ...names].map(csvField).join(',') + '\n');
  }

  /** Rows written (each one reached the file). */
  get written(): number {
    return this.rows;
  }

  async write(s: FrameStats): Promise<void> {
    if (this.failure) throw this.failure;
    let line: string;
    if (this.format === 'jsonl') {
      line = JSON.stringify(statsFileRecord(s, this.boxScale)) + '\n';
    } else {
      if (!this.header) this.writeHeader(s.classes.map((c) => c.name));
      const header = this.header as string[];
      const fr = header.map((_, i) => (s.classes[i]?.fraction ?? 0).toFixed(6));
      line =
        [csvField(s.stream), String(s.seq), s.pts.toFixed(6), s.time ?? '', csvField(s.file ?? ''), String(s.headVersion), ...fr].join(
          ',',
        ) + '\n';
    }
    // Each row is awaited until it reached the file, so a failure (a full disk) is this row's,
    // and the caller can keep its other outputs to the frames this file holds.
    await new Promise<void>((resolve) =>
      this.out.write(line, (err) => {
        if (err && !this.failure) this.failure = this.toError(err);
        resolve();
      }),
    );
    if (this.failure) throw this.failure;
    this.rows++;
  }

  private toError(err: Error): Error {
    return isNoSpace(err) ? new OutputFullError(this.path, this.rows, err) : new OutputUnwritableError(this.path, err.message, err);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.out.end(resolve));
    if (this.failure) throw this.failure;
  }

  get file(): string {
    return this.path;
  }
}
