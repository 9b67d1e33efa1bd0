import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backbone } from '../src/backbone/backbone.js';
import { DT, OnnxGraph } from '../src/internal/onnx-graph.js';
import { providerLibraryPresent } from '../src/backbone/execution-device.js';
import { lavfiVideo, runCli, tempDir } from './helpers/cli.js';

/**
 * Models that break the backbone contract (DESIGN.md "Backbone ONNX model") are refused by
 * Backbone.load and by the CLI with a message naming the problem and the fix; a GPU device this
 * machine cannot run says how to get it, and `auto` says why it fell back to the CPU.
 */

interface ToyOptions {
  readonly inputName?: string;
  readonly outputs?: readonly ('patch_tokens' | 'cls_token' | 'keys')[];
  readonly metadata?: Record<string, string | number>;
  /** Fixed input size [H, W] in the graph; symbolic when absent. */
  readonly size?: readonly [number, number];
  readonly patch?: number;
  readonly dim?: number;
}

/** A tiny backbone: one strided convolution per patch, tokens flattened row-major. */
function toyBackbone(options: ToyOptions = {}): Uint8Array {
  const p = options.patch ?? 8;
  const c = options.dim ?? 4;
  const [h, w] = options.size ?? (['height', 'width'] as const);
  const g = new OnnxGraph('toy');
  const image = g.input(options.inputName ?? 'image', DT.FLOAT, ['batch', 3, h, w]);
  const weights = Float32Array.from({ length: c * 3 * p * p }, (_, i) => Math.sin(i) / (p * p));
  const conv = g.op1('Conv', [image, g.constF(weights, [c, 3, p, p])], { strides: [p, p] });
  const flat = g.op1('Reshape', [conv, g.constI64([0, c, -1])]);
  const tokens = g.op1('Transpose', [flat], { perm: [0, 2, 1] });
  const outputs = options.outputs ?? ['patch_tokens', 'cls_token', 'keys'];
  for (const name of outputs) {
    if (name === 'cls_token') {
      g.output(name, DT.FLOAT, ['batch', c]);
      g.op1('ReduceMean', [tokens], { axes: [1], keepdims: 0 }, name);
    } else {
      g.output(name, DT.FLOAT, ['batch', 'patches', c]);
      g.op1('Identity', [tokens], {}, name);
    }
  }
  const metadata = options.metadata ?? {
    name: 'toy',
    patch_size: p,
    embed_dim: c,
    input_height: h === 'height' ? 0 : h,
    input_width: w === 'width' ? 0 : w,
  };
  return g.toBytes(metadata);
}

const CONTRACT_FIX = 'See README "Models" for what a backbone must provide.';

