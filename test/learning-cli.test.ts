import { describe, expect, it, beforeAll } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers/cli.js';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { loadCheckpoint } from '../src/learning/checkpoint.js';

const FAST = ['--learn-frames', '8', '--train-steps', '5', '--classes', '5'];
/**
 * Every trained head is kept: the dispersion guard may turn a round away (patches are sampled at
 * random, so about one round in ten on this short clip), and a run of 16 frames has one round.
 */
const KEEP_EVERY_ROUND = ['--max-dispersion-ratio', '0'];

describe('learning from the CLI: checkpoints, resume, freeze, names', () => {
  let dir: string;
  let video: string;

  beforeAll(async () => {
    dir = await tempDir();
    video = join(dir, 'dive.mp4');
    await writeSceneVideo(video, { width: 256, height: 144, seed: 4, frames: 16, fps: 8 });
  });

  it('writes a checkpoint that --resume picks up, with names kept', async () => {
    const ckpt = join(dir, 'state', 'head.ckpt');
    const names = join(dir, 'names.txt');
    writeFileSync(names, 'water\nsand\nrock\ncoral\nfish\n');
    const r1 = await runCli([
      'process',
      video,
      '--checkpoint',
      ckpt,
      '--names',
      names,
      '--stats',
      join(dir, 'a.csv'),
      ...FAST,
      ...KEEP_EVERY_ROUND,
    ]);
    expect(r1.stderr).toBe(r1.stderr); // keep the output for debugging failures
    expect(r1.code).toBe(0);
    expect(existsSync(ckpt)).toBe(true);
    const s1 = await loadCheckpoint(ckpt);
    expect(s1.version).toBeGreaterThanOrEqual(2);
    expect(s1.names).toEqual(['water', 'sand', 'rock', 'coral', 'fish']);
    expect(readFileSync(join(dir, 'a.csv'), 'utf8').split('\n')[0]).toBe(
      'stream,seq,pts,time,file,head_version,water,sand,rock,coral,fish',
    );
    // No temp files left next to it (atomic write = temp + rename).
    expect(readdirSync(join(dir, 'state'))).toEqual(['head.ckpt']);

    const r2 = await runCli([
      'process',
      video,
      '--checkpoint',
      ckpt,
      '--resume',
      '--train-every',
      '4',
      '--stats',
      join(dir, 'b.csv'),
      ...FAST,
      ...KEEP_EVERY_ROUND,
    ]);
    expect(r2.code).toBe(0);
    const s2 = await loadCheckpoint(ckpt);
    expect(s2.version).toBeGreaterThan(s1.version);
    expect(s2.names).toEqual(s1.names);
    const versions = readFileSync(join(dir, 'b.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[5]));
    expect(versions[0]).toBe(s1.version);
  });

  it('names a bad --max-dispersion-ratio, --lr-decay-steps, --learn-cpu, --refine-eps or --refine-radius', async () => {
    const ratio = await runCli(['process', video, '--stats', join(dir, 'x.csv'), '--max-dispersion-ratio', '0.5']);
    expect(ratio.code).not.toBe(0);
    expect(ratio.stderr).toContain('Expected number >= 1, or 0 for none, for --max-dispersion-ratio but received "0.5"');
    const decay = await runCli(['process', video, '--stats', join(dir, 'x.csv'), '--lr-decay-steps', 'ten']);
    expect(decay.code).not.toBe(0);
    expect(decay.stderr).toContain('Expected non-negative integer for --lr-decay-steps but received "ten"');
    const cpu = await runCli(['process', video, '--stats', join(dir, 'x.csv'), '--learn-cpu', '1.5']);
    expect(cpu.code).not.toBe(0);
    expect(cpu.stderr).toContain('Expected number in (0, 1] for --learn-cpu but received "1.5"');
    const eps = await runCli(['process', video, '--stats', join(dir, 'x.csv'), '--refine-eps', '0']);
    expect(eps.code).not.toBe(0);
    expect(eps.stderr).toContain('Expected number above 0 for --refine-eps but received "0"');
    const radius = await runCli(['process', video, '--stats', join(dir, 'x.csv'), '--refine-radius', '-3']);
    expect(radius.code).not.toBe(0);
    expect(radius.stderr).toContain('--refine-radius');
  });

  it('--head FILE --freeze --threads 1 gives the same output byte for byte', async () => {
    const ckpt = join(dir, 'frozen.ckpt');
    expect((await runCli(['process', video, '--checkpoint', ckpt, ...FAST])).code).toBe(0);
    const run = async (tag: string): Promise<{ stats: string; masks: Buffer[] }> => {
      const masks = join(dir, `masks-${tag}`);
      const stats = join(dir, `frozen-${tag}.csv`);
      // One ONNX Runtime thread: multi-threaded sums may differ in the last bit between runs under load.
      const r = await runCli([
        'process',
        video,
        '--head',
        ckpt,
        '--freeze',
        '--threads',
        '1',
        '--masks',
        masks,
        '--stats',
        stats,
        '--classes',
        '5',
      ]);
      expect(r.code).toBe(0);
      return {
        stats: readFileSync(stats, 'utf8'),
        masks: readdirSync(masks)
          .filter((f) => f.endsWith('.png'))
          .sort()
          .map((f) => readFileSync(join(masks, f))),
      };
    };
    const a = await run('a');
    const b = await run('b');
    expect(a.masks.length).toBe(16);
    expect(b.stats).toBe(a.stats);
    b.masks.forEach((m, i) => expect(m.equals(a.masks[i] as Buffer)).toBe(true));
  });

  it('refuses a corrupt or mismatched checkpoint with a message naming the problem', async () => {
    const bad = join(dir, 'bad.ckpt');
    writeFileSync(bad, 'this is not a checkpoint');
    const r1 = await runCli(['process', video, '--head', bad, '--freeze', '--classes', '5']);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(new RegExp(`Checkpoint ".*bad\\.ckpt" cannot be used: .*\\[E_CHECKPOINT\\]`));

    const good = join(dir, 'k5.ckpt');
    expect((await runCli(['process', video, '--checkpoint', good, ...FAST])).code).toBe(0);
    const r2 = await runCli(['process', video, '--head', good, '--freeze', '--classes', '7']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/class/);
    expect(r2.stderr).toContain('E_CHECKPOINT');

    const truncated = join(dir, 'truncated.ckpt');
    const bytes = readFileSync(good);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r3 = await runCli(['process', video, '--head', truncated, '--freeze', '--classes', '5']);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain('E_CHECKPOINT');
  });

  it('--freeze without a head is refused', async () => {
    const r = await runCli(['process', video, '--freeze']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Expected a head to freeze: add --head FILE or --resume for --freeze but received true of type boolean');
  });
});
