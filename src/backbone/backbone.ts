import * as ort from 'onnxruntime-node';
import { readFile, stat } from 'node:fs/promises';
import type { Embedding, Frame } from '../types.js';
import { DeviceError, InputNotFoundError, ModelContractError, ModelNotOnnxError } from '../errors.js';
import { buildBuiltinBackbone, BUILTIN_NAME } from './builtin-backbone.js';
import { readModelMetadata } from './read-model-metadata.js';
import { checkHubContract, HUB_INPUT, hubInput, hubTokens, isHubSession, type HubIo } from './hub-contract.js';
import { checkCachedDigest, cachedModelPath } from '../models/cached-model.js';
import { isModelName } from '../models/model-catalog.js';
import {
  availableProviders,
  CUDA_INSTALL_COMMAND,
  GPU_SETUP,
  providerCandidates,
  providerLibraryPresent,
  providerMissingReason,
  runsOnGpu,
  type Device,
} from './execution-device.js';

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface BackboneInfo {
  /** `builtin` or the model file path. */
  readonly source: string;
  readonly name: string;
  readonly patchSize: number;
  readonly dim: number;
  /** Fixed input size of the model, or 0 when any multiple of the patch size works. */
  readonly inputHeight: number;
  readonly inputWidth: number;
  readonly hasKeys: boolean;
  /** The execution provider that runs it, and why that one. */
  readonly provider: string;
  readonly providerReason: string;
}

export interface BackboneOptions {
  readonly device?: Device;
  /** ONNX Runtime intra-op threads; default: ORT's choice (all cores). */
  readonly threads?: number;
}

/**
 * The frozen feature extractor: the built-in filter-bank graph or any ONNX file keeping the
 * backbone contract (DESIGN.md). `load()` checks the contract and refuses a model that breaks it
 * with an error naming what is missing. One instance serves every stream; `embed()` runs one batch.
 */
