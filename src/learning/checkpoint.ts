/**
 * Head checkpoints: one file holding a HeadState (DESIGN.md "Online learning").
 *
 * Layout (all integers little-endian):
 *   0   8 bytes  magic "STGSHEAD"
 *   8   u32      format version (1)
 *   12  u32      header length H
 *   16  u32      payload length L (bytes, a multiple of 4)
 *   20  H bytes  header: UTF-8 JSON (version, backbone, codeDim, k, names, colors, createdAt,
 *                trainedSteps (optional),
 *                and a table of tensors: name, shape, offset and length in floats)
 *   20+H L bytes payload: the tensors as float32 LE, back to back
 *   end 32 bytes SHA-256 of everything before it
 *
 * Saving is atomic: the bytes go to `<path>.tmp-<pid>-<random>`, are fsynced, then renamed over
 * `path`, so a reader sees the old file or the new one, never half of one. Loading checks the
 * signature, the length, the checksum, the header schema and the tensor shapes, then what the
 * caller expects (backbone dim, class count), and reports each failure as a CheckpointError
 * that says what is wrong.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { centroidDim, type HeadState, type Rgb } from './head-state.js';
import { HEAD_TENSORS, headShapes, type HeadWeights } from './stego-head.js';

export const CHECKPOINT_MAGIC = 'STGSHEAD';
export const CHECKPOINT_FORMAT = 1;
const PREAMBLE = 20;
const DIGEST = 32;

const tensorEntry = z
  .object({
    name: z.string(),
    shape: z.array(z.number().int().nonnegative()),
    offset: z.number().int().nonnegative(),
    length: z.number().int().nonnegative(),
  })
  .strict();

const headerSchema = z
  .object({
    version: z.number().int().nonnegative(),
    backbone: z.object({ name: z.string(), dim: z.number().int().positive() }).strict(),
    codeDim: z.number().int().positive(),
    hasHead: z.boolean(),
    k: z.number().int().positive(),
    names: z.array(z.string()),
    colors: z.array(z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)])),
    createdAt: z.number(),
    trainedSteps: z.number().int().nonnegative().optional(),
    tensors: z.array(tensorEntry),
  })
  .strict();

type Header = z.infer<typeof headerSchema>;

/** What the running configuration needs the checkpoint to fit. */
export interface CheckpointExpectations {
  /** Backbone feature dimension C of this run. */
  readonly dim?: number;
  /** Number of classes (clusters) this run asks for. */
  readonly k?: number;
  /** Backbone name of this run; checked only when given. */
  readonly backboneName?: string;
}

/** Serialises a state into checkpoint bytes (also what a NATS KV bucket would hold). */
export function encodeCheckpoint(state: HeadState): Buffer {
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  if (state.weights) {
    const shapes = headShapes(state.weights.inDim, state.weights.codeDim);
    for (const name of HEAD_TENSORS) tensors.push({ name, shape: [...shapes[name]], data: state.weights[name] });
  }
  tensors.push({ name: 'centroids', shape: [state.k, centroidDim(state)], data: state.centroids });
  let offset = 0;
  const table = tensors.map((t) => {
    const e = { name: t.name, shape: t.shape, offset, length: t.data.length };
    offset += t.data.length;
    return e;
  });
  const header: Header = {
    version: state.version,
    backbone: { name: state.backbone.name, dim: state.backbone.dim },
    codeDim: state.codeDim,
    hasHead: state.weights !== null,
    k: state.k,
    names: [...state.names],
    colors: state.colors.map((c) => [c[0], c[1], c[2]] as [number, number, number]),
    createdAt: state.createdAt,
    ...(state.trainedSteps === undefined ? {} : { trainedSteps: state.trainedSteps }),
    tensors: table,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const payloadBytes = offset * 4;
  const buf = Buffer.alloc(PREAMBLE + headerBytes.length + payloadBytes + DIGEST);
  buf.write(CHECKPOINT_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(CHECKPOINT_FORMAT, 8);
  buf.writeUInt32LE(headerBytes.length, 12);
  buf.writeUInt32LE(payloadBytes, 16);
  headerBytes.copy(buf, PREAMBLE);
  let pos = PREAMBLE + headerBytes.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, pos += 4) buf.writeFloatLE(t.data[i]!, pos);
  }
  createHash('sha256').update(buf.subarray(0, pos)).digest().copy(buf, pos);
  return buf;
}

/**
 * Parses checkpoint bytes. `source` names the file in error messages.
 * @throws CheckpointError naming the problem.
 */
