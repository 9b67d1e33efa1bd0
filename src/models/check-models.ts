import { cachedVariants, cacheRoot, fileSha256 } from './model-cache.js';
import { KNOWN_MODELS, parseModelName, type Variant } from './model-catalog.js';
import { cachedRepos } from './cached-repos.js';

/** One cached model file as `doctor` reports it. */
export interface CachedModelReport {
  readonly name: string;
  readonly variant: Variant;
  readonly path: string;
  readonly bytes: number;
  /** ok: matches the digest kept at download; damaged: it does not; unchecked: copied in by hand (no digest). */
  readonly integrity: 'ok' | 'damaged' | 'unchecked';
  /** Whether it would run with the providers that load here, and on which. */
  readonly runs: boolean;
  readonly detail: string;
}

export interface ModelsReport {
  readonly cache: string;
  readonly models: readonly CachedModelReport[];
}

/**
 * Every model file in the cache, re-hashed against its kept digest, and whether it runs here:
 * fp32 and int8 run on the CPU provider; fp16 is made for a GPU provider (ONNX Runtime's CPU
 * kernels for float16 are sparse). `gpuProviders` are the GPU providers that loaded in doctor.
 */
export async function checkCachedModels(gpuProviders: readonly string[]): Promise<ModelsReport> {
  const root = cacheRoot();
  const names = new Set<string>(KNOWN_MODELS.map((m) => m.name));
  for (const repo of cachedRepos(root)) if (!KNOWN_MODELS.some((m) => m.repo === repo)) names.add(`hub:${repo}`);
  const models: CachedModelReport[] = [];
  for (const name of names) {
    for (const c of cachedVariants(parseModelName(name), root)) {
      const integrity = c.sha256 === null ? 'unchecked' : (await fileSha256(c.path)) === c.sha256 ? 'ok' : 'damaged';
      const gpu = gpuProviders[0];
      const runs = integrity !== 'damaged' && (c.variant !== 'fp16' || gpu !== undefined);
      const where =
        c.variant === 'fp16'
          ? gpu !== undefined
            ? `runs on ${gpu}`
            : 'made for a GPU provider, none loads here: use --variant fp32 or int8 on this machine'
          : c.variant === 'int8'
            ? 'runs on the CPU provider (int8 kernels)'
            : `runs on ${gpu ?? 'cpu'}`;
      const detail =
        integrity === 'damaged'
          ? `damaged (SHA-256 differs from the download's): run stegostream models pull ${name} --variant ${c.variant}`
          : `${integrity === 'ok' ? 'SHA-256 ok' : 'no digest (copied in by hand), not checked'}; ${where}`;
      models.push({ name, variant: c.variant, path: c.path, bytes: c.bytes, integrity, runs, detail });
    }
  }
  return { cache: root, models };
}
