/**
 * The README's error table and the codes the code throws agree both ways (as fastify keeps its
 * errors and their docs in step): every code in src/errors.ts is documented, and every code the
 * table documents exists.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const read = (p: string): string => readFileSync(fileURLToPath(new URL(p, import.meta.url)), 'utf8');

describe('error codes', () => {
  it('every code in src/errors.ts is in the README table, and every code there is thrown', () => {
    const thrown = new Set([...read('../src/errors.ts').matchAll(/super\(\s*'(E_[A-Z_]+)'/g)].map((m) => m[1] as string));
    const readme = read('../README.md');
    const section = readme.slice(readme.indexOf('\n## Errors'), readme.indexOf('\n## ', readme.indexOf('\n## Errors') + 5));
    const documented = new Set([...section.matchAll(/^\| `(E_[A-Z_]+)` \|/gm)].map((m) => m[1] as string));
    expect(thrown.size).toBeGreaterThan(20);
    expect([...thrown].filter((c) => !documented.has(c)).sort(), 'thrown but not in the README').toEqual([]);
    expect([...documented].filter((c) => !thrown.has(c)).sort(), 'in the README but never thrown').toEqual([]);
  });
});