describe('Backbone.load refuses models that break the contract', () => {
  let dir: string;
  const write = (name: string, bytes: Uint8Array | string): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  beforeAll(async () => {
    dir = await tempDir('stegostream-backbone-');
  });

  it('loads a toy model that keeps the contract, at any multiple of its patch size', async () => {
    const b = await Backbone.load(write('ok.onnx', toyBackbone()), { device: 'cpu' });
    try {
      expect(b.info).toMatchObject({ name: 'toy', patchSize: 8, dim: 4, inputHeight: 0, inputWidth: 0, hasKeys: true, provider: 'cpu' });
    } finally {
      await b.close();
    }
  });

  it('a file that is not ONNX', async () => {
    const path = write('notes.onnx', 'dive log: 12 fish, 3 rocks\n'.repeat(20));
    await expect(Backbone.load(path)).rejects.toThrow(
      `"${path}" is not an ONNX model ONNX Runtime can load. Export one with tools/export_dino.py or use --backbone builtin.`,
    );
    const empty = write('empty.onnx', '');
    await expect(Backbone.load(empty)).rejects.toMatchObject({ code: 'E_MODEL_NOT_ONNX' });
  });

  it('a file that does not exist', async () => {
    const path = join(dir, 'nope.onnx');
    await expect(Backbone.load(path)).rejects.toThrow(`Cannot read backbone model "${path}": no such file or folder. Check the path.`);
  });

  it('a model whose input is not named "image"', async () => {
    const path = write('pixel-values.onnx', toyBackbone({ inputName: 'pixel_values' }));
    await expect(Backbone.load(path)).rejects.toThrow(
      `Backbone "${path}" breaks the backbone contract: its input is named "pixel_values", expected "image" (float32 [B,3,H,W]). ${CONTRACT_FIX}`,
    );
  });

  it('a model without cls_token, and one without patch_tokens', async () => {
    const noCls = write('no-cls.onnx', toyBackbone({ outputs: ['patch_tokens', 'keys'] }));
    await expect(Backbone.load(noCls)).rejects.toThrow(
      `Backbone "${noCls}" breaks the backbone contract: output "cls_token" is missing (it has "patch_tokens", "keys"; ` +
        `expected "patch_tokens" [B,N,C], "cls_token" [B,C] and optionally "keys" [B,N,C]). ${CONTRACT_FIX}`,
    );
    const noTokens = write('no-tokens.onnx', toyBackbone({ outputs: ['cls_token'] }));
    await expect(Backbone.load(noTokens)).rejects.toThrow(
      `Backbone "${noTokens}" breaks the backbone contract: output "patch_tokens" is missing (it has "cls_token"; ` +
        `expected "patch_tokens" [B,N,C], "cls_token" [B,C] and optionally "keys" [B,N,C]). ${CONTRACT_FIX}`,
    );
  });

  it('a model without metadata, and one missing a key', async () => {
    const bare = write('bare.onnx', toyBackbone({ metadata: {} }));
    await expect(Backbone.load(bare)).rejects.toThrow(
      `Backbone "${bare}" breaks the backbone contract: it has none of the metadata: a backbone names "name", "patch_size", "embed_dim", ` +
        `"input_height" and "input_width" in metadata_props (tools/export_dino.py writes them; for another model add them with the onnx ` +
        `Python package, model.metadata_props). ${CONTRACT_FIX}`,
    );
    const partial = write('partial.onnx', toyBackbone({ metadata: { name: 'toy', patch_size: 8, input_height: 0, input_width: 0 } }));
    await expect(Backbone.load(partial)).rejects.toThrow(
      `Backbone "${partial}" breaks the backbone contract: its metadata_props lack "embed_dim": a backbone names`,
    );
  });

  it('a model whose patch size does not divide its input size', async () => {
    const path = write(
      'p16-100.onnx',
      toyBackbone({
        patch: 16,
        size: [64, 100],
        metadata: { name: 'toy', patch_size: 16, embed_dim: 4, input_height: 64, input_width: 100 },
      }),
    );
    await expect(Backbone.load(path)).rejects.toThrow(
      `Backbone "${path}" breaks the backbone contract: its input size 100x64 (width x height) is not a multiple of its patch size 16, ` +
        `so patches would not tile the image; export it again with --height and --width multiples of 16. ${CONTRACT_FIX}`,
    );
  });

  it('a model whose outputs do not have the size its metadata promises', async () => {
    const path = write(
      'dim.onnx',
      toyBackbone({ dim: 4, metadata: { name: 'toy', patch_size: 8, embed_dim: 384, input_height: 0, input_width: 0 } }),
    );
    await expect(Backbone.load(path)).rejects.toThrow(
      `Backbone "${path}" breaks the backbone contract: on one 32x32 image its output "patch_tokens" is float32 [1,16,4], expected float32 [1,16,384] ` +
        `(N = 4x4 = 16 patches of 8 px, C = embed_dim 384). ${CONTRACT_FIX}`,
    );
    const fixed = write(
      'fixed.onnx',
      toyBackbone({ size: [64, 96], metadata: { name: 'toy', patch_size: 8, embed_dim: 4, input_height: 64, input_width: 128 } }),
    );
    await expect(Backbone.load(fixed)).rejects.toThrow(
      `Backbone "${fixed}" breaks the backbone contract: input "image" is fixed at 96x64 (width x height) but its metadata says input_width 128, input_height 64. ${CONTRACT_FIX}`,
    );
  });
});

