import { createHash } from 'node:crypto';
import { ModelIntegrityError, ModelOfflineError } from '../errors.js';
import { cachedVariants, cacheRoot, isCached, manualCopyHint, readDigest, variantPath } from './model-cache.js';
import { defaultVariant, parseModelName, type Variant } from './model-catalog.js';

/**
 * The cached ONNX file for a model name, without touching the network (the CLI pulls before it
 * gets here; a pipeline file's name must be pulled beforehand). `variant` or, by default, the
 * device's default variant when cached, else any cached variant. Not cached: ModelOfflineError
 * saying how to pull it or copy it in by hand.
 */
export function cachedModelPath(name: string, onGpu: boolean, variant?: Variant): string {
  const ref = parseModelName(name);
  const root = cacheRoot();
  const wanted = variant ?? defaultVariant(onGpu);
  if (isCached(ref, wanted, root)) return variantPath(ref, wanted, root);
  const any = variant === undefined ? cachedVariants(ref, root)[0] : undefined;
  if (any) return any.path;
  throw new ModelOfflineError(
    name,
    `was not pulled (looked in ${root})`,
    `Run: stegostream models pull ${name}${variant ? ` --variant ${variant}` : ''}. ${manualCopyHint(ref, wanted, root)}`,
  );
}

/**
 * Re-checks a file against the SHA-256 kept beside it at download (`file.sha256`). A file copied
 * in by hand has none and is not checked. A mismatch is a ModelIntegrityError saying how to re-fetch.
 */
export function checkCachedDigest(path: string, bytes: Uint8Array): void {
  const expected = readDigest(path);
  if (expected === null) return;
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== expected) {
    throw new ModelIntegrityError(
      path,
      expected,
      actual,
      'The file changed since it was downloaded: run stegostream models pull with the same name (and --variant) to fetch it again.',
    );
  }
}
