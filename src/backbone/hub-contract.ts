import * as ort from 'onnxruntime-node';
import { basename, dirname } from 'node:path';
import { ModelContractError } from '../errors.js';
import { hubConfigDir, readHubConfig, type HubConfig } from '../models/hub-config.js';
import { fromFloat16Bits, toFloat16Bits } from '../internal/float16.js';

/** Input and output of the hub (transformers.js) layout. */
export const HUB_INPUT = 'pixel_values';
export const HUB_OUTPUT = 'last_hidden_state';

/** How a hub model is fed and how its token sequence splits (see checkHubContract). */
export interface HubIo {
  readonly config: HubConfig;
  /** Tokens before the patches: CLS, then any registers. */
  readonly skip: number;
  readonly inputType: 'float32' | 'float16';
}

/** Geometry of a hub model as BackboneInfo reports it. */
export interface HubGeometry {
  readonly name: string;
  readonly patchSize: number;
  readonly dim: number;
  readonly inputHeight: number;
  readonly inputWidth: number;
}

/**
 * Whether a session is in the hub layout (rather than the backbone contract of DESIGN.md): both
 * names must be there, so any other model gets the contract check's message about `image`.
 */
export function isHubSession(session: ort.InferenceSession): boolean {
  return session.inputNames.includes(HUB_INPUT) && session.outputNames.includes(HUB_OUTPUT);
}

/**
 * The second backbone contract (DESIGN.md "Hub models"): `pixel_values` [B,3,H,W] ->
 * `last_hidden_state` [B,1+R+N,C], geometry from config.json, mean/std from
 * preprocessor_config.json. A model whose position embeddings are a fixed table takes only its
 * image_size; DINOv2 resizes them in the graph and takes any multiple of the patch. One run on a
 * blank image checks the token count; a mismatch is a ModelContractError naming both.
 */
export async function checkHubContract(spec: string, session: ort.InferenceSession): Promise<{ geometry: HubGeometry; io: HubIo }> {
  const fail = (problem: string): never => {
    throw new ModelContractError(spec, problem);
  };
  const dir = hubConfigDir(spec);
  if (dir === undefined) {
    fail(
      `it is in the hub layout ("${HUB_INPUT}" -> "${HUB_OUTPUT}") but no config.json is beside it or in the folder above; ` +
        'keep the repository layout (config.json, preprocessor_config.json, onnx/model*.onnx) or use stegostream models pull',
    );
  }
  let config: HubConfig;
  try {
    config = readHubConfig(dir as string);
  } catch (err) {
    return fail((err as Error).message);
  }
  const p = config.patchSize;
  if (p < 1 || config.hiddenSize < 1) fail(`config.json gives patch_size ${p} and hidden_size ${config.hiddenSize}: both must be positive`);
  if (config.imageSize % p !== 0) fail(`config.json image_size ${config.imageSize} is not a multiple of patch_size ${p}`);
  const meta = session.inputMetadata.find((m) => m.name === HUB_INPUT);
  const inputType = meta?.isTensor && meta.type === 'float16' ? 'float16' : 'float32';
  if (meta?.isTensor && meta.type !== 'float32' && meta.type !== 'float16')
    fail(`input "${HUB_INPUT}" is ${meta.type}, expected float32 or float16`);
  const io: HubIo = { config, skip: 1 + config.registers, inputType };
  // Fixed tables: the native size. Interpolating models: a small non-square grid proves they resize.
  const [h, w] = config.anySize ? [2 * p, 3 * p] : [config.imageSize, config.imageSize];
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    out = await session.run({ [HUB_INPUT]: hubInput(io, new Float32Array(3 * h * w), [1, 3, h, w]) });
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    return fail(
      `running it on one ${w}x${h} image failed (${msg})` +
        (config.anySize ? `; config.json says model_type "${config.modelType}", which resizes its position embeddings` : ''),
    );
  }
  const t = out[HUB_OUTPUT] as ort.Tensor;
  const n = (h / p) * (w / p);
  const want = [1, io.skip + n, config.hiddenSize];
  if (t.dims.join(',') !== want.join(',')) {
    fail(
      `on one ${w}x${h} image "${HUB_OUTPUT}" is [${t.dims.join(',')}], expected [${want.join(',')}] ` +
        `(1 CLS + ${config.registers} register tokens + ${h / p}x${w / p} patches of ${p} px; hidden_size ${config.hiddenSize} from config.json)`,
    );
  }
  const size = config.anySize ? 0 : config.imageSize;
  const name = hubModelName(spec, config.dir);
  return { geometry: { name, patchSize: p, dim: config.hiddenSize, inputHeight: size, inputWidth: size }, io };
}

/** `Xenova/dino-vits8 (fp16)`: the repository the cache folder mirrors, and the variant of the file. */
function hubModelName(spec: string, dir: string): string {
  const file = basename(spec);
  const variant = file === 'model.onnx' ? 'fp32' : file === 'model_fp16.onnx' ? 'fp16' : file === 'model_quantized.onnx' ? 'int8' : file;
  return `${basename(dirname(dir))}/${basename(dir)} (${variant})`;
}

/** The input tensor in the type the model takes. */
export function hubInput(io: HubIo, data: Float32Array, dims: readonly number[]): ort.Tensor {
  return io.inputType === 'float16' ? new ort.Tensor('float16', toFloat16Bits(data), dims) : new ort.Tensor('float32', data, dims);
}

/** `last_hidden_state` as float32 [B,T,C]. */
export function hubTokens(out: ort.InferenceSession.OnnxValueMapType): { data: Float32Array; tokens: number } {
  const t = out[HUB_OUTPUT] as ort.Tensor;
  const data = t.type === 'float16' ? fromFloat16Bits(t.data as Uint16Array) : (t.data as Float32Array);
  return { data, tokens: t.dims[1] as number };
}