describe.skipIf(providerLibraryPresent('cuda'))('execution providers on a machine without CUDA', () => {
  const fix =
    'ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (README "GPU set-up"). Or use --device auto (falls back to the CPU) or --device cpu.';

  it('--device cuda is a DeviceError naming the fix', async () => {
    await expect(Backbone.load('builtin', { device: 'cuda' })).rejects.toThrow(
      `Device "cuda" is not available: onnxruntime-node's CUDA provider library (libonnxruntime_providers_cuda.so) is not installed: ` +
        `the set-up skips that download. On a machine with an NVIDIA GPU (CUDA 12, cuDNN 9), run ${fix}`,
    );
    await expect(Backbone.load('builtin', { device: 'tensorrt' })).rejects.toMatchObject({ code: 'E_DEVICE' });
  });

  it('--device auto falls back to the CPU and says why', async () => {
    const b = await Backbone.load('builtin', { device: 'auto' });
    try {
      expect(b.info.provider).toBe('cpu');
      expect(b.info.providerReason).toBe(
        'auto: no GPU provider available, so the CPU: the CUDA and TensorRT provider libraries are not installed ' +
          '(on a GPU machine: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node, README "GPU set-up"). WebGPU is used only with --device webgpu',
      );
    } finally {
      await b.close();
    }
  });
});

describe('stegostream process --backbone with a bad model', () => {
  let dir: string;
  let video: string;
  beforeAll(async () => {
    dir = await tempDir('stegostream-backbone-cli-');
    video = join(dir, 'clip.mp4');
    lavfiVideo(video, { seconds: 1, size: '160x96' });
  });

  const processWith = (...args: string[]) => runCli(['process', video, '--stats', join(dir, 's.csv'), ...args]);

  it('not ONNX, wrong input name, no metadata: exit 1 with the whole message and its code', async () => {
    const notOnnx = join(dir, 'notes.onnx');
    writeFileSync(notOnnx, 'not a model\n'.repeat(20));
    const wrongInput = join(dir, 'input.onnx');
    writeFileSync(wrongInput, toyBackbone({ inputName: 'pixel_values' }));
    const bare = join(dir, 'bare.onnx');
    writeFileSync(bare, toyBackbone({ metadata: {} }));
    const [a, b, c] = await Promise.all([
      processWith('--backbone', notOnnx),
      processWith('--backbone', wrongInput),
      processWith('--backbone', bare),
    ]);
    expect(a.code).toBe(1);
    expect(a.stderr).toBe(
      `stegostream: "${notOnnx}" is not an ONNX model ONNX Runtime can load. Export one with tools/export_dino.py or use --backbone builtin. [E_MODEL_NOT_ONNX]\n`,
    );
    expect(b.code).toBe(1);
    expect(b.stderr).toBe(
      `stegostream: Backbone "${wrongInput}" breaks the backbone contract: its input is named "pixel_values", expected "image" (float32 [B,3,H,W]). ${CONTRACT_FIX} [E_MODEL_CONTRACT]\n`,
    );
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(
      /^stegostream: Backbone ".*bare\.onnx" breaks the backbone contract: it has none of the metadata: .* \[E_MODEL_CONTRACT\]\n$/,
    );
  });

  it.skipIf(providerLibraryPresent('cuda'))('--device cuda: exit 1 naming the fix, no loader noise from ONNX Runtime', async () => {
    const r = await processWith('--device', 'cuda');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^stegostream: Device "cuda" is not available: onnxruntime-node's CUDA provider library .* \(README "GPU set-up"\)\. Or use --device auto \(falls back to the CPU\) or --device cpu\. \[E_DEVICE\]\n$/,
    );
  });
});
