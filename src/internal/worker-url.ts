import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A worker script beside the calling module (`here` is its `import.meta.url`, `dir` its folder
 * under src/); when running from TypeScript sources (tests), the built copy in dist/ (`npm test`
 * builds first).
 */
export function workerUrl(here: string, file: string, dir: string): URL {
  const beside = new URL(`./${file}`, here);
  if (existsSync(fileURLToPath(beside))) return beside;
  return new URL(`../../dist/${dir}/${file}`, here);
}