export function decodeCheckpoint(bytes: Uint8Array, source: string, expected: CheckpointExpectations = {}): HeadState {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (problem: string, cause?: unknown): never => {
    throw new CheckpointError(source, problem, cause);
  };
  const magicLen = Math.min(buf.length, CHECKPOINT_MAGIC.length);
  if (buf.length === 0 || buf.toString('latin1', 0, magicLen) !== CHECKPOINT_MAGIC.slice(0, magicLen)) {
    fail(`it is not a stegostream head checkpoint (no "${CHECKPOINT_MAGIC}" signature at its start)`);
  }
  if (buf.length < PREAMBLE) fail(`the file is truncated (${buf.length} bytes, shorter than the ${PREAMBLE}-byte preamble)`);
  const format = buf.readUInt32LE(8);
  if (format !== CHECKPOINT_FORMAT) {
    fail(
      format > CHECKPOINT_FORMAT
        ? `it has format ${format}, newer than this stegostream reads (${CHECKPOINT_FORMAT}); upgrade stegostream`
        : `it has unknown format ${format}`,
    );
  }
  const headerLen = buf.readUInt32LE(12);
  const payloadLen = buf.readUInt32LE(16);
  const total = PREAMBLE + headerLen + payloadLen + DIGEST;
  if (buf.length < total) fail(`the file is truncated (${buf.length} of ${total} bytes)`);
  if (buf.length > total) fail(`it is corrupt: ${buf.length - total} unexpected bytes after the end (expected ${total} bytes)`);
  const body = buf.subarray(0, total - DIGEST);
  const digest = createHash('sha256').update(body).digest();
  if (!digest.equals(buf.subarray(total - DIGEST, total))) {
    fail('it is corrupt: checksum mismatch (the file was damaged or modified after it was written)');
  }

  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8', PREAMBLE, PREAMBLE + headerLen));
  } catch (err) {
    fail('it is corrupt: its header is not valid JSON', err);
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(`it is corrupt: header ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const h = (parsed as { data: Header }).data;
  if (payloadLen % 4 !== 0) fail(`it is corrupt: payload of ${payloadLen} bytes is not whole float32 values`);
  const floats = payloadLen / 4;
  const payloadAt = PREAMBLE + headerLen;
  const tensor = (name: string, shape: readonly number[]): Float32Array => {
    const e = h.tensors.find((t) => t.name === name);
    if (!e) return fail(`it is corrupt: tensor "${name}" is missing`);
    const want = shape.reduce((a, b) => a * b, 1);
    if (e.shape.length !== shape.length || e.shape.some((s, i) => s !== shape[i]) || e.length !== want) {
      fail(`it is corrupt: tensor "${name}" has shape [${e.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (e.offset + e.length > floats) fail(`it is corrupt: tensor "${name}" runs past the end of the payload`);
    const out = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++) {
      const v = buf.readFloatLE(payloadAt + (e.offset + i) * 4);
      if (!Number.isFinite(v)) fail(`it is corrupt: tensor "${name}" holds a non-finite value (${v}) at index ${i}`);
      out[i] = v;
    }
    return out;
  };

  if (h.names.length !== h.k) fail(`it is corrupt: ${h.names.length} class names for ${h.k} classes`);
  if (h.colors.length !== h.k) fail(`it is corrupt: ${h.colors.length} class colours for ${h.k} classes`);
  if (expected.dim !== undefined && h.backbone.dim !== expected.dim) {
    fail(
      `checkpoint was trained on a ${h.backbone.dim}-dim backbone, this run uses ${expected.dim}. ` +
        'Use the backbone it was trained with, or start without --head to learn a new one',
    );
  }
  if (expected.backboneName !== undefined && h.backbone.name !== expected.backboneName) {
    fail(`checkpoint was trained on backbone "${h.backbone.name}", this run uses "${expected.backboneName}"`);
  }
  if (expected.k !== undefined && h.k !== expected.k) {
    fail(
      `checkpoint has ${h.k} classes, this run asks for ${expected.k} (-k or learning.classes): leave the count out (auto) to use the checkpoint's ${h.k}, or train a new head`,
    );
  }

  let weights: HeadWeights | null = null;
  if (h.hasHead) {
    const shapes = headShapes(h.backbone.dim, h.codeDim);
    weights = {
      inDim: h.backbone.dim,
      codeDim: h.codeDim,
      linW: tensor('linW', shapes.linW),
      linB: tensor('linB', shapes.linB),
      mlp1W: tensor('mlp1W', shapes.mlp1W),
      mlp1B: tensor('mlp1B', shapes.mlp1B),
      mlp2W: tensor('mlp2W', shapes.mlp2W),
      mlp2B: tensor('mlp2B', shapes.mlp2B),
    };
  }
  const cDim = weights ? h.codeDim : h.backbone.dim;
  const centroids = tensor('centroids', [h.k, cDim]);
  return {
    version: h.version,
    backbone: { name: h.backbone.name, dim: h.backbone.dim },
    codeDim: h.codeDim,
    weights,
    centroids,
    k: h.k,
    names: h.names,
    colors: h.colors.map((c) => [c[0], c[1], c[2]] as Rgb),
    createdAt: h.createdAt,
    ...(h.trainedSteps === undefined ? {} : { trainedSteps: h.trainedSteps }),
  };
}

/**
 * Writes `state` to `path` atomically (temp file in the same folder, fsync, rename).
 * @throws CheckpointError when the file cannot be written; the previous file is left intact.
 */
export async function saveCheckpoint(path: string, state: HeadState): Promise<void> {
  const bytes = encodeCheckpoint(state);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new CheckpointError(path, `it cannot be written (${(err as Error).message})`, err);
  }
  // Persist the rename itself; not every platform lets a directory be fsynced, which is fine.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    /* best effort */
  }
}

/**
 * Reads and validates a checkpoint.
 * @throws CheckpointError: missing file, not a checkpoint, truncated, corrupt (checksum),
 *   backbone dim mismatch, class count mismatch.
 */
export async function loadCheckpoint(path: string, expected: CheckpointExpectations = {}): Promise<HeadState> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem =
      code === 'ENOENT'
        ? 'no such file. Check the path, or start without it to learn a new head'
        : code === 'EISDIR'
          ? 'it is a folder, not a file'
          : `it cannot be read (${(err as Error).message})`;
    throw new CheckpointError(path, problem, err);
  }
  return decodeCheckpoint(bytes, path, expected);
}
