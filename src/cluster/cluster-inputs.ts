/**
 * What ingest reads, as pipeline source entries (so they are validated by the pipeline schema and
 * built by the same `buildSources` as `serve`): `[name=]path-or-url` arguments, a folder of
 * videos, or the sources of a pipeline file. Also the working size of each, from the backbone's
 * patch size without loading the model.
 */
import { readFileSync, statSync } from 'node:fs';
import { listVideos, streamNameFor } from '../sources/input-files.js';
import { sourceSchema, type SourceConfig } from '../config/pipeline-schema.js';
import { BUILTIN_PATCH_SIZE } from '../backbone/builtin-backbone.js';
import { readModelMetadata } from '../backbone/read-model-metadata.js';
import { probeVideo } from '../internal/probe-video.js';
import { workingSize } from '../internal/working-size.js';
import { BadOptionError, InputNotFoundError, ModelNotOnnxError } from '../errors.js';
import { checkClusterStream } from './cluster-names.js';

export { VIDEO_EXTENSIONS, listVideos } from '../sources/input-files.js';
/** Aspect of live and scene frames when only a width is given (as in `serve`). */
const LIVE_ASPECT = 9 / 16;

export interface BackboneGeometry {
  readonly patchSize: number;
  /** Fixed model input, or 0 when any multiple of the patch size works. */
  readonly inputWidth: number;
  readonly inputHeight: number;
}

/** Patch size and fixed input of a backbone, read from its metadata (no ONNX Runtime session). */
export function backboneGeometry(spec: string): BackboneGeometry {
  if (spec === 'builtin') return { patchSize: BUILTIN_PATCH_SIZE, inputWidth: 0, inputHeight: 0 };
  let meta: Record<string, string>;
  try {
    meta = readModelMetadata(readFileSync(spec));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InputNotFoundError(spec, 'backbone model');
    throw new ModelNotOnnxError(spec, err);
  }
  const num = (k: string): number => Number(meta[k] ?? 0);
  return { patchSize: num('patch_size') || 16, inputWidth: num('input_width'), inputHeight: num('input_height') };
}

function isLive(spec: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(spec) || spec.startsWith('/dev/video') || spec.toLowerCase().endsWith('.sdp');
}

export interface InputFlags {
  readonly every?: number;
  readonly loop?: boolean;
  readonly realtime?: boolean;
}

/**
 * Source entries for `[name=]spec` arguments: a video file, a folder of videos (one stream each),
 * or a live URL. Names default to the file's base name (made a subject token) or `live`, made
 * unique with `-2`, `-3`...; throws BadOptionError / InputNotFoundError with the argument.
 */
export function sourcesFromArgs(args: readonly string[], flags: InputFlags = {}): SourceConfig[] {
  const entries: Array<{ name: string | undefined; spec: string }> = [];
  for (const arg of args) {
    const m = /^([A-Za-z0-9_-]{1,64})=(.+)$/.exec(arg);
    const name = m?.[1];
    const spec = m?.[2] ?? arg;
    if (!isLive(spec)) {
      let st;
      try {
        st = statSync(spec);
      } catch {
        throw new InputNotFoundError(spec, 'input');
      }
      if (st.isDirectory()) {
        if (name !== undefined) throw new BadOptionError('input', 'a name only for a single video or URL, not a folder', arg);
        for (const v of listVideos(spec)) entries.push({ name: undefined, spec: v });
        continue;
      }
    }
    entries.push({ name, spec });
  }
  if (entries.length === 0) throw new BadOptionError('inputs', 'at least one video file, folder of videos or live URL', args.join(' '));
  const used = new Set<string>();
  return entries.map(({ name, spec }) => {
    const live = isLive(spec);
    let n = name ?? (live ? 'live' : streamNameFor(spec));
    if (name === undefined) for (let i = 2; used.has(n); i++) n = `${name ?? (live ? 'live' : streamNameFor(spec))}-${i}`;
    else if (used.has(n)) throw new BadOptionError('stream name', 'names used once', n);
    used.add(n);
    checkClusterStream(n);
    const raw = live
      ? { use: 'live', name: n, with: { url: spec } }
      : {
          use: 'file',
          name: n,
          with: { path: spec, every: flags.every ?? 1, loop: flags.loop ?? false, realtime: flags.realtime ?? false },
        };
    const parsed = sourceSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new BadOptionError(`input ${arg0(spec)}`, issue?.message ?? 'a valid source', issue?.path.join('.') ?? spec);
    }
    return parsed.data;
  });
}

function arg0(s: string): string {
  return JSON.stringify(s);
}

/** Working size of one source: the model's fixed size, else the width (default 448) with the video's aspect. */
export async function sourceSize(
  src: SourceConfig,
  geometry: BackboneGeometry,
  requested: { width?: number | undefined; height?: number | undefined },
): Promise<{ width: number; height: number }> {
  if (geometry.inputWidth > 0 && geometry.inputHeight > 0) return { width: geometry.inputWidth, height: geometry.inputHeight };
  if (src.use === 'file') {
    const v = await probeVideo(src.with.path);
    return workingSize(v, geometry.patchSize, requested);
  }
  const w = requested.width ?? 448;
  return workingSize({ width: w, height: requested.height ?? Math.round(w * LIVE_ASPECT) }, geometry.patchSize, requested);
}
