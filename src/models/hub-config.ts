import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** What a hub-layout model's JSON files say about its geometry and input normalisation. */
export interface HubConfig {
  /** The folder holding config.json (the repository root in the cache). */
  readonly dir: string;
  readonly modelType: string;
  readonly patchSize: number;
  readonly hiddenSize: number;
  /** Side of the square image the position embeddings were trained for, px. */
  readonly imageSize: number;
  /** Tokens between CLS and the patches (DINOv2 with registers). */
  readonly registers: number;
  /**
   * Whether the graph interpolates its position embeddings to the input's grid (DINOv2 does, in the
   * model itself); otherwise it adds a fixed table and takes only imageSize x imageSize.
   */
  readonly anySize: boolean;
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
  /** Multiplies the 0..255 pixel before normalising (1/255 for every DINO preprocessor). */
  readonly rescale: number;
}

/** Model types whose graph resizes the position embeddings to any grid (HF `Dinov2Embeddings`). */
const INTERPOLATING_TYPES = ['dinov2', 'dinov2_with_registers'];
const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/**
 * The folder holding config.json for an ONNX file of the hub layout: the file's own folder or the
 * one above (`onnx/model.onnx`). Undefined when there is none.
 */
export function hubConfigDir(modelPath: string): string | undefined {
  const here = dirname(modelPath);
  for (const dir of basename(here) === 'onnx' ? [dirname(here), here] : [here, dirname(here)]) {
    if (existsSync(join(dir, 'config.json'))) return dir;
  }
  return undefined;
}

/**
 * Reads config.json (patch_size, hidden_size, image_size, num_register_tokens, model_type) and
 * preprocessor_config.json (image_mean, image_std, rescale_factor; ImageNet when absent). Throws a
 * plain Error naming the file and the field; the caller wraps it in its contract error.
 */
export function readHubConfig(dir: string): HubConfig {
  const cfg = readJson(join(dir, 'config.json'));
  const pre = existsSync(join(dir, 'preprocessor_config.json')) ? readJson(join(dir, 'preprocessor_config.json')) : {};
  const int = (key: string, fallback?: number): number => {
    const v = cfg[key] ?? fallback;
    const n = Array.isArray(v) ? Number(v[0]) : Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`config.json "${key}" is ${JSON.stringify(v)}, expected a non-negative integer`);
    return n;
  };
  const modelType = String(cfg['model_type'] ?? '');
  const triple = (key: string, fallback: readonly [number, number, number]): [number, number, number] => {
    const v = pre[key];
    if (v === undefined) return [...fallback];
    const arr = Array.isArray(v) ? v.map(Number) : [Number(v), Number(v), Number(v)];
    if (arr.length !== 3 || arr.some((x) => !Number.isFinite(x))) {
      throw new Error(`preprocessor_config.json "${key}" is ${JSON.stringify(v)}, expected 3 numbers (R, G, B)`);
    }
    return arr as [number, number, number];
  };
  const normalise = pre['do_normalize'] !== false;
  const std = normalise ? triple('image_std', IMAGENET_STD) : ([1, 1, 1] as [number, number, number]);
  if (std.some((s) => s <= 0)) throw new Error(`preprocessor_config.json "image_std" is ${JSON.stringify(std)}, expected positive numbers`);
  const rescale = pre['do_rescale'] === false ? 1 : Number(pre['rescale_factor'] ?? 1 / 255);
  return {
    dir,
    modelType,
    patchSize: int('patch_size'),
    hiddenSize: int('hidden_size'),
    imageSize: int('image_size', 224),
    registers: int('num_register_tokens', 0),
    anySize: INTERPOLATING_TYPES.includes(modelType),
    mean: normalise ? triple('image_mean', IMAGENET_MEAN) : [0, 0, 0],
    std,
    rescale,
  };
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${path} cannot be read`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path} is not a JSON object (${(err as Error).message})`);
  }
}
