import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { firstValueFrom, take, toArray } from 'rxjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EncodeError } from '../src/errors.js';
import { FlowGate } from '../src/internal/flow-gate.js';
import { createScene, type SceneFrame } from '../src/scene/render-scene.js';
import { SCENE_CLASS_NAMES, SCENE_CLASSES, SceneClass } from '../src/scene/scene-classes.js';
import { writeSceneImages, writeSceneVideo } from '../src/scene/write-scene-files.js';
import { sceneSource } from '../src/sources/scene-source.js';
import type { Frame } from '../src/types.js';

const W = 224;
const H = 128;
const CLASS_COUNT = SCENE_CLASSES.length;

function fractions(frame: SceneFrame): number[] {
  const counts = new Array<number>(CLASS_COUNT).fill(0);
  for (const label of frame.labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts.map((c) => c / frame.labels.length);
}

function meanColour(frame: SceneFrame, label: number): [number, number, number] {
  const sum: [number, number, number] = [0, 0, 0];
  let n = 0;
  frame.labels.forEach((l, i) => {
    if (l !== label) return;
    sum[0] += frame.rgb[i * 3]!;
    sum[1] += frame.rgb[i * 3 + 1]!;
    sum[2] += frame.rgb[i * 3 + 2]!;
    n++;
  });
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}

function distance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(...a.map((v, i) => v - b[i]!));
}

describe('scene classes', () => {
  it('has stable ids 0..n-1 with names', () => {
    expect(SCENE_CLASS_NAMES).toEqual(['water', 'sand', 'rock', 'coral', 'fish']);
    SCENE_CLASSES.forEach((c, i) => expect(c.id).toBe(i));
    expect(SceneClass.coral).toBe(3);
  });
});

