import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../src/errors.js';
import { loadCheckpoint, saveCheckpoint } from '../src/learning/checkpoint.js';
import { defaultClassColors, type HeadState } from '../src/learning/head-state.js';
import { initHead } from '../src/learning/stego-head.js';

function state(withHead: boolean): HeadState {
  const C = 12;
  const D = 5;
  const k = 4;
  const weights = withHead ? initHead(C, D, 3) : null;
  const cd = withHead ? D : C;
  const centroids = new Float32Array(k * cd).map((_, i) => Math.sin(i));
  return {
    version: 7,
    backbone: { name: 'dino_vits8', dim: C },
    codeDim: D,
    weights,
    centroids,
    k,
    names: ['water', 'sand', 'class 2', 'fish ünïcode'],
    colors: defaultClassColors(k),
    createdAt: 1_700_000_000_000,
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stego-ckpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectCheckpointError(p: Promise<unknown>, message: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect((err as Error).message).toBe(message);
}

describe('checkpoint', () => {
  it('round-trips a trained head exactly, atomically (no temp file left)', async () => {
    const path = join(dir, 'head.stgh');
    const s = state(true);
    await saveCheckpoint(path, s);
    const back = await loadCheckpoint(path, { dim: 12, k: 4 });
    expect(back.version).toBe(7);
    expect(back.backbone).toEqual({ name: 'dino_vits8', dim: 12 });
    expect(back.names).toEqual(s.names);
    expect(back.colors).toEqual(s.colors);
    expect(back.createdAt).toBe(s.createdAt);
    expect(back.weights).not.toBeNull();
    for (const key of ['linW', 'linB', 'mlp1W', 'mlp1B', 'mlp2W', 'mlp2B'] as const) {
      expect(Array.from(back.weights![key])).toEqual(Array.from(s.weights![key]));
    }
    expect(Array.from(back.centroids)).toEqual(Array.from(s.centroids));
    expect(back.trainedSteps).toBeUndefined();
    expect(await readdir(dir)).toEqual(['head.stgh']);
  });

  it('keeps the steps trained (the learning-rate decay clock)', async () => {
    const path = join(dir, 'steps.stgh');
    await saveCheckpoint(path, { ...state(true), trainedSteps: 1234 });
    expect((await loadCheckpoint(path)).trainedSteps).toBe(1234);
    await rm(path);
  });

  it('round-trips a raw probe (no head weights, centroids in feature space)', async () => {
    const path = join(dir, 'probe.stgh');
    await saveCheckpoint(path, state(false));
    const back = await loadCheckpoint(path);
    expect(back.weights).toBeNull();
    expect(back.centroids.length).toBe(4 * 12);
  });

  it('overwrites an existing checkpoint in place', async () => {
    const path = join(dir, 'over.stgh');
    await saveCheckpoint(path, state(true));
    await saveCheckpoint(path, { ...state(true), version: 8 });
    expect((await loadCheckpoint(path)).version).toBe(8);
  });

  it('names a file that is not a checkpoint', async () => {
    const path = join(dir, 'notes.txt');
    await writeFile(path, 'hello, this is not a head');
    await expectCheckpointError(
      loadCheckpoint(path),
      `Checkpoint "${path}" cannot be used: it is not a stegostream head checkpoint (no "STGSHEAD" signature at its start)`,
    );
  });

  it('names a truncated file', async () => {
    const path = join(dir, 'trunc.stgh');
    await saveCheckpoint(path, state(true));
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 100));
    await expectCheckpointError(
      loadCheckpoint(path),
      `Checkpoint "${path}" cannot be used: the file is truncated (${bytes.length - 100} of ${bytes.length} bytes)`,
    );
  });

  it('names a corrupt file (one flipped bit in the weights) by its checksum', async () => {
    const path = join(dir, 'corrupt.stgh');
    await saveCheckpoint(path, state(true));
    const bytes = await readFile(path);
    bytes[bytes.length - 200]! ^= 0x10;
    await writeFile(path, bytes);
    await expectCheckpointError(
      loadCheckpoint(path),
      `Checkpoint "${path}" cannot be used: it is corrupt: checksum mismatch (the file was damaged or modified after it was written)`,
    );
  });

  it('names a backbone dimension mismatch', async () => {
    const path = join(dir, 'dim.stgh');
    await saveCheckpoint(path, state(true));
    await expectCheckpointError(
      loadCheckpoint(path, { dim: 96, k: 4 }),
      `Checkpoint "${path}" cannot be used: checkpoint was trained on a 12-dim backbone, this run uses 96. ` +
        'Use the backbone it was trained with, or start without --head to learn a new one',
    );
  });

  it('names a class count mismatch', async () => {
    const path = join(dir, 'k.stgh');
    await saveCheckpoint(path, state(true));
    await expectCheckpointError(
      loadCheckpoint(path, { dim: 12, k: 6 }),
      `Checkpoint "${path}" cannot be used: checkpoint has 4 classes, this run asks for 6 (-k or learning.classes): leave the count out (auto) to use the checkpoint's 4, or train a new head`,
    );
  });

  it('names a missing file and an empty one', async () => {
    const missing = join(dir, 'nope.stgh');
    await expectCheckpointError(
      loadCheckpoint(missing),
      `Checkpoint "${missing}" cannot be used: no such file. Check the path, or start without it to learn a new head`,
    );
    const empty = join(dir, 'empty.stgh');
    await writeFile(empty, '');
    await expectCheckpointError(
      loadCheckpoint(empty),
      `Checkpoint "${empty}" cannot be used: it is not a stegostream head checkpoint (no "STGSHEAD" signature at its start)`,
    );
  });

  it('fails to save into a missing folder with a CheckpointError and leaves nothing behind', async () => {
    const path = join(dir, 'no-such-dir', 'head.stgh');
    const err = await saveCheckpoint(path, state(true)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/^Checkpoint ".*head\.stgh" cannot be used: it cannot be written \(ENOENT/);
  });
});
