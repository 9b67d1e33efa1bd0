import type { Observable } from 'rxjs';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import type { FlowGate } from '../internal/flow-gate.js';
import { probeVideo } from '../internal/probe-video.js';
import { assertVideoFile, fileSource } from '../sources/file-source.js';
import { imageFolderSource, imageSize, listImages } from '../sources/image-folder-source.js';
import type { InputFile } from '../sources/input-files.js';

/** One input of a run, probed: its size, rate, frame count, start time and how to read it. */
export interface ProcessInput {
  readonly stream: string;
  readonly path: string;
  readonly isDir: boolean;
  readonly size: { width: number; height: number };
  /** Frames per second after `every` (image folders: 1). */
  readonly fps: number;
  readonly totalFrames: number | undefined;
  /** Seconds, when known (videos). */
  readonly duration: number | undefined;
  /** The recording's `creation_time`, ms since the epoch, when it has one. */
  readonly creationTime: number | undefined;
  /** Frames at the working size; `startTime` dates them (ms since the epoch; videos only). */
  source(size: { width: number; height: number }, gate: FlowGate, startTime?: number): Observable<Frame>;
}

/** Probes an input before any work, so a missing or unreadable one fails the run at once, by name. */
export async function openProcessInput(input: InputFile, every: number, logger: Logger): Promise<ProcessInput> {
  const { path, stream } = input;
  if (input.kind === 'images') {
    const files = listImages(path);
    return {
      stream,
      path,
      isDir: true,
      size: await imageSize(files[0] as string),
      fps: 1,
      totalFrames: Math.ceil(files.length / every),
      duration: undefined,
      creationTime: undefined,
      source: (size, gate) => imageFolderSource({ dir: path, streamId: stream, width: size.width, height: size.height, every, gate }),
    };
  }
  assertVideoFile(path);
  const v = await probeVideo(path);
  logger.info({ input: path, codec: v.codec, pixFmt: v.pixFmt, width: v.width, height: v.height, fps: v.fps, frames: v.frames }, 'input');
  return {
    stream,
    path,
    isDir: false,
    size: { width: v.width, height: v.height },
    fps: v.fps / every,
    totalFrames: v.frames !== undefined ? Math.ceil(v.frames / every) : undefined,
    duration: v.duration,
    creationTime: v.creationTime,
    source: (size, gate, startTime) =>
      fileSource({
        path,
        streamId: stream,
        width: size.width,
        height: size.height,
        every,
        gate,
        fps: v.fps,
        ...(startTime !== undefined ? { startTime } : {}),
      }),
  };
}