describe('createScene', () => {
  it('gives the same bytes for the same seed, and another layout for another seed', () => {
    const a = createScene({ width: W, height: H, seed: 3 }).render(17);
    const b = createScene({ width: W, height: H, seed: 3 }).render(17);
    expect(a.rgb.equals(b.rgb)).toBe(true);
    expect(Buffer.from(a.labels).equals(Buffer.from(b.labels))).toBe(true);

    const other = createScene({ width: W, height: H, seed: 4 }).render(17);
    let differ = 0;
    for (let i = 0; i < a.labels.length; i++) if (a.labels[i] !== other.labels[i]) differ++;
    expect(differ / a.labels.length).toBeGreaterThan(0.05);
  });

  it('covers every class with a sensible share in every frame, across seeds', () => {
    const mean = new Array<number>(CLASS_COUNT).fill(0);
    let n = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const scene = createScene({ width: W, height: H, seed, variant: seed % 2 === 0 ? 'hard' : 'easy' });
      expect(scene.classNames).toEqual(SCENE_CLASS_NAMES);
      for (const index of [0, 110, 240, 370]) {
        const frame = scene.render(index);
        expect(frame.labels.every((l) => l < CLASS_COUNT)).toBe(true);
        const [water, sand, rock, coral, fish] = fractions(frame) as [number, number, number, number, number];
        expect(water, `water, seed ${seed} frame ${index}`).toBeGreaterThan(0.25);
        expect(water).toBeLessThan(0.6);
        expect(sand, `sand, seed ${seed} frame ${index}`).toBeGreaterThan(0.2);
        expect(sand).toBeLessThan(0.55);
        expect(rock, `rock, seed ${seed} frame ${index}`).toBeGreaterThan(0.02);
        expect(rock).toBeLessThan(0.2);
        expect(coral, `coral, seed ${seed} frame ${index}`).toBeGreaterThan(0.02);
        expect(coral).toBeLessThan(0.2);
        // Fish are large enough (about 3% of a frame on average) to be a class of their own.
        expect(fish, `fish, seed ${seed} frame ${index}`).toBeLessThan(0.07);
        fractions(frame).forEach((f, i) => (mean[i] = mean[i]! + f));
        n++;
      }
    }
    const [water, sand, rock, coral, fish] = mean.map((m) => m / n) as [number, number, number, number, number];
    expect(water).toBeGreaterThan(0.3);
    expect(water).toBeLessThan(0.5);
    expect(sand).toBeGreaterThan(0.25);
    expect(sand).toBeLessThan(0.45);
    expect(rock).toBeGreaterThan(0.05);
    expect(rock).toBeLessThan(0.15);
    expect(coral).toBeGreaterThan(0.05);
    expect(coral).toBeLessThan(0.15);
    expect(fish).toBeGreaterThan(0.02);
    expect(fish).toBeLessThan(0.045);
  });

  it('labels exactly what painted each pixel: only coral pixels (and their edges) change with coral colour', () => {
    // Easy and hard differ only in coral colour, so the labels must be the same and the colour
    // may differ only on coral pixels or close to them: an edge pixel under half covered by coral,
    // possibly itself under the smooth edge of a rock, is labelled by what covers it most.
    const easy = createScene({ width: W, height: H, seed: 8, variant: 'easy' }).render(40);
    const hard = createScene({ width: W, height: H, seed: 8, variant: 'hard' }).render(40);
    expect(Buffer.from(easy.labels).equals(Buffer.from(hard.labels))).toBe(true);
    const nearCoral = (i: number): boolean => {
      const x = i % W;
      const y = Math.floor(i / W);
      for (let dy = -2; dy <= 2; dy++) {
        for (let dx = -2; dx <= 2; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < W && yy < H && easy.labels[yy * W + xx] === SceneClass.coral) return true;
        }
      }
      return false;
    };
    let coral = 0;
    let coralChanged = 0;
    for (let i = 0; i < easy.labels.length; i++) {
      const changed = distance([...easy.rgb.subarray(i * 3, i * 3 + 3)], [...hard.rgb.subarray(i * 3, i * 3 + 3)]) > 0;
      if (easy.labels[i] === SceneClass.coral) {
        coral++;
        if (changed) coralChanged++;
      } else if (changed) {
        expect(nearCoral(i), `pixel ${i % W},${Math.floor(i / W)} changed but is not coral`).toBe(true);
      }
    }
    expect(coral).toBeGreaterThan(0);
    expect(coralChanged / coral).toBeGreaterThan(0.95);
  });

  it('hard gives coral the mean colour of sand; easy keeps them apart', () => {
    for (const seed of [11, 12, 13]) {
      const easy = createScene({ width: W, height: H, seed, variant: 'easy' }).render(60);
      const hard = createScene({ width: W, height: H, seed, variant: 'hard' }).render(60);
      const hardGap = distance(meanColour(hard, SceneClass.coral), meanColour(hard, SceneClass.sand));
      const easyGap = distance(meanColour(easy, SceneClass.coral), meanColour(easy, SceneClass.sand));
      expect(hardGap, `seed ${seed}`).toBeLessThan(20);
      expect(easyGap, `seed ${seed}`).toBeGreaterThan(50);
    }
  });

  it('changes over time: fish swim and the camera pans', () => {
    const scene = createScene({ width: W, height: H, seed: 5 });
    const a = scene.render(0);
    const b = scene.render(15);
    const c = scene.render(300);
    const fishMoved = a.labels.some((l, i) => (l === SceneClass.fish) !== (b.labels[i] === SceneClass.fish));
    expect(fishMoved).toBe(true);
    // Ten seconds on, the camera has moved: the seafloor outline is elsewhere.
    let differ = 0;
    for (let i = 0; i < a.labels.length; i++) {
      const still = (l: number | undefined): boolean => l !== SceneClass.fish;
      if (still(a.labels[i]) && still(c.labels[i]) && a.labels[i] !== c.labels[i]) differ++;
    }
    expect(differ / a.labels.length).toBeGreaterThan(0.02);
  });

  it('renders a run of 448x256 frames, each whole and every pixel labelled', () => {
    const scene = createScene({ width: 448, height: 256, seed: 2 });
    for (let i = 0; i < 20; i++) {
      const frame = scene.render(100 + i);
      expect(frame.rgb.length).toBe(448 * 256 * 3);
      expect(frame.labels.length).toBe(448 * 256);
      expect(frame.labels.every((l) => l < CLASS_COUNT)).toBe(true);
    }
  });

  it('renders at odd and tiny sizes', () => {
    for (const [width, height] of [
      [16, 16],
      [33, 17],
    ] as const) {
      const frame = createScene({ width, height, seed: 1 }).render(2);
      expect(frame.rgb.length).toBe(width * height * 3);
      expect(frame.labels.length).toBe(width * height);
    }
  });

  it('rejects bad options with the option named', () => {
    expect(() => createScene({ width: 1.5, height: H, seed: 1 })).toThrow(
      'Expected integer between 16 and 8192 for width but received 1.5 of type number',
    );
    expect(() => createScene({ width: W, height: H, seed: 1, variant: 'medium' as 'easy' })).toThrow(
      'Expected "easy" or "hard" for variant but received "medium" of type string',
    );
    expect(() => createScene({ width: W, height: H, seed: 1, fps: 0 })).toThrow(
      'Expected number above 0 and at most 1000 for fps but received 0 of type number',
    );
    expect(() => createScene({ width: W, height: H, seed: 1 }).render(-1)).toThrow(
      'Expected integer >= 0 for frameIndex but received -1 of type number',
    );
  });
});

