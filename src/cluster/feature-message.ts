/**
 * Sampled patch features, worker -> trainer on `<prefix>.train.features` (core NATS: the trainer's
 * bank is a reservoir of samples anyway, so a lost message costs nothing). The payload is
 * `n x dim` float32 little-endian; headers carry stream, seq, n, dim and the backbone name, so the
 * trainer can refuse features of another backbone.
 */
import { headers as natsHeaders, type MsgHdrs } from 'nats';
import type { Embedding } from '../types.js';
import { BadOptionError } from '../errors.js';

export interface FeatureSample {
  readonly stream: string;
  readonly seq: number;
  readonly n: number;
  readonly dim: number;
  readonly backbone: string;
  /** [n x dim] */
  readonly tokens: Float32Array;
}

/** Up to `points` distinct patches of one frame, uniformly (partial Fisher-Yates). */
export function sampleFeatures(e: Embedding, points: number, backbone: string, random: () => number = Math.random): FeatureSample {
  const n = e.gridH * e.gridW;
  const m = Math.min(n, points);
  const { dim } = e;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const tokens = new Float32Array(m * dim);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(random() * (n - i));
    const t = idx[i] as number;
    idx[i] = idx[j] as number;
    idx[j] = t;
    const src = (idx[i] as number) * dim;
    tokens.set(e.patchTokens.subarray(src, src + dim), i * dim);
  }
  return { stream: e.frame.streamId, seq: e.frame.seq, n: m, dim, backbone, tokens };
}

export function encodeFeatures(s: FeatureSample): { data: Uint8Array; headers: MsgHdrs } {
  const h = natsHeaders();
  h.set('stream', s.stream);
  h.set('seq', String(s.seq));
  h.set('n', String(s.n));
  h.set('dim', String(s.dim));
  h.set('backbone', s.backbone);
  const le = new Uint8Array(s.tokens.buffer, s.tokens.byteOffset, s.tokens.byteLength);
  return { data: le, headers: h };
}

export function decodeFeatures(data: Uint8Array, h: MsgHdrs | undefined): FeatureSample {
  const n = Number(h?.get('n'));
  const dim = Number(h?.get('dim'));
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(dim) || dim < 1 || data.length !== n * dim * 4) {
    throw new BadOptionError(
      'feature message',
      'n x dim float32 values with headers n and dim',
      `${data.length} bytes, n=${h?.get('n')}, dim=${h?.get('dim')}`,
    );
  }
  // Copy: the message buffer may not be 4-byte aligned.
  const tokens = new Float32Array(n * dim);
  new Uint8Array(tokens.buffer).set(data);
  return { stream: h?.get('stream') ?? '', seq: Number(h?.get('seq') ?? 0), n, dim, backbone: h?.get('backbone') ?? '', tokens };
}
