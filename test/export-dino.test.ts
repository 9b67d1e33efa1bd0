import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * tools/export_dino.py against onnxruntime-node: the exported graph must reproduce torch's outputs
 * (the script writes them with --reference), keep the backbone contract, and refuse checkpoints
 * that do not fit with a message naming the keys. Debian's torch is installed for /usr/bin/python3
 * only, so that interpreter is called by its path.
 */

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../tools/export_dino.py');
const PARITY = 1e-4;
const OUTPUTS = ['patch_tokens', 'cls_token', 'keys'] as const;

function pythonProblem(): string | undefined {
  const res = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (res.error) return `${PYTHON} cannot be run (${res.error.message})`;
  if (res.status !== 0) {
    const last = res.stderr.trim().split('\n').pop() ?? '';
    return `${PYTHON} cannot import torch, onnx (${last}); install python3-torch and python3-onnx`;
  }
  return undefined;
}

const problem = pythonProblem();
if (problem !== undefined) console.warn(`export-dino tests skipped: ${problem}`);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(PYTHON, [...args], { timeout: 110_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

async function exportOk(args: readonly string[]): Promise<Run> {
  const res = await run([SCRIPT, ...args]);
  if (res.code !== 0) throw new Error(`export_dino.py ${args.join(' ')} exited ${res.code}:\n${res.stderr}`);
  return res;
}

interface RefTensor {
  readonly shape: number[];
  readonly data: Float32Array;
}

/** Reads the raw float32 file and its JSON sidecar written by --reference. */
async function readReference(binPath: string): Promise<Record<string, RefTensor>> {
  const meta = JSON.parse(await readFile(binPath.replace(/\.bin$/, '.json'), 'utf8')) as {
    tensors: { name: string; shape: number[]; byteOffset: number; byteLength: number }[];
  };
  const bytes = await readFile(binPath);
  const out: Record<string, RefTensor> = {};
  for (const t of meta.tensors) {
    const start = bytes.byteOffset + t.byteOffset;
    out[t.name] = { shape: t.shape, data: new Float32Array(bytes.buffer.slice(start, start + t.byteLength)) };
  }
  return out;
}

function tensor(ref: Record<string, RefTensor>, name: string): RefTensor {
  const t = ref[name];
  if (t === undefined) throw new Error(`reference has no tensor ${name}`);
  return t;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

async function runOnnx(modelPath: string, image: RefTensor): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(modelPath);
  try {
    return await session.run({ image: new ort.Tensor('float32', image.data, image.shape) });
  } finally {
    await session.release();
  }
}

/** Largest |ONNX - torch| per output, on the reference input. */
async function parity(modelPath: string, refPath: string): Promise<Record<(typeof OUTPUTS)[number], number>> {
  const ref = await readReference(refPath);
  const got = await runOnnx(modelPath, tensor(ref, 'image'));
  const diff = { patch_tokens: 0, cls_token: 0, keys: 0 };
  for (const name of OUTPUTS) {
    const out = got[name];
    if (out === undefined) throw new Error(`model has no output ${name}`);
    expect(out.dims).toEqual(tensor(ref, name).shape);
    diff[name] = maxAbsDiff(out.data as Float32Array, tensor(ref, name).data);
  }
  return diff;
}

async function metadata(modelPath: string): Promise<Record<string, string>> {
  const model = onnxProto.onnx.ModelProto.decode(await readFile(modelPath));
  return Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
}

/**
 * Writes small state dicts spelled key for key as the published checkpoints are (not through the
 * exporter's own model), so that a renamed key in export_dino.py fails here.
 */
const MAKE_CHECKPOINTS = `
import sys, torch
out = sys.argv[1]
g = torch.Generator().manual_seed(7)
def r(*shape): return 0.3 * torch.randn(*shape, generator=g)
def vit(C, depth, p, grid, v2=False, regs=0):
    sd = {'cls_token': r(1, 1, C), 'pos_embed': r(1, 1 + grid * grid, C),
          'patch_embed.proj.weight': r(C, 3, p, p), 'patch_embed.proj.bias': r(C)}
    if v2: sd['mask_token'] = torch.zeros(1, C)
    if regs: sd['register_tokens'] = r(1, regs, C)
    for i in range(depth):
        b = f'blocks.{i}.'
        sd.update({b + 'norm1.weight': 1 + r(C), b + 'norm1.bias': r(C),
                   b + 'attn.qkv.weight': r(3 * C, C), b + 'attn.qkv.bias': r(3 * C),
                   b + 'attn.proj.weight': r(C, C), b + 'attn.proj.bias': r(C),
                   b + 'norm2.weight': 1 + r(C), b + 'norm2.bias': r(C),
                   b + 'mlp.fc1.weight': r(4 * C, C), b + 'mlp.fc1.bias': r(4 * C),
                   b + 'mlp.fc2.weight': r(C, 4 * C), b + 'mlp.fc2.bias': r(C)})
        if v2: sd.update({b + 'ls1.gamma': 1 + r(C), b + 'ls2.gamma': 1 + r(C)})
    sd.update({'norm.weight': 1 + r(C), 'norm.bias': r(C)})
    return sd
broken = vit(32, 3, 8, 28)
for k in [k for k in broken if k.startswith('blocks.1.')]: del broken[k]
torch.save(broken, out + '/dino_missing_block.pth')
v2 = vit(32, 2, 14, 37, v2=True)
wrapped = {'module.backbone.' + k: v for k, v in v2.items()}
wrapped['module.dino_head.last_layer.weight'] = r(8, 32)
torch.save({'teacher': wrapped, 'iteration': 3}, out + '/dinov2_tiny_teacher.pth')
torch.save(vit(32, 2, 14, 37, v2=True, regs=4), out + '/dinov2_tiny_reg4.pth')
`;

describe.skipIf(problem !== undefined)(`tools/export_dino.py${problem === undefined ? '' : ` (skipped: ${problem})`}`, () => {
  let dir = '';
  let tiny: Run;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'export-dino-'));
    const [exported, made] = await Promise.all([
      exportOk(['--random-tiny', '--height', '64', '--width', '96', '--out', join(dir, 'tiny.onnx'), '--reference', join(dir, 'tiny.bin')]),
      run(['-c', MAKE_CHECKPOINTS, dir]),
    ]);
    if (made.code !== 0) throw new Error(`writing test checkpoints failed:\n${made.stderr}`);
    tiny = exported;
  });

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('exports the tiny random ViT and onnxruntime matches torch within 1e-4 on every output', async () => {
    const diff = await parity(join(dir, 'tiny.onnx'), join(dir, 'tiny.bin'));
    for (const name of OUTPUTS) expect(diff[name], name).toBeLessThanOrEqual(PARITY);
  });

  it('keeps the contract: input image [B,3,H,W], outputs patch_tokens [B,N,C], cls_token [B,C], keys [B,N,C]', async () => {
    const ref = await readReference(join(dir, 'tiny.bin'));
    expect(tensor(ref, 'image').shape).toEqual([2, 3, 64, 96]);
    const session = await ort.InferenceSession.create(join(dir, 'tiny.onnx'));
    try {
      expect(session.inputNames).toEqual(['image']);
      expect(session.outputNames).toEqual(['patch_tokens', 'cls_token', 'keys']);
      // Batch is dynamic: one image alone gives the first rows of the batch-2 reference.
      const image = tensor(ref, 'image');
      const one = image.data.subarray(0, 3 * 64 * 96);
      const res = await session.run({ image: new ort.Tensor('float32', one, [1, 3, 64, 96]) });
      expect(res.patch_tokens?.dims).toEqual([1, 96, 32]);
      expect(res.cls_token?.dims).toEqual([1, 32]);
      expect(res.keys?.dims).toEqual([1, 96, 32]);
      const first = tensor(ref, 'patch_tokens').data.subarray(0, 96 * 32);
      expect(maxAbsDiff(res.patch_tokens?.data as Float32Array, first)).toBeLessThanOrEqual(PARITY);
    } finally {
      await session.release();
    }
    expect(tiny.stdout).toContain('output  keys          float32 [B,96,32]');
    expect(tiny.stderr).toContain('position embeddings 28x28 -> 8x12 (bicubic, once)');
  });

  it('writes the metadata the backbone loader reads', async () => {
    const meta = await metadata(join(dir, 'tiny.onnx'));
    expect(meta).toMatchObject({
      patch_size: '8',
      embed_dim: '32',
      input_height: '64',
      input_width: '96',
      name: 'random_tiny_p8',
      family: 'dino',
      num_register_tokens: '0',
      weights_dtype: 'float32',
    });
    expect(JSON.parse(meta.mean ?? '')).toEqual([0.485, 0.456, 0.406]);
    expect(JSON.parse(meta.std ?? '')).toEqual([0.229, 0.224, 0.225]);
  });

  it('refuses a checkpoint with a missing block, naming the missing keys and the fix', async () => {
    const res = await run([SCRIPT, join(dir, 'dino_missing_block.pth'), '--heads', '2', '--out', join(dir, 'broken.onnx')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(
      'export_dino: error: checkpoint "dino_missing_block.pth" does not fit DINO custom ViT/8 (embed dim 32, depth 3, heads 2, MLP 128, position grid 28x28):\n' +
        '  missing keys (12): blocks.1.norm1.weight, blocks.1.norm1.bias, blocks.1.attn.qkv.weight, blocks.1.attn.qkv.bias, ' +
        'blocks.1.attn.proj.weight, blocks.1.attn.proj.bias, blocks.1.norm2.weight, blocks.1.norm2.bias, ' +
        'blocks.1.mlp.fc1.weight, blocks.1.mlp.fc1.bias, blocks.1.mlp.fc2.weight, blocks.1.mlp.fc2.bias\n' +
        'Fix: give a ViT backbone checkpoint as the DINO/DINOv2 authors publish it',
    );
    expect(res.stderr).not.toContain('Traceback');
  });

  it('refuses a forced architecture the checkpoint does not have, naming the mismatched shapes', async () => {
    const res = await run([SCRIPT, join(dir, 'dino_missing_block.pth'), '--arch', 'vit_small', '--out', join(dir, 'broken.onnx')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('does not fit DINO vit_small/8 (embed dim 384, depth 12, heads 6');
    expect(res.stderr).toContain('missing keys (120): blocks.1.norm1.weight');
    expect(res.stderr).toContain('cls_token (checkpoint [1,1,32], model [1,1,384])');
  });

  it('loads a DINOv2-layout teacher checkpoint (LayerScale, mask_token, module.backbone. prefix) and matches torch', async () => {
    const out = join(dir, 'v2.onnx');
    const ref = join(dir, 'v2.bin');
    const res = await exportOk([
      join(dir, 'dinov2_tiny_teacher.pth'),
      '--heads',
      '2',
      '--height',
      '56',
      '--width',
      '84',
      '--out',
      out,
      '--reference',
      ref,
    ]);
    expect(res.stderr).toContain("using the state dict under 'teacher'");
    expect(res.stderr).toContain("dropping 1 tensors outside 'backbone.' (dino_head)");
    const diff = await parity(out, ref);
    for (const name of OUTPUTS) expect(diff[name], name).toBeLessThanOrEqual(PARITY);
    expect(await metadata(out)).toMatchObject({
      name: 'dinov2_vit32x2_p14',
      family: 'dinov2',
      patch_size: '14',
      input_height: '56',
    });
  });

  it('drops DINOv2 register tokens from patch_tokens and keys', async () => {
    const out = join(dir, 'v2reg.onnx');
    const ref = join(dir, 'v2reg.bin');
    await exportOk([
      join(dir, 'dinov2_tiny_reg4.pth'),
      '--heads',
      '2',
      '--height',
      '56',
      '--width',
      '84',
      '--out',
      out,
      '--reference',
      ref,
    ]);
    const diff = await parity(out, ref);
    for (const name of OUTPUTS) expect(diff[name], name).toBeLessThanOrEqual(PARITY);
    const shapes = await readReference(ref);
    expect(tensor(shapes, 'patch_tokens').shape).toEqual([2, 24, 32]);
    expect(tensor(shapes, 'keys').shape).toEqual([2, 24, 32]);
    expect(await metadata(out)).toMatchObject({ name: 'dinov2_vit32x2_p14_reg4', num_register_tokens: '4' });
  });

  it('refuses an input size that is not a multiple of the patch size', async () => {
    const res = await run([SCRIPT, '--random-tiny', '--height', '60', '--out', join(dir, 'bad.onnx')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('export_dino: error: --height 60 and --width 224 must be multiples of the patch size 8 (e.g. 56x224).');
  });

  it('exports float16 weights behind float32 input and outputs (--fp16)', async () => {
    const out = join(dir, 'tiny16.onnx');
    await exportOk(['--random-tiny', '--height', '64', '--width', '96', '--fp16', '--out', out]);
    const diff = await parity(out, join(dir, 'tiny.bin'));
    for (const name of OUTPUTS) expect(diff[name], name).toBeLessThan(2e-2);
    expect(await metadata(out)).toMatchObject({ weights_dtype: 'float16' });
  });
});