describe('scene files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scene-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writeSceneImages writes RGB images and grey masks holding the class ids', async () => {
    const options = { width: 96, height: 64, seed: 6, variant: 'hard' as const, frames: 5, every: 2 };
    const progress: number[] = [];
    const files = await writeSceneImages(dir, { ...options, onProgress: (n) => progress.push(n) });
    expect(files.images.map((p) => p.slice(dir.length))).toEqual(['0000', '0002', '0004'].map((n) => join('/images', `frame_${n}.png`)));
    expect(files.masks.map((p) => p.slice(dir.length))).toEqual(['0000', '0002', '0004'].map((n) => join('/masks', `frame_${n}.png`)));
    expect(progress).toEqual([1, 2, 3]);
    const expected = createScene(options).render(4);
    const image = await sharp(files.images[2]!).raw().toBuffer({ resolveWithObject: true });
    expect(image.info).toMatchObject({ width: 96, height: 64, channels: 3 });
    expect(image.data.equals(expected.rgb)).toBe(true);
    // PNG header: bit depth 8, colour type 0 (greyscale).
    const header = await readFile(files.masks[2]!);
    expect([header[24], header[25]]).toEqual([8, 0]);
    const mask = await sharp(header).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    expect(mask.info).toMatchObject({ width: 96, height: 64, channels: 1 });
    expect(mask.data.equals(Buffer.from(expected.labels))).toBe(true);
  });

  it('writeSceneVideo encodes the requested frames at the requested size', async () => {
    const path = join(dir, 'video', 'scene.mp4');
    await writeSceneVideo(path, { width: 160, height: 96, seed: 2, frames: 24, fps: 24 });
    const { stdout } = await promisify(execFile)(process.env['FFPROBE_PATH'] ?? 'ffprobe', [
      ...['-v', 'error', '-count_frames', '-select_streams', 'v:0'],
      ...['-show_entries', 'stream=width,height,nb_read_frames,codec_name,pix_fmt', '-of', 'json', path],
    ]);
    const stream = (JSON.parse(stdout) as { streams: Array<Record<string, unknown>> }).streams[0];
    expect(stream).toMatchObject({
      width: 160,
      height: 96,
      nb_read_frames: '24',
      codec_name: 'h264',
      pix_fmt: 'yuv420p',
    });
  });

  it('writeSceneVideo checks sizes against the pixel format and reports ffmpeg failures', async () => {
    await expect(writeSceneVideo(join(dir, 'odd.mp4'), { width: 161, height: 96, seed: 2, frames: 2 })).rejects.toThrow(
      'Expected even integer for pixFmt yuv420p for width but received 161 of type number',
    );
    const failed = writeSceneVideo(join(dir, 'scene.notaformat'), { width: 64, height: 48, seed: 2, frames: 3 });
    await expect(failed).rejects.toBeInstanceOf(EncodeError);
    await expect(failed).rejects.toThrow(/Encoding ".*scene\.notaformat" failed\. ffmpeg said: .*output format/);
  });
});

