import { UnknownModelError } from '../errors.js';

/** Which ONNX file of a hub repository: the transformers.js layout publishes these three. */
export const VARIANTS = ['fp32', 'fp16', 'int8'] as const;
export type Variant = (typeof VARIANTS)[number];

/** File of each variant inside the repository. */
export const VARIANT_FILES: Readonly<Record<Variant, string>> = {
  fp32: 'onnx/model.onnx',
  fp16: 'onnx/model_fp16.onnx',
  int8: 'onnx/model_quantized.onnx',
};

/** The JSON files every hub model needs beside its ONNX file (geometry, normalisation). */
export const CONFIG_FILES = ['config.json', 'preprocessor_config.json'] as const;

/** Revision fetched from the hub (a branch, tag or commit). */
export const DEFAULT_REVISION = 'main';

export interface KnownModel {
  readonly name: string;
  readonly repo: string;
  readonly description: string;
  /** Approximate download of the fp32 file, MB (the hub's listing, rounded); fp16 is half, int8 a quarter. */
  readonly fp32MB: number;
}

/**
 * The DINO family as published in the transformers.js layout (README "Models"). Sizes are what the
 * hub lists, rounded, so that `models list` can say what a pull costs before it starts.
 */
export const KNOWN_MODELS: readonly KnownModel[] = [
  { name: 'dino-vits8', repo: 'Xenova/dino-vits8', description: 'DINO ViT-S/8, 224x224: finest grid (28x28), best quality', fp32MB: 87 },
  { name: 'dino-vits16', repo: 'Xenova/dino-vits16', description: 'DINO ViT-S/16, 224x224: 14x14 grid, fastest', fp32MB: 87 },
  { name: 'dino-vitb8', repo: 'Xenova/dino-vitb8', description: 'DINO ViT-B/8, 224x224: 28x28 grid, wider features', fp32MB: 344 },
  { name: 'dino-vitb16', repo: 'Xenova/dino-vitb16', description: 'DINO ViT-B/16, 224x224: 14x14 grid', fp32MB: 344 },
  { name: 'dinov2-small', repo: 'Xenova/dinov2-small', description: 'DINOv2 ViT-S/14, any multiple of 14 px', fp32MB: 88 },
  { name: 'dinov2-base', repo: 'Xenova/dinov2-base', description: 'DINOv2 ViT-B/14, any multiple of 14 px', fp32MB: 347 },
];

/** Recommended per machine: ViT-S/16 keeps up on a few CPU cores; on a GPU the 8 px grid is affordable. */
export const RECOMMENDED: Readonly<Record<'cpu' | 'gpu', string>> = { cpu: 'dino-vits16', gpu: 'dino-vits8' };

const HUB_PREFIX = 'hub:';
const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

export interface ModelRef {
  /** What the user typed (`dino-vits8`, `hub:OWNER/REPO`). */
  readonly name: string;
  readonly repo: string;
  readonly known?: KnownModel;
}

/** Whether a --backbone value names a hub model (rather than `builtin` or a file path). */
export function isModelName(spec: string): boolean {
  return spec.startsWith(HUB_PREFIX) || KNOWN_MODELS.some((m) => m.name === spec);
}

/** A name to its repository; an unknown name is an UnknownModelError listing the known ones. */
export function parseModelName(name: string): ModelRef {
  const known = KNOWN_MODELS.find((m) => m.name === name);
  if (known) return { name, repo: known.repo, known };
  if (name.startsWith(HUB_PREFIX)) {
    const repo = name.slice(HUB_PREFIX.length);
    if (REPO_RE.test(repo) && !repo.includes('..')) return { name, repo };
  }
  throw new UnknownModelError(
    name,
    KNOWN_MODELS.map((m) => m.name),
  );
}

/**
 * The variant used when none is asked for: fp32 on the CPU (exact; ONNX Runtime's CPU kernels for
 * float16 are sparse and int8 changes the features), fp16 on a GPU (half the memory and bandwidth).
 */
export function defaultVariant(onGpu: boolean): Variant {
  return onGpu ? 'fp16' : 'fp32';
}

/** Approximate download size of a variant, bytes. */
export function approxBytes(m: KnownModel, variant: Variant): number {
  const mb = variant === 'fp32' ? m.fp32MB : variant === 'fp16' ? m.fp32MB / 2 : m.fp32MB / 4;
  return Math.round(mb * 1e6);
}
