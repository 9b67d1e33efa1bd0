import { unlink } from 'node:fs/promises';
import type { RenderedFrame } from '../types.js';
import type { Sink } from './sink.js';
import type { OverlayVideoWriter } from './overlay-video-writer.js';
import type { MaskWriter } from './mask-writer.js';
import type { StatsFileWriter } from './stats-file-writer.js';

export interface FileOutputs {
  readonly overlay?: OverlayVideoWriter | undefined;
  readonly masks?: MaskWriter | undefined;
  readonly stats?: StatsFileWriter | undefined;
}

/**
 * The files of `process` as one sink: each frame's mask, stats row and overlay frame, one output
 * after the other, so a failing one (a full disk) leaves the others at the same frames: a mask
 * whose stats row failed is taken back; the overlay goes last. `write` rejects with the failing
 * output's error. `close` finalises every output and rejects with the first failure.
 */
export function fileOutputsSink(outputs: FileOutputs): Sink {
  const { overlay, masks, stats } = outputs;
  let closing: Promise<void> | undefined;
  return {
    name: 'files',
    async write(r: RenderedFrame): Promise<void> {
      overlay?.assertRunning();
      const mask = await masks?.write(r.seg, r.png);
      try {
        await stats?.write(r.stats);
      } catch (err) {
        if (mask) await unlink(mask).catch(() => undefined);
        throw err;
      }
      await overlay?.write(r.seg);
    },
    close(): Promise<void> {
      closing ??= Promise.allSettled([overlay?.close(), stats?.close()]).then((results) => {
        for (const c of results) if (c.status === 'rejected') throw c.reason;
      });
      return closing;
    },
  };
}
