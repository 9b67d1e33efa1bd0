/**
 * The README's naming walkthrough runs as written: every line of the block marked
 * `naming-walkthrough` is run, in order, in a folder holding a generated `dive.mp4`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/learning/checkpoint.js';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { runCli, tempDir } from './helpers/cli.js';

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

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
    .map((l) => l.split(/\s+/));
}

describe('README commands', () => {
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
