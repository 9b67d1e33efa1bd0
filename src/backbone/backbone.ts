import * as ort from 'onnxruntime-node';
import { readFile, stat } from 'node:fs/promises';
import type { Embedding, Frame } from '../types.js';
import { DeviceError, InputNotFoundError, ModelContractError, ModelNotOnnxError } from '../errors.js';
import { buildBuiltinBackbone, BUILTIN_NAME } from './builtin-backbone.js';
import { readModelMetadata } from './read-model-metadata.js';
import { availableProviders, providerCandidates, type Device } from './execution-device.js';

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

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly info: BackboneInfo,
  ) {}

  static async load(spec: string, options: BackboneOptions = {}): Promise<Backbone> {
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
    let meta: Record<string, string>;
    try {
      meta = readModelMetadata(bytes);
    } catch (err) {
      throw new ModelNotOnnxError(spec, err);
    }
    const { session, provider, reason } = await createSession(spec, bytes, options);
    const info = checkContract(spec, session, meta, provider, reason);
    return new Backbone(session, info);
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
    const input = new Float32Array(frames.length * 3 * plane);
    frames.forEach((f, b) => normaliseInto(f.rgb, input, b * 3 * plane, plane));
    const feeds = { image: new ort.Tensor('float32', input, [frames.length, 3, height, width]) };
    const out = await this.session.run(feeds);
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

/** HWC uint8 RGB to CHW float32, ImageNet-normalised, in one pass. */
function normaliseInto(rgb: Buffer, out: Float32Array, offset: number, plane: number): void {
  const s0 = 1 / (255 * IMAGENET_STD[0]);
  const s1 = 1 / (255 * IMAGENET_STD[1]);
  const s2 = 1 / (255 * IMAGENET_STD[2]);
  const m0 = IMAGENET_MEAN[0] / IMAGENET_STD[0];
  const m1 = IMAGENET_MEAN[1] / IMAGENET_STD[1];
  const m2 = IMAGENET_MEAN[2] / IMAGENET_STD[2];
  for (let i = 0, j = 0; i < plane; i++, j += 3) {
    out[offset + i] = (rgb[j] as number) * s0 - m0;
    out[offset + plane + i] = (rgb[j + 1] as number) * s1 - m1;
    out[offset + 2 * plane + i] = (rgb[j + 2] as number) * s2 - m2;
  }
}

async function createSession(
  spec: string,
  bytes: Uint8Array,
  options: BackboneOptions,
): Promise<{ session: ort.InferenceSession; provider: string; reason: string }> {
  const device = options.device ?? 'auto';
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    // ffmpeg and the learner share the cores: idle ORT threads must sleep, not spin.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
  };
  const have = availableProviders();
  const failures: string[] = [];
  for (const eps of providerCandidates(device)) {
    const wanted = eps[0] as string;
    if (!have.includes(wanted)) {
      failures.push(`${wanted}: not in this onnxruntime-node build (available: ${have.join(', ')})`);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(bytes, { ...base, executionProviders: eps });
      const reason =
        failures.length === 0 ? `${device === 'auto' ? 'auto: best available' : `requested ${device}`}` : `fell back: ${failures.join('; ')}`;
      return { session, provider: wanted, reason };
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      if (/protobuf|parse|Load model|INVALID_PROTOBUF|invalid model/i.test(msg)) throw new ModelNotOnnxError(spec, err);
      failures.push(`${wanted}: ${msg.split('\n')[0]}`);
    }
  }
  if (device !== 'auto' && device !== 'cpu') {
    throw new DeviceError(
      device,
      `${failures.join('; ')}. Install the GPU build of onnxruntime-node (README "GPU set-up") or use --device auto or cpu.`,
    );
  }
  throw new DeviceError(device, failures.join('; '));
}

function checkContract(
  spec: string,
  session: ort.InferenceSession,
  meta: Record<string, string>,
  provider: string,
  providerReason: string,
): BackboneInfo {
  const where = spec === 'builtin' ? BUILTIN_NAME : spec;
  if (!session.inputNames.includes('image')) {
    throw new ModelContractError(where, `its input is named ${session.inputNames.map((n) => `"${n}"`).join(', ')}, expected "image" [B,3,H,W]`);
  }
  for (const out of ['patch_tokens', 'cls_token']) {
    if (!session.outputNames.includes(out)) {
      throw new ModelContractError(where, `output "${out}" is missing (outputs: ${session.outputNames.join(', ')})`);
    }
  }
  const int = (key: string): number => {
    const v = meta[key];
    if (v === undefined) throw new ModelContractError(where, `metadata_props has no "${key}"`);
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new ModelContractError(where, `metadata "${key}" is "${v}", expected a non-negative integer`);
    return n;
  };
  const patchSize = int('patch_size');
  const dim = int('embed_dim');
  const inputHeight = meta['input_height'] === undefined ? 0 : int('input_height');
  const inputWidth = meta['input_width'] === undefined ? 0 : int('input_width');
  if (patchSize < 1) throw new ModelContractError(where, 'metadata "patch_size" must be >= 1');
  if (inputHeight % patchSize !== 0 || inputWidth % patchSize !== 0) {
    throw new ModelContractError(where, `patch size ${patchSize} does not divide the input size ${inputWidth}x${inputHeight}`);
  }
  const imageMeta = session.inputMetadata.find((m) => m.name === 'image');
  if (imageMeta && imageMeta.isTensor && imageMeta.shape.length !== 4) {
    throw new ModelContractError(where, `input "image" has rank ${imageMeta.shape.length}, expected 4 [B,3,H,W]`);
  }
  return {
    source: spec,
    name: meta['name'] ?? where,
    patchSize,
    dim,
    inputHeight,
    inputWidth,
    hasKeys: session.outputNames.includes('keys'),
    provider,
    providerReason,
  };
}
