import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_FILES, VARIANT_FILES, VARIANTS, type ModelRef, type Variant } from './model-catalog.js';

/** Suffix of the file holding a cached file's SHA-256 (hex), written when the download verified. */
export const DIGEST_SUFFIX = '.sha256';
/** Suffix of a download in progress: renamed to the real name only once complete and verified. */
export const PART_SUFFIX = '.part';

/**
 * Where models are cached: `$STEGOSTREAM_CACHE`, else `$XDG_CACHE_HOME/stegostream/models`, else
 * `~/.cache/stegostream/models`. Read on every call so tests and users can point it elsewhere.
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env['STEGOSTREAM_CACHE']) return env['STEGOSTREAM_CACHE'];
  const xdg = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(xdg, 'stegostream', 'models');
}

/** A repository's folder in the cache: files keep their repository paths (`onnx/model.onnx`). */
export function modelDir(ref: ModelRef, root = cacheRoot()): string {
  const [owner, repo] = ref.repo.split('/') as [string, string];
  return join(root, owner, repo);
}

/** The cached ONNX file of a variant. */
export function variantPath(ref: ModelRef, variant: Variant, root = cacheRoot()): string {
  return join(modelDir(ref, root), VARIANT_FILES[variant]);
}

/** Whether the JSON files and the variant's ONNX file are all in the cache. */
export function isCached(ref: ModelRef, variant: Variant, root = cacheRoot()): boolean {
  const dir = modelDir(ref, root);
  return [...CONFIG_FILES, VARIANT_FILES[variant]].every((f) => existsSync(join(dir, f)));
}

export interface CachedVariant {
  readonly variant: Variant;
  readonly path: string;
  readonly bytes: number;
  /** The digest kept beside the file, or null when the file was copied in by hand. */
  readonly sha256: string | null;
}

/** The variants of a model whose ONNX file is in the cache (with the JSON files). */
export function cachedVariants(ref: ModelRef, root = cacheRoot()): CachedVariant[] {
  const out: CachedVariant[] = [];
  for (const variant of VARIANTS) {
    if (!isCached(ref, variant, root)) continue;
    const path = variantPath(ref, variant, root);
    out.push({ variant, path, bytes: statSync(path).size, sha256: readDigest(path) });
  }
  return out;
}

/** The SHA-256 kept beside a file, or null. */
export function readDigest(path: string): string | null {
  try {
    const d = readFileSync(path + DIGEST_SUFFIX, 'utf8')
      .trim()
      .toLowerCase();
    return /^[0-9a-f]{64}$/.test(d) ? d : null;
  } catch {
    return null;
  }
}

/** SHA-256 of a file, hex, streamed (model files are hundreds of MB). */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What to do by hand when the cache cannot be filled over the network. */
export function manualCopyHint(ref: ModelRef, variant: Variant, root = cacheRoot()): string {
  const files = [...CONFIG_FILES, VARIANT_FILES[variant]].join(', ');
  return (
    `To install it by hand, download ${files} from https://huggingface.co/${ref.repo} on a machine with internet ` +
    `and copy them into ${modelDir(ref, root)}/ keeping their paths (the .onnx file in onnx/); ` +
    'or run stegostream models pull there and copy the whole cache folder ($STEGOSTREAM_CACHE or ~/.cache/stegostream/models).'
  );
}
