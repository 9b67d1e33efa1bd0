import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BadOptionError } from '../errors.js';

export const DEVICES = ['auto', 'cpu', 'cuda', 'tensorrt', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];

/** Where a missing GPU provider is explained (README section, from docs/gpu.md). */
export const GPU_SETUP = 'README "GPU set-up"';

/** The command that installs onnxruntime-node's CUDA/TensorRT provider libraries (docs/gpu.md). */
export const CUDA_INSTALL_COMMAND = 'ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node';

/** Providers loaded from a separate library that the set-up (ONNXRUNTIME_NODE_INSTALL=skip) does not download. */
const DOWNLOADED_PROVIDERS = ['cuda', 'tensorrt'] as const;

export function parseDevice(value: string): Device {
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new BadOptionError('--device', `one of ${DEVICES.join(', ')}`, value);
}

/** Execution providers this onnxruntime-node build lists (cpu always), whether or not they load here. */
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

/** Whether a device choice ends on a GPU provider here (hub models default to fp16 there). */
export function runsOnGpu(device: Device): boolean {
  if (device === 'cpu') return false;
  if (device === 'auto') return providerCandidates('auto')[0]?.[0] !== 'cpu';
  return true;
}

/** The directory onnxruntime-node loads its native libraries from, or undefined if not found. */
export function providerLibraryDir(): string | undefined {
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    return join(dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** File name of a provider's shared library on this platform. */
export function providerLibraryName(provider: string): string {
  if (process.platform === 'win32') return `onnxruntime_providers_${provider}.dll`;
  return `libonnxruntime_providers_${provider}.${process.platform === 'darwin' ? 'dylib' : 'so'}`;
}

/** Whether onnxruntime-node's CUDA/TensorRT provider library was installed (README "GPU set-up"). */
export function providerLibraryPresent(provider: string): boolean {
  const dir = providerLibraryDir();
  return dir !== undefined && existsSync(join(dir, providerLibraryName(provider)));
}

/**
 * Why a GPU provider cannot even be tried here, or undefined when it can: not in this build of
 * onnxruntime-node, or its library was not downloaded at install time. Says how to fix it.
 */
export function providerMissingReason(provider: string): string | undefined {
  const have = availableProviders();
  if (!have.includes(provider)) {
    return `this onnxruntime-node build has no ${provider} execution provider on ${process.platform}-${process.arch} (it lists ${have.join(', ')})`;
  }
  if ((DOWNLOADED_PROVIDERS as readonly string[]).includes(provider) && !providerLibraryPresent(provider)) {
    const needs = provider === 'cuda' ? 'CUDA 12, cuDNN 9' : 'CUDA 12, cuDNN 9, TensorRT 10';
    return (
      `onnxruntime-node's ${provider === 'cuda' ? 'CUDA' : 'TensorRT'} provider library (${providerLibraryName(provider)}) is not installed: ` +
      `the set-up skips that download. On a machine with an NVIDIA GPU (${needs}), run ${CUDA_INSTALL_COMMAND} (${GPU_SETUP})`
    );
  }
  return undefined;
}
