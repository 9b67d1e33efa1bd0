/**
 * The files one collected stream is written to, in frame order: the stats file, and on request a
 * folder of label PNGs and an overlay video (the worker's label map, stored in the result, over
 * the original video, as `process` writes them). An output that fails (cannot be opened, a full
 * disk) stops taking frames and says why in `errors()`; every frame it misses is counted, so
 * `process --cluster` can exit non-zero with how many results were not written.
 */
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from 'fast-png';
import type { Logger } from 'pino';
import type { ClassInfo, Segmentation } from '../types.js';
import { STATS_CSV_COLUMNS, StatsFileWriter, statsFormatFor } from '../sinks/stats-file-writer.js';
import { OverlayVideoWriter, type OverlayVideoOptions } from '../sinks/overlay-video-writer.js';
import { isNoSpace, OutputFullError, OutputUnwritableError } from '../errors.js';
import type { CollectedStats } from './collected-stats.js';

/** Overlay video options of a stream, or undefined for none. */
export type OverlayFor = (stream: string) => OverlayVideoOptions | undefined;

/** Where a restarted durable collector goes on in a stream file it had been writing. */
export interface Resume {
  /** The first seq the file does not hold. */
  readonly next: number;
  /** The CSV's class columns, kept for the rows appended. */
  readonly header?: string[];
}

export interface StreamOutputsOptions {
  readonly stream: string;
  readonly run: string;
  readonly statsFile?: string;
  readonly masksDir?: string;
  readonly overlay?: OverlayVideoOptions | undefined;
  readonly resume?: Resume;
  /** Record the run beside the stats file (`<file>.run`), so a restarted durable collector can resume it. */
  readonly recordRun?: boolean;
  readonly logger: Logger;
}

export interface StreamOutputs {
  /** Writes one result to every output; false when some output did not take it. */
  write(r: CollectedStats): Promise<boolean>;
  /** Finalises every output (the overlay video is closed by ffmpeg). */
  close(): Promise<void>;
  /** One line per output that failed. */
  errors(): string[];
}

/** The run a stats file was written for: a sidecar `<file>.run`, written by durable collectors. */
function runFile(statsFile: string): string {
  return `${statsFile}.run`;
}

/**
 * For a durable collector: if `file` was being written for `run`, where to go on (its last whole
 * row's seq + 1; a torn last line is cut off). Undefined for a new run or a missing file.
 */
export function readResume(file: string, run: string): Resume | undefined {
  try {
    if (!existsSync(file) || readFileSync(runFile(file), 'utf8').trim() !== run) return undefined;
  } catch {
    return undefined;
  }
  const text = readFileSync(file, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) {
    // A row cut short by the crash: dropped, it is rewritten from its redelivered result.
    const fd = openSync(file, 'r+');
    try {
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
    } finally {
      closeSync(fd);
    }
  }
  const lines = text.slice(0, end).split('\n').filter(Boolean);
  const csv = statsFormatFor(file) === 'csv';
  const rows = csv ? lines.slice(1) : lines;
  const last = rows.at(-1);
  if (last === undefined) return undefined;
  const seq = csv ? Number(last.split(',')[1]) : (JSON.parse(last) as { seq: number }).seq;
  if (!Number.isInteger(seq)) return undefined;
  const header = csv ? (lines[0]?.split(',').slice(STATS_CSV_COLUMNS.length) ?? []) : undefined;
  return { next: seq + 1, ...(header ? { header } : {}) };
}

export async function openStreamOutputs(options: StreamOutputsOptions): Promise<StreamOutputs> {
  const { logger, stream } = options;
  const errors = new Map<string, string>();
  const fail = (what: string, err: unknown): void => {
    if (errors.has(what)) return;
    const message = (err as Error).message;
    errors.set(what, message);
    logger.error({ err, stream, output: what }, 'output failed; its frames are counted as not written');
  };

  let stats: StatsFileWriter | undefined;
  if (options.statsFile !== undefined) {
    const file = options.statsFile;
    try {
      stats = await StatsFileWriter.open(
        file,
        options.resume ? { append: options.resume.header ? { header: options.resume.header } : {} } : {},
      );
      if (options.recordRun && !options.resume) writeFileSync(runFile(file), `${options.run}\n`);
    } catch (err) {
      fail(file, err);
    }
  }
  let masksDir = options.masksDir;
  if (masksDir !== undefined) {
    try {
      await mkdir(masksDir, { recursive: true });
    } catch (err) {
      fail(masksDir, new OutputUnwritableError(masksDir, (err as Error).message, err));
      masksDir = undefined;
    }
  }
  let overlay: OverlayVideoWriter | undefined;
  if (options.overlay) {
    try {
      overlay = await OverlayVideoWriter.open(options.overlay);
    } catch (err) {
      fail(options.overlay.path, err);
    }
  }
  let frames = 0;

  return {
    async write(r) {
      let ok = errors.size === 0;
      const seq = r.stats.seq;
      let maskPath: string | undefined;
      if (masksDir !== undefined && !errors.has(masksDir)) {
        maskPath = join(masksDir, `frame_${String(seq).padStart(6, '0')}.png`);
        try {
          if (!r.mask) throw new Error('the result holds no label map (was it segmented by an older worker?)');
          await writeFile(maskPath, r.mask);
        } catch (err) {
          await unlink(maskPath).catch(() => undefined);
          maskPath = undefined;
          fail(masksDir, isNoSpace(err) ? new OutputFullError(masksDir, frames, err) : err);
          ok = false;
        }
      }
      if (stats && !errors.has(stats.file)) {
        try {
          await stats.write(r.stats);
        } catch (err) {
          if (maskPath) await unlink(maskPath).catch(() => undefined);
          fail(stats.file, err);
          ok = false;
        }
      }
      if (overlay && options.overlay && !errors.has(options.overlay.path)) {
        try {
          if (!r.mask) throw new Error('the result holds no label map (was it segmented by an older worker?)');
          await overlay.write(segmentationOf(r, stream));
        } catch (err) {
          fail(options.overlay.path, err);
          ok = false;
        }
      }
      if (ok) frames++;
      return ok;
    },
    async close() {
      const closing = await Promise.allSettled([stats?.close(), overlay?.close()]);
      closing.forEach((c, i) => {
        if (c.status === 'rejected') fail(i === 0 ? (options.statsFile ?? 'stats') : (options.overlay?.path ?? 'overlay'), c.reason);
      });
    },
    errors: () => [...errors.entries()].map(([what, message]) => (message.includes(what) ? message : `${what}: ${message}`)),
  };
}

/** The worker's label map as a Segmentation, so the overlay writer paints it as `process` does. */
function segmentationOf(r: CollectedStats, stream: string): Segmentation {
  const png = decode(r.mask as Uint8Array);
  const classes: ClassInfo[] = r.stats.classes.map((c) => ({ id: c.id, name: c.name, color: c.color }));
  return {
    frame: {
      streamId: stream,
      seq: r.stats.seq,
      pts: r.stats.pts,
      width: png.width,
      height: png.height,
      rgb: Buffer.alloc(0),
      capturedAt: 0,
    },
    labels: png.data as Uint8Array,
    headVersion: r.stats.headVersion,
    classes,
    ...(r.stats.objects ? { objects: r.stats.objects } : {}),
  };
}
