import { statSync } from 'node:fs';
import { BadOptionError } from '../errors.js';
import { OverlayVideoWriter, overlayContainer, type X264Preset } from '../sinks/overlay-video-writer.js';
import { MaskWriter } from '../sinks/mask-writer.js';
import { StatsFileWriter } from '../sinks/stats-file-writer.js';
import { fileOutputsSink } from '../sinks/file-outputs-sink.js';
import { cocoSink } from '../sinks/coco-sink.js';
import { sinksInOrder, type Sink } from '../sinks/sink.js';
import type { ProcessInput } from './process-input.js';

/** The outputs `process` was asked for: paths, or templates with `{stream}`. */
export interface OutputRequest {
  readonly out?: string | undefined;
  readonly outSize?: { readonly width: number; readonly height: number } | undefined;
  readonly masks?: string | undefined;
  /** `input` (default): masks at the input's size; `working`: at the model's working size. */
  readonly masksSize?: 'input' | 'working' | undefined;
  readonly stats?: string | undefined;
  readonly coco?: string | undefined;
  /** Burn the legend into the overlay video (default true). */
  readonly legend?: boolean | undefined;
  /** libx264 preset of the overlay video (default veryfast). */
  readonly outPreset?: X264Preset | undefined;
  readonly every: number;
}

/** The files of one input: its own (templated) and the shared ones. */
export interface InputOutputs {
  readonly overlay?: OverlayVideoWriter | undefined;
  readonly stats?: StatsFileWriter | undefined;
  readonly sink: Sink;
  /** Closes this input's own files (not the shared ones); rejects with the first failure. */
  close(): Promise<void>;
  /** Stops this input's encoder at once and closes its stats file (a start that failed). */
  abort(): Promise<void>;
}

const isFolder = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};
const perInput = (template: string | undefined): boolean => template?.includes('{stream}') ?? false;
const fill = (template: string, stream: string): string => template.replaceAll('{stream}', stream);

/**
 * Opens every output before any work (so an unwritable path fails fast), per input when its
 * template names `{stream}`, else one for all inputs (stats rows tell inputs apart by their
 * `stream` column; masks of several inputs in one folder are prefixed with the stream).
 */
export class ProcessOutputs {
  private constructor(
    readonly inputs: readonly InputOutputs[],
    /** Shared files (no `{stream}`): stats, masks, COCO annotations. */
    private readonly shared: { stats?: StatsFileWriter; sink: Sink },
    readonly paths: readonly string[],
  ) {}

  /** Checks the requests against the inputs before anything is opened. */
  static check(req: OutputRequest, inputs: readonly ProcessInput[]): void {
    if (req.out !== undefined) {
      // A folder given for --out is refused by the writer, with what to give instead.
      if (!isFolder(req.out)) overlayContainer(req.out);
      if (inputs.length > 1 && !perInput(req.out))
        throw new BadOptionError(
          '--out',
          `a name with {stream} for ${inputs.length} inputs (one overlay video each), e.g. 'out/{stream}-seg.mp4'`,
          req.out,
        );
    }
  }

  static async open(
    req: OutputRequest,
    inputs: readonly ProcessInput[],
    working: (i: ProcessInput) => { width: number; height: number },
  ): Promise<ProcessOutputs> {
    ProcessOutputs.check(req, inputs);
    const opened: Array<{ close(): Promise<void>; abort(): Promise<void> }> = [];
    try {
      const several = inputs.length > 1;
      const sharedStats =
        req.stats !== undefined && !perInput(req.stats)
          ? await StatsFileWriter.open(req.stats, { boxScale: boxScale(inputs[0], working) })
          : undefined;
      if (sharedStats) opened.push({ close: () => sharedStats.close(), abort: () => sharedStats.close() });
      const byInput: InputOutputs[] = [];
      for (const input of inputs) {
        const outputs = await openInput(req, input, working(input), several, sharedStats);
        opened.push(outputs);
        byInput.push(outputs);
      }
      const coco = req.coco !== undefined ? cocoSink(req.coco, (stream) => inputSizeOf(inputs, stream, working)) : undefined;
      const paths = outputPaths(req, inputs);
      return new ProcessOutputs(
        byInput,
        { ...(sharedStats ? { stats: sharedStats } : {}), sink: sinksInOrder('shared', coco ? [coco] : []) },
        paths,
      );
    } catch (err) {
      await Promise.allSettled(opened.map((o) => o.abort()));
      throw err;
    }
  }

