import { BadOptionError, ModelOfflineError } from '../errors.js';
import { cacheRoot, isCached, manualCopyHint, modelDir, variantPath } from './model-cache.js';
import { defaultVariant, isModelName, parseModelName, type Variant } from './model-catalog.js';
import { readHubConfig } from './hub-config.js';
import { formatBytes, offlineMode, pullModel } from './pull-model.js';
import { approxBytes } from './model-catalog.js';

export interface ResolveOptions {
  readonly variant?: Variant;
  /** Whether the session will run on a GPU provider (picks the default variant). */
  readonly onGpu: boolean;
  readonly width?: number;
  readonly height?: number;
  readonly progress?: boolean;
  readonly timeoutMs?: number;
}

/**
 * `--backbone NAME`: the cached ONNX file of a hub model, pulled first (with the progress bar)
 * when not cached, unless offline. Other values (`builtin`, a path) pass through; `--variant`
 * with them is a BadOptionError. A requested working size the model's position embeddings cannot
 * take is refused here, naming the size it can.
 */
export async function resolveBackbone(spec: string, opts: ResolveOptions): Promise<string> {
  if (!isModelName(spec)) {
    if (opts.variant !== undefined) throw new BadOptionError('--variant', 'a hub model name in --backbone (e.g. dino-vits8)', spec);
    return spec;
  }
  const ref = parseModelName(spec);
  const variant = opts.variant ?? defaultVariant(opts.onGpu);
  const root = cacheRoot();
  if (!isCached(ref, variant, root)) {
    if (offlineMode()) {
      throw new ModelOfflineError(spec, 'offline mode is on (STEGOSTREAM_OFFLINE or HF_HUB_OFFLINE)', manualCopyHint(ref, variant, root));
    }
    const size = ref.known ? `, about ${formatBytes(approxBytes(ref.known, variant))}` : '';
    if (opts.progress !== false)
      process.stderr.write(`stegostream: ${spec} (${variant}${size}) is not cached: pulling it into ${modelDir(ref, root)}\n`);
    await pullModel(ref, {
      variant,
      ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
  }
  checkWorkingSize(spec, modelDir(ref, root), opts);
  return variantPath(ref, variant, root);
}

/** A model with a fixed position-embedding table takes one size: refuse another --width/--height. */
function checkWorkingSize(spec: string, dir: string, opts: ResolveOptions): void {
  if (opts.width === undefined && opts.height === undefined) return;
  let cfg;
  try {
    cfg = readHubConfig(dir);
  } catch {
    return; // the backbone loader reports a broken config.json with the contract error
  }
  const p = cfg.patchSize;
  if (cfg.anySize) {
    for (const [flag, v] of [
      ['--width', opts.width],
      ['--height', opts.height],
    ] as const) {
      if (v !== undefined && v % p !== 0) throw new BadOptionError(flag, `a multiple of ${spec}'s patch size ${p}`, v);
    }
    return;
  }
  const s = cfg.imageSize;
  if ((opts.width ?? s) !== s || (opts.height ?? s) !== s) {
    const asked = `${opts.width ?? s}x${opts.height ?? s}`;
    throw new BadOptionError(
      opts.width !== undefined && opts.width !== s ? '--width' : '--height',
      `the size ${spec} can take: ${s}x${s} only (its position embeddings are a fixed ${s / p}x${s / p} grid of ${p} px patches; drop --width/--height, or use a DINOv2 model such as dinov2-small for other sizes)`,
      asked,
    );
  }
}