export class Backbone {
  private closed = false;
  /** Input buffer kept between batches of one size (no 0.6 MB-per-frame garbage each call); null while a run uses it. */
  private spareInput: Float32Array | null = null;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly info: BackboneInfo,
    /** Set for a model in the hub layout (pixel_values -> last_hidden_state). */
    private readonly hub?: HubIo,
  ) {}

  static async load(name: string, options: BackboneOptions = {}): Promise<Backbone> {
    // A model name (dino-vits8, hub:OWNER/REPO) loads from the cache; the CLI pulls it first.
    const spec = isModelName(name) ? cachedModelPath(name, runsOnGpu(options.device ?? 'auto')) : name;
    let bytes: Uint8Array;
    if (spec === 'builtin') {
      bytes = buildBuiltinBackbone();
    } else {
      try {
        if (!(await stat(spec)).isFile()) throw new Error('not a file');
        bytes = await readFile(spec);
      } catch {
        throw new InputNotFoundError(spec, 'backbone model');
      }
    }
    if (spec !== 'builtin') checkCachedDigest(spec, bytes);
    let meta: Record<string, string>;
    try {
      if (bytes.length === 0) throw new Error('the file is empty');
      meta = readModelMetadata(bytes);
    } catch (err) {
      throw new ModelNotOnnxError(spec, err);
    }
    const { session, provider, reason } = await createSession(spec, bytes, options);
    try {
      if (isHubSession(session)) {
        const { geometry, io } = await checkHubContract(spec, session);
        return new Backbone(session, { source: spec, ...geometry, hasKeys: false, provider, providerReason: reason }, io);
      }
      return new Backbone(session, await checkContract(spec, session, meta, provider, reason));
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /** Runs one batch of frames (all of one size) and splits the outputs per frame. */
  async embed(frames: readonly Frame[]): Promise<Embedding[]> {
    const first = frames[0];
    if (!first) return [];
    const { width, height } = first;
    const { patchSize, dim } = this.info;
    const gridH = height / patchSize;
    const gridW = width / patchSize;
    const plane = width * height;
    const length = frames.length * 3 * plane;
    const spare = this.spareInput;
    this.spareInput = null;
    const input = spare?.length === length ? spare : new Float32Array(length);
    const hub = this.hub;
    const norm = hub ? hubNormalisation(hub) : IMAGENET;
    frames.forEach((f, b) => normaliseInto(f.rgb, input, b * 3 * plane, plane, norm));
    const dims = [frames.length, 3, height, width];
    const feeds = hub ? { [HUB_INPUT]: hubInput(hub, input, dims) } : { image: new ort.Tensor('float32', input, dims) };
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(feeds);
    } finally {
      this.spareInput = input;
    }
    if (hub) return splitHubTokens(frames, out, hub, gridH, gridW, dim);
    const tokens = out['patch_tokens']?.data as Float32Array;
    const cls = out['cls_token']?.data as Float32Array;
    const keys = out['keys']?.data as Float32Array | undefined;
    const n = gridH * gridW;
    return frames.map((frame, b) => {
      const e: Embedding = {
        frame,
        gridH,
        gridW,
        dim,
        patchTokens: tokens.subarray(b * n * dim, (b + 1) * n * dim),
        clsToken: cls.subarray(b * dim, (b + 1) * dim),
        ...(keys ? { keys: keys.subarray(b * n * dim, (b + 1) * n * dim) } : {}),
      };
      return e;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}

/** Per-channel input normalisation: x * rescale, minus mean, over std. */
interface Normalisation {
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly rescale: number;
}

const IMAGENET: Normalisation = { mean: IMAGENET_MEAN, std: IMAGENET_STD, rescale: 1 / 255 };

function hubNormalisation(hub: HubIo): Normalisation {
  return hub.config;
}

/**
 * Splits `last_hidden_state` [B, skip+N, C] per frame: CLS is token 0, registers follow it, the
 * patches are the last N (row-major grid). No keys: LOST correlates the patch tokens instead.
 */
function splitHubTokens(
  frames: readonly Frame[],
  out: ort.InferenceSession.OnnxValueMapType,
  hub: HubIo,
  gridH: number,
  gridW: number,
  dim: number,
): Embedding[] {
  const { data, tokens } = hubTokens(out);
  const n = gridH * gridW;
  return frames.map((frame, b) => {
    const base = b * tokens * dim;
    return {
      frame,
      gridH,
      gridW,
      dim,
      patchTokens: data.subarray(base + hub.skip * dim, base + (hub.skip + n) * dim),
      clsToken: data.subarray(base, base + dim),
    };
  });
}

/** HWC uint8 RGB to CHW float32, normalised, in one pass. */
function normaliseInto(rgb: Buffer, out: Float32Array, offset: number, plane: number, norm: Normalisation): void {
  const [std0, std1, std2] = norm.std as [number, number, number];
  const [mean0, mean1, mean2] = norm.mean as [number, number, number];
  const s0 = norm.rescale / std0;
  const s1 = norm.rescale / std1;
  const s2 = norm.rescale / std2;
  const m0 = mean0 / std0;
  const m1 = mean1 / std1;
  const m2 = mean2 / std2;
  for (let i = 0, j = 0; i < plane; i++, j += 3) {
    out[offset + i] = (rgb[j] as number) * s0 - m0;
    out[offset + plane + i] = (rgb[j + 1] as number) * s1 - m1;
    out[offset + 2 * plane + i] = (rgb[j + 2] as number) * s2 - m2;
  }
}

const SESSION_DEFAULTS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  // ffmpeg and the learner share the cores: idle ORT threads must sleep, not spin.
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

/** ORT's words for bytes that are not a model (checked before blaming the device). */
const NOT_A_MODEL = /protobuf|parse|Load model|INVALID_PROTOBUF|invalid model|data pointer is null/i;

/**
 * Opens the session on the provider `device` asks for. An explicit GPU device that cannot run
 * here is a DeviceError saying how to fix it; `auto` tries the GPU providers that are installed,
 * then the CPU, and the returned reason says why it ended where it did.
 */
async function createSession(
  spec: string,
  bytes: Uint8Array,
  options: BackboneOptions,
): Promise<{ session: ort.InferenceSession; provider: string; reason: string }> {
  const device = options.device ?? 'auto';
  const base: ort.InferenceSession.SessionOptions = {
    ...SESSION_DEFAULTS,
    ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
  };
  if (device !== 'auto' && device !== 'cpu') {
    const missing = providerMissingReason(device) ?? (device === 'tensorrt' ? providerMissingReason('cuda') : undefined);
    if (missing) throw new DeviceError(device, `${missing}. Or use --device auto (falls back to the CPU) or --device cpu.`);
  }
  const failures: string[] = [];
  for (const eps of providerCandidates(device)) {
    const wanted = eps[0] as string;
    try {
      const session = await ort.InferenceSession.create(bytes, { ...base, executionProviders: eps });
      return { session, provider: wanted, reason: providerReason(device, wanted, failures) };
    } catch (err) {
      const msg = firstLine(err);
      if (NOT_A_MODEL.test(msg)) throw new ModelNotOnnxError(spec, err);
      if (device !== 'auto') throw new DeviceError(device, `${startFailure(wanted, msg)}, or use --device auto or cpu.`);
      failures.push(`${wanted} did not start (${msg})`);
    }
  }
  throw new DeviceError(device, failures.join('; '));
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = (msg.split('\n').find((l) => l.trim() !== '') ?? msg).trim();
  // ORT prefixes some messages with its source location and the failed check: keep the words.
  return line.replace(/^\/onnxruntime_src\/.*? was false\.\s*/, '');
}

/** A provider whose library is installed failed to start: what to check. */
function startFailure(provider: string, msg: string): string {
  if (provider === 'webgpu') {
    return `onnxruntime-node found no usable WebGPU adapter (${msg}). WebGPU needs a GPU driver with Vulkan (Linux), Direct3D 12 (Windows) or Metal (macOS)`;
  }
  if (provider === 'cuda' || provider === 'tensorrt') {
    const libs = provider === 'tensorrt' ? 'TensorRT 10, CUDA 12 and cuDNN 9' : 'CUDA 12 and cuDNN 9';
    return (
      `onnxruntime-node could not start the ${provider} provider (${msg}). ` +
      `Check that nvidia-smi sees the GPU and that the ${libs} libraries are installed and on the loader path (LD_LIBRARY_PATH; ${GPU_SETUP})`
    );
  }
  return `onnxruntime-node could not start the ${provider} provider (${msg})`;
}

/** Why the session runs where it does, for logs and `stegostream doctor`. */
function providerReason(device: Device, provider: string, failures: readonly string[]): string {
  if (device !== 'auto') return `requested with --device ${device}`;
  const notTried = ['cuda', 'tensorrt'].filter((p) => !providerCandidates('auto').some((eps) => eps[0] === p));
  const why: string[] = [...failures];
  if (notTried.length > 0) {
    const absent = notTried.filter((p) => availableProviders().includes(p) && !providerLibraryPresent(p));
    if (absent.length > 0) {
      why.push(
        `the ${absent.map((p) => (p === 'cuda' ? 'CUDA' : 'TensorRT')).join(' and ')} provider ${absent.length > 1 ? 'libraries are' : 'library is'} not installed ` +
          `(on a GPU machine: ${CUDA_INSTALL_COMMAND}, ${GPU_SETUP})`,
      );
    }
    const unlisted = notTried.filter((p) => !availableProviders().includes(p));
    if (unlisted.length > 0) why.push(`this onnxruntime-node build has no ${unlisted.join(' or ')} provider`);
  }
  if (provider === 'cpu') {
    return `auto: no GPU provider available, so the CPU: ${why.join('; ')}. WebGPU is used only with --device webgpu`;
  }
  return why.length > 0
    ? `auto: ${provider}, the best provider that starts here (${why.join('; ')})`
    : `auto: ${provider}, the best provider installed`;
}

/**
 * Checks the backbone contract of DESIGN.md on a loaded session: input `image` float32
 * [B,3,H,W], outputs `patch_tokens` and `cls_token` (optional `keys`), the metadata, and, by one
 * run on a blank image, that the outputs have the shapes the metadata promises.
 */
async function checkContract(
  spec: string,
  session: ort.InferenceSession,
  meta: Record<string, string>,
  provider: string,
  providerReason: string,
): Promise<BackboneInfo> {
  const where = spec === 'builtin' ? BUILTIN_NAME : spec;
  const fail = (problem: string): never => {
    throw new ModelContractError(where, problem);
  };
  const list = (names: readonly string[]): string => names.map((n) => `"${n}"`).join(', ');
  if (!session.inputNames.includes('image')) {
    fail(`its input is named ${list(session.inputNames)}, expected "image" (float32 [B,3,H,W])`);
  }
  const missing = ['patch_tokens', 'cls_token'].filter((o) => !session.outputNames.includes(o));
  if (missing.length > 0) {
    fail(
      `output ${list(missing)} ${missing.length > 1 ? 'are' : 'is'} missing (it has ${list(session.outputNames)}; expected "patch_tokens" [B,N,C], "cls_token" [B,C] and optionally "keys" [B,N,C])`,
    );
  }
  const absent = REQUIRED_METADATA.filter((k) => meta[k] === undefined);
  if (absent.length > 0) {
    const all = `"name", "patch_size", "embed_dim", "input_height" and "input_width"`;
    fail(
      `${absent.length === REQUIRED_METADATA.length ? 'it has none of the metadata' : `its metadata_props lack ${list(absent)}`}: a backbone names ${all} in metadata_props ` +
        '(tools/export_dino.py writes them; for another model add them with the onnx Python package, model.metadata_props)',
    );
  }
  const int = (key: string, min: number): number => {
    const v = meta[key] as string;
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min) fail(`metadata "${key}" is "${v}", expected an integer >= ${min}`);
    return n;
  };
  const patchSize = int('patch_size', 1);
  const dim = int('embed_dim', 1);
  const inputHeight = int('input_height', 0);
  const inputWidth = int('input_width', 0);
  if ((inputHeight === 0) !== (inputWidth === 0)) {
    fail(
      `metadata input size is ${inputWidth}x${inputHeight} (width x height): give both, or 0 for both when any multiple of the patch size works`,
    );
  }
  if (inputHeight % patchSize !== 0 || inputWidth % patchSize !== 0) {
    fail(
      `its input size ${inputWidth}x${inputHeight} (width x height) is not a multiple of its patch size ${patchSize}, so patches would not tile the image; ` +
        `export it again with --height and --width multiples of ${patchSize}`,
    );
  }
  const image = session.inputMetadata.find((m) => m.name === 'image');
  if (image?.isTensor) {
    if (image.type !== 'float32') fail(`input "image" is ${image.type}, expected float32 (ImageNet-normalised RGB)`);
    const shape = image.shape;
    if (shape.length !== 4) fail(`input "image" has rank ${shape.length} [${shape.join(',')}], expected 4 [B,3,H,W]`);
    const [, ch, h, w] = shape;
    if (typeof ch === 'number' && ch !== 3) fail(`input "image" has ${ch} channels, expected 3 (RGB)`);
    if (typeof h === 'number' && typeof w === 'number' && (h !== inputHeight || w !== inputWidth)) {
      fail(
        `input "image" is fixed at ${w}x${h} (width x height) but its metadata says input_width ${inputWidth}, input_height ${inputHeight}`,
      );
    }
  }
  const hasKeys = session.outputNames.includes('keys');
  await dryRun(session, { patchSize, dim, inputHeight, inputWidth, hasKeys }, fail);
  return {
    source: spec,
    name: meta['name'] as string,
    patchSize,
    dim,
    inputHeight,
    inputWidth,
    hasKeys,
    provider,
    providerReason,
  };
}

/** Metadata every backbone must carry (DESIGN.md "Backbone ONNX model"). */
const REQUIRED_METADATA = ['name', 'patch_size', 'embed_dim', 'input_height', 'input_width'] as const;

/** Runs one blank image through the model and checks the output shapes against the metadata. */
async function dryRun(
  session: ort.InferenceSession,
  m: { patchSize: number; dim: number; inputHeight: number; inputWidth: number; hasKeys: boolean },
  fail: (problem: string) => never,
): Promise<void> {
  // Any multiple of the patch size works for a fully convolutional model: a small one is quick.
  const h = m.inputHeight || 4 * m.patchSize;
  const w = m.inputWidth || 4 * m.patchSize;
  const n = (h / m.patchSize) * (w / m.patchSize);
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    out = await session.run({ image: new ort.Tensor('float32', new Float32Array(3 * h * w), [1, 3, h, w]) });
  } catch (err) {
    return fail(`running it on one ${w}x${h} image (float32 [1,3,${h},${w}]) failed: ${firstLine(err)}`);
  }
  const expect: [string, number[]][] = [
    ['patch_tokens', [1, n, m.dim]],
    ['cls_token', [1, m.dim]],
    ...(m.hasKeys ? ([['keys', [1, n, m.dim]]] as [string, number[]][]) : []),
  ];
  for (const [name, dims] of expect) {
    const t = out[name];
    const got = t ? [...t.dims] : [];
    if (t?.type !== 'float32' || got.join(',') !== dims.join(',')) {
      fail(
        `on one ${w}x${h} image its output "${name}" is ${t?.type ?? '?'} [${got.join(',')}], expected float32 [${dims.join(',')}] ` +
          `(N = ${h / m.patchSize}x${w / m.patchSize} = ${n} patches of ${m.patchSize} px, C = embed_dim ${m.dim})`,
      );
    }
  }
}