  /** The stats files (shared and per input): their CSV headers are written once the classes are known. */
  get statsWriters(): StatsFileWriter[] {
    const all = [this.shared.stats, ...this.inputs.map((i) => i.stats)].filter((s): s is StatsFileWriter => s !== undefined);
    return [...new Set(all)];
  }

  /** What a frame of input `i` is written to: its files, then the shared ones (COCO). */
  sinkFor(i: number): Sink {
    const own = this.inputs[i] as InputOutputs;
    return sinksInOrder('files', [own.sink, this.shared.sink]);
  }

  /** Finalises the shared files (per-input ones are closed as each input ends). */
  async close(): Promise<void> {
    const results = await Promise.allSettled([this.shared.stats?.close(), this.shared.sink.close()]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }

  async abort(): Promise<void> {
    await Promise.allSettled([...this.inputs.map((i) => i.abort()), this.shared.stats?.close()]);
  }
}

async function openInput(
  req: OutputRequest,
  input: ProcessInput,
  size: { width: number; height: number },
  several: boolean,
  sharedStats: StatsFileWriter | undefined,
): Promise<InputOutputs> {
  let overlay: OverlayVideoWriter | undefined;
  let stats: StatsFileWriter | undefined;
  try {
    overlay = req.out
      ? await OverlayVideoWriter.open({
          path: fill(req.out, input.stream),
          width: size.width,
          height: size.height,
          fps: input.isDir ? 5 : input.fps,
          outWidth: req.outSize?.width ?? input.size.width,
          outHeight: req.outSize?.height ?? input.size.height,
          ...(input.isDir ? {} : { background: { file: input.path, every: req.every } }),
          ...(req.legend === false ? { legend: false } : {}),
          ...(req.outPreset ? { preset: req.outPreset } : {}),
        })
      : undefined;
    // Masks of several inputs in one folder (no {stream}) are told apart by a prefix.
    const prefix = several && !perInput(req.masks) ? `${input.stream}_` : '';
    const masks =
      req.masks !== undefined
        ? await MaskWriter.open(fill(req.masks, input.stream), {
            ...(req.masksSize !== 'working' ? { size: input.size } : {}),
            ...(prefix !== '' ? { prefix } : {}),
          })
        : undefined;
    const ownStats = req.stats !== undefined && perInput(req.stats);
    stats = ownStats
      ? await StatsFileWriter.open(fill(req.stats as string, input.stream), { boxScale: boxScale(input, () => size) })
      : sharedStats;
    const sink = fileOutputsSink({ overlay, masks, stats });
    const own = { overlay, stats: ownStats ? stats : undefined };
    return {
      overlay,
      stats,
      sink,
      close: async () => {
        const results = await Promise.allSettled([own.overlay?.close(), own.stats?.close()]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      },
      abort: async () => {
        await Promise.allSettled([own.overlay?.abort(), own.stats?.close()]);
      },
    };
  } catch (err) {
    await Promise.allSettled([overlay?.abort(), stats !== sharedStats ? stats?.close() : undefined]);
    throw err;
  }
}

function boxScale(
  input: ProcessInput | undefined,
  working: (i: ProcessInput) => { width: number; height: number },
): { x: number; y: number } {
  if (!input) return { x: 1, y: 1 };
  const w = working(input);
  return { x: input.size.width / w.width, y: input.size.height / w.height };
}

function inputSizeOf(
  inputs: readonly ProcessInput[],
  stream: string,
  working: (i: ProcessInput) => { width: number; height: number },
): { width: number; height: number; scale: { x: number; y: number } } {
  const input = inputs.find((i) => i.stream === stream) ?? (inputs[0] as ProcessInput);
  return { ...input.size, scale: boxScale(input, working) };
}

/** The output paths of the summary: templates filled in for every input. */
function outputPaths(req: OutputRequest, inputs: readonly ProcessInput[]): string[] {
  const paths: string[] = [];
  for (const t of [req.out, req.masks, req.stats]) {
    if (t === undefined) continue;
    if (perInput(t)) paths.push(...inputs.map((i) => fill(t, i.stream)));
    else paths.push(t);
  }
  if (req.coco !== undefined) paths.push(req.coco);
  return paths;
}

/** For the summary: drop overlay videos that got no frame (their files were removed). */
export function writtenPaths(outputs: ProcessOutputs, req: OutputRequest, inputs: readonly ProcessInput[]): string[] {
  const empty = new Set(
    outputs.inputs.flatMap((o, i) =>
      req.out && o.overlay && o.overlay.framesWritten === 0 ? [fill(req.out, (inputs[i] as ProcessInput).stream)] : [],
    ),
  );
  return outputs.paths.filter((p) => !empty.has(p));
}
