import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BadOptionError } from '../errors.js';

export const DEVICES = ['auto', 'cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];

export function parseDevice(value: string): Device {
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new BadOptionError('--device', `one of ${DEVICES.join(', ')}`, value);
}

/** Execution providers this onnxruntime-node build can load (cpu always). */
export function availableProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

/** Provider lists to try, best first, for a device choice. `auto` ends with CPU so it always runs. */
export function providerCandidates(device: Device): string[][] {
  switch (device) {
    case 'cpu':
      return [['cpu']];
    case 'cuda':
      return [['cuda', 'cpu']];
    case 'tensorrt':
      return [['tensorrt', 'cuda', 'cpu']];
    case 'webgpu':
      return [['webgpu', 'cpu']];
    case 'auto': {
      // Only GPU providers whose libraries are installed: trying the others makes ORT print
      // loader errors. WebGPU is opt-in (`--device webgpu`): on a GPU-less host it picks a
      // software adapter slower than the CPU provider.
      const have = availableProviders();
      const gpu = ['tensorrt', 'cuda'].filter((p) => have.includes(p) && providerLibraryPresent(p));
      return [...gpu.map((p) => [p, 'cpu']), ['cpu']];
    }
  }
}

/** Whether onnxruntime-node's CUDA/TensorRT provider library was installed (README "GPU set-up"). */
export function providerLibraryPresent(provider: string): boolean {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    const dir = join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(join(dir, `libonnxruntime_providers_${provider}.so`));
  } catch {
    return false;
  }
}
