import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backbone } from '../src/backbone/backbone.js';
import { fromFloat16Bits, toFloat16Bits } from '../src/internal/float16.js';
import type { Frame } from '../src/types.js';

/**
 * The hub layout as a second backbone contract: a random-weight ViT written in the transformers.js
 * layout (test/helpers/export_hub_model.py) and the same weights exported by tools/export_dino.py
 * must give the same patch and CLS features through Backbone (token split, registers, mean/std
 * from preprocessor_config.json, geometry from config.json).
 */

const PYTHON = '/usr/bin/python3';
const HERE = dirname(fileURLToPath(import.meta.url));
const HUB_EXPORT = resolve(HERE, 'helpers/export_hub_model.py');
const EXPORT_DINO = resolve(HERE, '../tools/export_dino.py');
const PARITY = 1e-4;

const problem = ((): string | undefined => {
  const res = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) return `${PYTHON} cannot import torch, onnx; install python3-torch and python3-onnx`;
  return undefined;
})();

function python(args: readonly string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${args[0]} failed (${code}): ${err}`))));
  });
}

/** Seeded random RGB frames (so that every patch sees different content). */
function frames(width: number, height: number, count: number, seed: number): Frame[] {
  let s = seed;
  const next = (): number => (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return Array.from({ length: count }, (_, seq) => {
    const rgb = Buffer.alloc(width * height * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = next();
    return { streamId: 's', seq, pts: seq, width, height, rgb, capturedAt: 0 };
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

async function features(model: string, input: Frame[]): Promise<{ info: Backbone['info']; tokens: Float32Array[]; cls: Float32Array[] }> {
  const b = await Backbone.load(model, { device: 'cpu' });
  try {
    const out = await b.embed(input);
    return { info: b.info, tokens: out.map((e) => Float32Array.from(e.patchTokens)), cls: out.map((e) => Float32Array.from(e.clsToken)) };
  } finally {
    await b.close();
  }
}

describe.skipIf(problem !== undefined)(`hub-layout backbones${problem ? ` (skipped: ${problem})` : ''}`, () => {
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hub-backbone-'));
    await Promise.all([
      python([HUB_EXPORT, '--out', join(dir, 'dino'), '--family', 'dino', '--seed', '5']),
      python([EXPORT_DINO, '--random-tiny', '--seed', '5', '--height', '224', '--width', '224', '--out', join(dir, 'dino-contract.onnx')]),
      python([HUB_EXPORT, '--out', join(dir, 'reg4'), '--family', 'dinov2', '--registers', '4', '--seed', '6']),
      python([
        EXPORT_DINO,
        '--random-tiny',
        '--family',
        'dinov2',
        '--registers',
        '4',
        '--seed',
        '6',
        '--height',
        '224',
        '--width',
        '224',
        '--out',
        join(dir, 'reg4-contract.onnx'),
      ]),
    ]);
  }, 180_000);

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('DINO (fixed 224x224 table): hub layout and export_dino.py give the same patch and CLS features (max abs diff <= 1e-4)', async () => {
    const input = frames(224, 224, 2, 1);
    const hub = await features(join(dir, 'dino/onnx/model.onnx'), input);
    const contract = await features(join(dir, 'dino-contract.onnx'), input);
    expect(hub.info).toMatchObject({ name: `${basename(dir)}/dino (fp32)`, patchSize: 8, dim: 32 });
    expect([hub.info.inputWidth, hub.info.inputHeight, hub.info.hasKeys]).toEqual([224, 224, false]);
    expect(contract.info.hasKeys).toBe(true);
    for (let b = 0; b < input.length; b++) {
      expect(hub.tokens[b]?.length).toBe(28 * 28 * 32);
      expect(maxAbsDiff(hub.tokens[b] as Float32Array, contract.tokens[b] as Float32Array)).toBeLessThanOrEqual(PARITY);
      expect(maxAbsDiff(hub.cls[b] as Float32Array, contract.cls[b] as Float32Array)).toBeLessThanOrEqual(PARITY);
    }
  });

  it('DINOv2 with 4 registers: the registers are split off, features match export_dino.py, and any multiple of the patch loads', async () => {
    const input = frames(224, 224, 1, 2);
    const hub = await features(join(dir, 'reg4/onnx/model.onnx'), input);
    const contract = await features(join(dir, 'reg4-contract.onnx'), input);
    expect([hub.info.inputWidth, hub.info.inputHeight]).toEqual([0, 0]);
    expect(maxAbsDiff(hub.tokens[0] as Float32Array, contract.tokens[0] as Float32Array)).toBeLessThanOrEqual(PARITY);
    expect(maxAbsDiff(hub.cls[0] as Float32Array, contract.cls[0] as Float32Array)).toBeLessThanOrEqual(PARITY);
    const other = await features(join(dir, 'reg4/onnx/model.onnx'), frames(96, 64, 1, 3));
    expect(other.tokens[0]?.length).toBe(8 * 12 * 32);
  });

  it('fp16 variant: float16 weights inside, the same features within float16 precision', async () => {
    const input = frames(224, 224, 1, 4);
    const fp32 = await features(join(dir, 'dino/onnx/model.onnx'), input);
    const fp16 = await features(join(dir, 'dino/onnx/model_fp16.onnx'), input);
    expect(fp16.info.name).toMatch(/\(fp16\)$/);
    expect(maxAbsDiff(fp16.tokens[0] as Float32Array, fp32.tokens[0] as Float32Array)).toBeLessThan(0.05);
  });

  it('refuses a hub-layout ONNX file without its config.json, saying what to keep', async () => {
    const lone = join(dir, 'lone.onnx');
    await writeFile(lone, await readFile(join(dir, 'dino/onnx/model.onnx')));
    await expect(Backbone.load(lone, { device: 'cpu' })).rejects.toThrow(
      `Backbone "${lone}" breaks the backbone contract: it is in the hub layout ("pixel_values" -> "last_hidden_state") but no config.json is beside it or in the folder above`,
    );
  });
});

describe('float16 conversion (models whose input or output is float16)', () => {
  it('round-trips values representable in float16 exactly and rounds others to the nearest', () => {
    const exact = new Float32Array([0, -0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 0.099975586, Infinity, -Infinity]);
    expect(Array.from(fromFloat16Bits(toFloat16Bits(exact)))).toEqual(Array.from(exact));
    const [third] = fromFloat16Bits(toFloat16Bits(new Float32Array([1 / 3])));
    expect(Math.abs((third as number) - 1 / 3)).toBeLessThanOrEqual(2 ** -12);
    expect(fromFloat16Bits(toFloat16Bits(new Float32Array([1e6])))[0]).toBe(Infinity);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(new Float32Array([NaN])))[0])).toBe(true);
  });
});
