/**
 * The README's naming walkthrough runs as written: every line of the block marked
 * `naming-walkthrough` is run, in order, in a folder holding a generated `dive.mp4`.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/learning/checkpoint.js';
import { writeSceneImages, writeSceneVideo } from '../src/scene/write-scene-files.js';
import { runCli, tempDir } from './helpers/cli.js';

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** A command line split into words as a POSIX shell would (quotes kept together, a trailing # comment dropped). */
function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else word = (word ?? '') + ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= '';
    } else if (/\s/.test(ch)) {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) break;
    else word = (word ?? '') + ch;
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** The commands of the sh block after `marker`, one per line. */
function commandsAfter(marker: string): string[][] {
  const at = README.indexOf(marker);
  expect(at, `README has ${marker}`).toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(at));
  expect(block).not.toBeNull();
  return (block?.[1] ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map(words);
}

/** Runs each command of a block in `dir`, as written: exit 0 and no error on stderr. */
async function runBlock(marker: string, dir: string): Promise<void> {
  const commands = commandsAfter(marker);
  expect(commands.length).toBeGreaterThanOrEqual(3);
  for (const [bin, ...args] of commands) {
    if (bin === 'mkdir' && args[0] === '-p') {
      for (const d of args.slice(1)) mkdirSync(join(dir, d), { recursive: true });
      continue;
    }
    expect(bin).toBe('stegostream');
    const r = await runCli(args, dir);
    // As written: progress lines may come on stderr, errors may not.
    expect(r.stderr, `stegostream ${args.join(' ')}`).not.toMatch(/error|\[E_/i);
    expect(r.code, `stegostream ${args.join(' ')}`).toBe(0);
  }
}

describe('README commands', () => {
  it('the process examples run as written', async () => {
    const dir = await tempDir('stegostream-readme-process-');
    const clip = { width: 256, height: 144, frames: 20, fps: 10 };
    await writeSceneVideo(join(dir, 'dive.mp4'), { ...clip, seed: 3 });
    await writeSceneVideo(join(dir, 'chapters', 'GX010001.mp4'), { ...clip, seed: 4 });
    await writeSceneVideo(join(dir, 'chapters', 'GX020001.mp4'), { ...clip, seed: 5 });
    await writeSceneVideo(join(dir, 'cam2', 'C0001.MOV'), { ...clip, seed: 6 });
    await writeSceneImages(join(dir, 'photos'), { width: 160, height: 96, seed: 2, frames: 3 });
    renameSync(join(dir, 'photos', 'images'), join(dir, 'reef-photos'));
    await runBlock('process-examples', dir);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(
      expect.arrayContaining(['C0001.csv', 'C0001-seg.mp4', 'GX010001.csv', 'GX020001.csv', 'GX010001-seg.mp4']),
    );
  });

  it('the "Naming your classes" walkthrough runs as written', async () => {
    const dir = await tempDir('stegostream-readme-');
    await writeSceneVideo(join(dir, 'dive.mp4'), { width: 320, height: 180, seed: 3, frames: 40, fps: 10 });
    const commands = commandsAfter('naming-walkthrough');
    expect(commands.length).toBeGreaterThanOrEqual(4);
    for (const [bin, ...args] of commands) {
      expect(bin).toBe('stegostream');
      const r = await runCli(args, dir);
      // As written: progress lines may come on stderr, errors may not.
      expect(r.stderr, `stegostream ${args.join(' ')}`).not.toMatch(/error|\[E_/i);
      expect(r.code, `stegostream ${args.join(' ')}`).toBe(0);
    }
    const head = await loadCheckpoint(join(dir, 'dive-head.ckpt'));
    expect(head.names.slice(0, 3)).toEqual(['water', 'sand', 'rock']);
    expect(readFileSync(join(dir, 'named.csv'), 'utf8').split('\n')[0]).toMatch(
      /^stream,seq,pts,time,file,head_version,water,sand,rock(,|$)/,
    );
  });
});