describe('sceneSource', () => {
  const small = { width: 64, height: 48, seed: 9 } as const;

  it('emits the requested frames with seq, pts and the scene pixels, then completes', async () => {
    const frames = await firstValueFrom(sceneSource({ ...small, frames: 4, fps: 10, streamId: 'reef' }).pipe(toArray()));
    expect(frames.map((f) => [f.streamId, f.seq, f.pts, f.width, f.height])).toEqual([
      ['reef', 0, 0, 64, 48],
      ['reef', 1, 0.1, 64, 48],
      ['reef', 2, 0.2, 64, 48],
      ['reef', 3, 0.3, 64, 48],
    ]);
    expect(frames[3]!.rgb.equals(createScene({ ...small, fps: 10 }).render(3).rgb)).toBe(true);
    expect(frames.every((f) => Math.abs(f.capturedAt - Date.now()) < 60_000)).toBe(true);
  });

  it('loops a clip: pixels repeat, seq and pts keep counting', async () => {
    const frames = await firstValueFrom(sceneSource({ ...small, frames: 3, loop: true }).pipe(take(5), toArray()));
    expect(frames.map((f) => f.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(frames[3]!.rgb.equals(frames[0]!.rgb)).toBe(true);
    expect(frames[4]!.pts).toBeCloseTo(4 / 30);
  });

  it('waits for a gate credit before each frame', async () => {
    const gate = new FlowGate(2);
    const seen: Frame[] = [];
    let notify: (() => void) | undefined;
    const subscription = sceneSource({ ...small, loop: true, gate }).subscribe((f) => {
      seen.push(f);
      notify?.();
    });
    const until = (n: number): Promise<void> =>
      new Promise((resolve) => {
        notify = () => seen.length >= n && resolve();
        notify();
      });
    await until(2);
    // Nothing released: no third frame however long we wait.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(seen.length).toBe(2);
    gate.release();
    await until(3);
    expect(seen.map((f) => f.seq)).toEqual([0, 1, 2]);
    subscription.unsubscribe();
  });

  it('paces frames at fps in realtime mode', async () => {
    const start = performance.now();
    const frames = await firstValueFrom(sceneSource({ ...small, frames: 5, fps: 25, realtime: true }).pipe(toArray()));
    expect(frames).toHaveLength(5);
    // Frame 4 is due 160 ms after frame 0.
    expect(performance.now() - start).toBeGreaterThanOrEqual(150);
  });

  it('stops on unsubscribe: no more frames, no timers left', async () => {
    // Only the source's own timers count (the test runner keeps timers of its own): those made
    // while code of the subscription ran, told apart by an AsyncLocalStorage mark.
    const mark = new AsyncLocalStorage<'scene'>();
    const pending = new Set<number>();
    let unsubscribed = false;
    let firedAfter = 0;
    const hook = createHook({
      init: (id, type) => {
        if ((type === 'Timeout' || type === 'Immediate') && mark.getStore() === 'scene') pending.add(id);
      },
      before: (id) => {
        if (unsubscribed && pending.has(id)) firedAfter++;
      },
      destroy: (id) => pending.delete(id),
    }).enable();
    try {
      const seen: number[] = [];
      await new Promise<void>((resolve) => {
        const subscription = mark.run('scene', () =>
          sceneSource({ ...small, loop: true, realtime: true, fps: 50 }).subscribe((f) => {
            seen.push(f.seq);
            if (seen.length === 3) {
              unsubscribed = true;
              subscription.unsubscribe();
              resolve();
            }
          }),
        );
      });
      // Cleared timers are reported destroyed a turn of the event loop later; one left running
      // would either fire (counted) or never be destroyed (the poll times out).
      await expect.poll(() => pending.size, { timeout: 10_000 }).toBe(0);
      expect(firedAfter).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen).toEqual([0, 1, 2]);
    } finally {
      hook.disable();
    }
  });

  it('checks options when called', () => {
    expect(() => sceneSource({ ...small, frames: 0 })).toThrow('Expected integer >= 1 for frames but received 0 of type number');
    expect(() => sceneSource({ ...small, streamId: '' })).toThrow('Expected non-empty string for streamId but received "" of type string');
    expect(() => sceneSource({ ...small, height: -2 })).toThrow(
      'Expected integer between 16 and 8192 for height but received -2 of type number',
    );
  });
});
