import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { extname } from 'node:path';
import type { FrameStats } from '../types.js';
import { BadOptionError, OutputUnwritableError } from '../errors.js';

export type StatsFormat = 'csv' | 'jsonl';

/** Picks the format from the file extension: .csv or .jsonl (also .ndjson). */
export function statsFormatFor(path: string): StatsFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new BadOptionError('--stats', 'a file name ending in .csv or .jsonl', path);
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes one row per frame: CSV (`stream,seq,pts,head_version,<class name>...` with the pixel
 * fraction of each class) or JSON lines (the full FrameStats record). Rows are flushed as they
 * come, so an interrupted run leaves a valid file with every row written so far; `close()`
 * ends the file. Honours stream backpressure.
 */
export class StatsFileWriter {
  private readonly out: WriteStream;
  private readonly format: StatsFormat;
  private header: string[] | undefined;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly path: string,
    out: WriteStream,
  ) {
    this.format = statsFormatFor(path);
    this.out = out;
    out.on('error', (err) => {
      this.failure = new OutputUnwritableError(path, err.message, err);
    });
  }

  static async open(path: string): Promise<StatsFileWriter> {
    statsFormatFor(path);
    const out = createWriteStream(path);
    try {
      await once(out, 'open');
    } catch (err) {
      throw new OutputUnwritableError(path, (err as Error).message, err);
    }
    return new StatsFileWriter(path, out);
  }

  async write(s: FrameStats): Promise<void> {
    if (this.failure) throw this.failure;
    let line: string;
    if (this.format === 'jsonl') {
      line = JSON.stringify(s) + '\n';
    } else {
      if (!this.header) {
        this.header = s.classes.map((c) => c.name);
        this.out.write(['stream', 'seq', 'pts', 'head_version', ...this.header].map(csvField).join(',') + '\n');
      }
      const fr = this.header.map((_, i) => (s.classes[i]?.fraction ?? 0).toFixed(6));
      line = [csvField(s.stream), String(s.seq), s.pts.toFixed(6), String(s.headVersion), ...fr].join(',') + '\n';
    }
    if (!this.out.write(line)) await once(this.out, 'drain');
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
