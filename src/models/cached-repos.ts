import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from './model-cache.js';

/** OWNER/REPO folders in the cache. */
export function cachedRepos(root = cacheRoot()): string[] {
  const dirs = (p: string): string[] => {
    try {
      return readdirSync(p).filter((d) => statSync(join(p, d)).isDirectory());
    } catch {
      return [];
    }
  };
  return dirs(root).flatMap((owner) => dirs(join(root, owner)).map((repo) => `${owner}/${repo}`));
}
