/**
 * Corrupt and odd inputs to every command, as a user would give them (dist/cli.js in a child
 * process): each ends with one coded line on stderr and exit code 1, never an "unexpected error"
 * or a stack trace. Still-image formats sharp does not read (BMP, PPM/PGM, TGA) work through
 * ffmpeg, in image folders and as eval masks.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { decode } from 'fast-png';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { lavfiVideo, runCli, tempDir, type CliResult } from './helpers/cli.js';
import { writeSceneImages } from '../src/scene/write-scene-files.js';

const FAST = ['--learn-frames', '3', '--train-steps', '2', '--classes', '3'];
/** `process` flags: FAST, without progress lines. */
const QUIET = [...FAST, '--no-progress'];

/** ffmpeg with arguments, failing the test on error (fixtures only). */
function ffmpeg(...args: string[]): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ffmpeg ${args.join(' ')} failed: ${r.stderr}`);
}

/**
 * Exit 1 with the coded message on stderr (on one line unless it is a config error, which lists
 * one problem a line), and nothing a user should not see.
 */
function expectCoded(r: CliResult, code: string, message: string | RegExp): void {
  expect(r.stderr).not.toContain('unexpected error');
  expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  const pattern = code === 'E_CONFIG' ? /^stegostream: [^]*? \[(E_[A-Z_]+)\]$/m : /^stegostream: .* \[(E_[A-Z_]+)\]$/m;
  const line = pattern.exec(r.stderr);
  expect(line?.[1], r.stderr).toBe(code);
  if (typeof message === 'string') expect(line?.[0]).toContain(message);
  else expect(line?.[0]).toMatch(message);
  expect(r.code).toBe(1);
}

describe('bad and odd inputs: one coded line, exit 1, no stack trace', () => {
  let dir: string;
  let clip: string;
  let notes: string;

  beforeAll(async () => {
    dir = await tempDir('stegostream-bad-');
    clip = join(dir, 'clip.mp4');
    lavfiVideo(clip, { size: '160x96', rate: 10, seconds: 1 });
    notes = join(dir, 'notes.txt');
    writeFileSync(notes, 'dive log: nothing to see\n');
  });

  describe('process', () => {
    it('a video that is empty, truncated, text named .mp4, missing, or under a file', async () => {
      const empty = join(dir, 'empty.mp4');
      writeFileSync(empty, '');
      const truncated = join(dir, 'truncated.mp4');
      writeFileSync(truncated, readFileSync(clip).subarray(0, 2000));
      const text = join(dir, 'text.mp4');
      writeFileSync(text, 'this is not a video\n'.repeat(50));
      const under = join(notes, 'clip.mp4');
      const [e, t, x, m, u] = await Promise.all([
        runCli(['process', empty, ...QUIET]),
        runCli(['process', truncated, ...QUIET]),
        runCli(['process', text, ...QUIET]),
        runCli(['process', join(dir, 'missing.mp4'), ...QUIET]),
        runCli(['process', under, ...QUIET]),
      ]);
      expectCoded(e, 'E_INPUT_EMPTY', `Cannot process "${empty}": the file is empty (0 bytes)`);
      expectCoded(t, 'E_INPUT_NOT_VIDEO', `Cannot process "${truncated}": ffmpeg finds no video stream in it`);
      expect(t.stderr).toContain('moov atom not found');
      expectCoded(x, 'E_INPUT_NOT_VIDEO', `Cannot process "${text}"`);
      expect(x.stderr).not.toContain('libpostproc'); // ffprobe's banner is no reason
      expectCoded(m, 'E_INPUT_NOT_FOUND', `Cannot read input "${join(dir, 'missing.mp4')}": no such file or folder`);
      expectCoded(u, 'E_INPUT_NOT_FOUND', `"${under}"`);
    });

    it('a folder with no images, a zero-byte PNG, text named .png, a truncated BMP', async () => {
      const none = join(dir, 'no-images');
      mkdirSync(none);
      writeFileSync(join(none, 'readme.txt'), 'frames go here\n');
      const zero = join(dir, 'zero-png');
      mkdirSync(zero);
      ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=160x96', '-frames:v', '1', join(zero, 'a.png'));
      writeFileSync(join(zero, 'b.png'), '');
      const text = join(dir, 'text-png');
      mkdirSync(text);
      writeFileSync(join(text, 'a.png'), 'not a picture\n');
      const cut = join(dir, 'cut-bmp');
      mkdirSync(cut);
      ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=160x96', '-frames:v', '1', join(dir, 'whole.bmp'));
      writeFileSync(join(cut, 'a.bmp'), readFileSync(join(dir, 'whole.bmp')).subarray(0, 3000));
      const [n, z, t, c] = await Promise.all([
        runCli(['process', none, ...QUIET]),
        runCli(['process', zero, '--masks', join(dir, 'zero-masks'), ...QUIET]),
        runCli(['process', text, ...QUIET]),
        runCli(['process', cut, ...QUIET]),
      ]);
      expectCoded(n, 'E_INPUT_EMPTY', `Cannot process "${none}": the folder holds no images (.jpg, .jpeg, .png`);
      expect(n.stderr).toContain('Give a video file or a folder with at least one image.');
      expectCoded(z, 'E_IMAGE_UNREADABLE', `Cannot read image "${join(zero, 'b.png')}": the file is empty (0 bytes)`);
      expectCoded(t, 'E_IMAGE_UNREADABLE', `Cannot read image "${join(text, 'a.png')}": it is not an image ffmpeg or libvips can decode`);
      expectCoded(c, 'E_IMAGE_UNREADABLE', `Cannot read image "${join(cut, 'a.bmp')}"`);
    });

    it('outputs that cannot be written are refused before any work', async () => {
      const [s, o, d, k] = await Promise.all([
        runCli(['process', clip, '--stats', join(notes, 'stats.csv'), ...QUIET]),
        runCli(['process', clip, '--out', join(notes, 'overlay.mp4'), ...QUIET]),
        runCli(['process', clip, '--out', dir, ...QUIET]),
        runCli(['process', clip, '--checkpoint', join(notes, 'head.ckpt'), ...QUIET]),
      ]);
      expectCoded(s, 'E_OUTPUT_UNWRITABLE', `Cannot write output "${join(notes, 'stats.csv')}"`);
      expectCoded(o, 'E_OUTPUT_UNWRITABLE', `Cannot write output "${join(notes, 'overlay.mp4')}": folder`);
      expectCoded(d, 'E_OUTPUT_UNWRITABLE', `Cannot write output "${dir}": it is a folder`);
      expectCoded(k, 'E_OUTPUT_UNWRITABLE', `Cannot write output "${join(notes, 'head.ckpt')}": cannot create its folder`);
      for (const r of [s, o, d, k]) expect(r.stdout).not.toMatch(/frames in/);
    });

    it('segments a folder of BMP, PPM, PGM and TGA frames', async () => {
      const mixed = join(dir, 'mixed');
      mkdirSync(mixed);
      const src = ['-f', 'lavfi', '-i', 'testsrc2=size=160x96', '-frames:v', '1'];
      ffmpeg(...src, join(mixed, 'f1.bmp'));
      ffmpeg(...src, join(mixed, 'f2.ppm'));
      ffmpeg(...src, '-pix_fmt', 'gray', join(mixed, 'f3.pgm'));
      ffmpeg(...src, join(mixed, 'f4.tga'));
      const masks = join(dir, 'mixed-masks');
      const r = await runCli(['process', mixed, '--masks', masks, ...QUIET]);
      expect(r.stderr).not.toContain('unexpected error');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('4 frames in');
      expect(readdirSync(masks).filter((f) => f.endsWith('.png'))).toEqual(['f1.png', 'f2.png', 'f3.png', 'f4.png']);
    });
  });

  describe('eval', () => {
    let images: string;
    let masks: string;

    beforeAll(async () => {
      const out = await writeSceneImages(join(dir, 'scene'), { width: 192, height: 112, seed: 2, frames: 3 });
      images = join(dir, 'scene', 'images');
      masks = join(dir, 'scene', 'masks');
      expect(out.masks.length).toBe(3);
    });

    it('reads masks in BMP (indexed), PGM (grey) and 24-bit BMP (colour-coded, as SUIM ships them)', async () => {
      const bmp = join(dir, 'bmp-masks');
      const pgm = join(dir, 'pgm-masks');
      const rgb = join(dir, 'rgb-masks');
      for (const d of [bmp, pgm, rgb]) mkdirSync(d);
      for (const f of readdirSync(masks)) {
        const stem = f.replace(/\.png$/, '');
        ffmpeg('-i', join(masks, f), '-pix_fmt', 'gray', join(bmp, `${stem}.bmp`));
        ffmpeg('-i', join(masks, f), '-pix_fmt', 'gray', join(pgm, `${stem}.pgm`));
        // Colour-coded: class id -> (id * 50, 0, 255 - id * 50), written as PNG, then as BMP by ffmpeg.
        const png = decode(readFileSync(join(masks, f)));
        const colours = Buffer.alloc(png.width * png.height * 3);
        (png.data as Uint8Array).forEach((v, i) => colours.set([v * 50, 0, 255 - v * 50], i * 3));
        const tmp = join(dir, `${stem}-colours.png`);
        await sharp(colours, { raw: { width: png.width, height: png.height, channels: 3 } })
          .png()
          .toFile(tmp);
        ffmpeg('-i', tmp, '-pix_fmt', 'bgr24', join(rgb, `${stem}.bmp`));
      }
      // The masks as predictions: a perfect score whatever format the ground truth comes in.
      const [b, p, c] = await Promise.all([
        runCli(['eval', images, bmp, '--pred', masks, '--json']),
        runCli(['eval', images, pgm, '--pred', masks, '--json']),
        runCli(['eval', images, rgb, '--pred', masks, '--palette', 'auto', '--json']),
      ]);
      for (const r of [b, p, c]) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const res = JSON.parse(r.stdout) as { mIoU: number; pixelAccuracy: number; images: number };
        expect(res.images).toBe(3);
        expect(res.pixelAccuracy).toBeCloseTo(1, 6);
      }
    });

    it('a missing mask, a mask of another shape, or an unreadable mask is reported before any segmenting', async () => {
      const few = join(dir, 'few-masks');
      const odd = join(dir, 'odd-masks');
      const zero = join(dir, 'zero-masks-eval');
      for (const d of [few, odd, zero]) mkdirSync(d);
      const names = readdirSync(masks).sort();
      for (const f of names.slice(1)) writeFileSync(join(few, f), readFileSync(join(masks, f)));
      for (const f of names) writeFileSync(join(zero, f), readFileSync(join(masks, f)));
      writeFileSync(join(zero, names[1] as string), '');
      for (const f of names) ffmpeg('-i', join(masks, f), '-vf', 'scale=100:100:flags=neighbor', join(odd, f));
      // A backbone that does not exist: segmenting would fail on it, so these errors come first.
      const noModel = ['--backbone', join(dir, 'no-such-model.onnx'), ...FAST];
      const [f, o, z, n] = await Promise.all([
        runCli(['eval', images, few, ...noModel]),
        runCli(['eval', images, odd, ...noModel]),
        runCli(['eval', images, zero, ...noModel]),
        runCli(['eval', images, join(dir, 'no-masks-here'), ...noModel]),
      ]);
      expectCoded(f, 'E_EVAL_INPUT', `no ground-truth mask for image "${names[0]}" in "${few}"`);
      expectCoded(o, 'E_EVAL_INPUT', /mask ".*" is 100x100 but its image ".*" is 192x112: a mask must cover its image/);
      expectCoded(z, 'E_IMAGE_UNREADABLE', `Cannot read image "${join(zero, names[1] as string)}": the file is empty (0 bytes)`);
      expectCoded(n, 'E_EVAL_INPUT', `ground-truth folder "${join(dir, 'no-masks-here')}" cannot be read (ENOENT)`);
    });

    it('a prediction that is not a label map, and a palette file that is not one', async () => {
      const preds = join(dir, 'bad-preds');
      mkdirSync(preds);
      for (const f of readdirSync(masks)) writeFileSync(join(preds, f), 'not a png');
      const [p, pal] = await Promise.all([
        runCli(['eval', images, masks, '--pred', preds]),
        runCli(['eval', images, masks, '--pred', masks, '--palette', notes]),
      ]);
      expectCoded(p, 'E_IMAGE_UNREADABLE', `Cannot read image "${join(preds, readdirSync(masks).sort()[0] as string)}"`);
      expectCoded(pal, 'E_EVAL_INPUT', `palette file "${notes}" lists no colours`);
    });
  });

  describe('demo, serve and doctor', () => {
    it('demo with an output folder that cannot be made', async () => {
      const r = await runCli(['demo', '--out-dir', join(notes, 'demo'), '--frames', '4', ...FAST]);
      expectCoded(r, 'E_OUTPUT_UNWRITABLE', `Cannot write output "${join(notes, 'demo')}": the folder cannot be made (ENOTDIR)`);
    });

    it('serve with a pipeline file that is missing, a folder, empty, not YAML, or wrong', async () => {
      const empty = join(dir, 'empty.yaml');
      writeFileSync(empty, '');
      const broken = join(dir, 'broken.yaml');
      writeFileSync(broken, 'sources: [\n  - use: scene\n');
      const wrong = join(dir, 'wrong.yaml');
      writeFileSync(wrong, 'sources:\n  - { use: scene, name: reef, with: { fps: fast } }\n');
      const [m, d, e, b, w] = await Promise.all([
        runCli(['serve', join(dir, 'missing.yaml')]),
        runCli(['serve', dir]),
        runCli(['serve', empty]),
        runCli(['serve', broken]),
        runCli(['serve', wrong]),
      ]);
      expectCoded(m, 'E_INPUT_NOT_FOUND', `Cannot read pipeline file "${join(dir, 'missing.yaml')}": no such file or folder`);
      expectCoded(d, 'E_INPUT_NOT_FOUND', `Cannot read pipeline file "${dir}": it is a folder, not a YAML file`);
      expectCoded(e, 'E_CONFIG', `Invalid pipeline file "${empty}":\n  (top level): expected a mapping`);
      expectCoded(b, 'E_CONFIG', `Invalid pipeline file "${broken}":\n  YAML:`);
      expectCoded(w, 'E_CONFIG', 'sources[0].with.fps');
    });

    it('serve with a checkpoint whose folder cannot be made', async () => {
      const pipeline = join(dir, 'ckpt.yaml');
      writeFileSync(
        pipeline,
        `name: ckpt\nservice: { port: 0 }\nsources:\n  - { use: scene, name: reef }\nlearning: { checkpoint: "${join(notes, 'head.ckpt')}" }\n`,
      );
      const r = await runCli(['serve', pipeline]);
      expectCoded(
        r,
        'E_OUTPUT_UNWRITABLE',
        `Cannot write output "${join(notes, 'head.ckpt')}": cannot create its folder for learning.checkpoint`,
      );
    });

    it('serve binds its port before loading the model, and names --port, PORT and service.port when it is taken', async () => {
      const taken: Server = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const port = (taken.address() as { port: number }).port;
      try {
        const pipeline = join(dir, 'port.yaml');
        // The model does not exist: were it loaded first, that would be the error.
        writeFileSync(
          pipeline,
          `name: port\nsources:\n  - { use: scene, name: reef }\nmodel: { backbone: "${join(dir, 'no-such-model.onnx')}" }\n`,
        );
        const r = await runCli(['serve', pipeline, '--port', String(port)]);
        expectCoded(
          r,
          'E_LISTEN',
          `Cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE); choose another with --port N or the PORT environment variable, or set service.port in the pipeline file`,
        );
        const free = await runCli(['serve', pipeline, '--port', '0']);
        expectCoded(free, 'E_INPUT_NOT_FOUND', `Cannot read backbone model "${join(dir, 'no-such-model.onnx')}"`);
      } finally {
        await new Promise((resolve) => taken.close(resolve));
      }
    });

    it('doctor with a backbone that is not a model reports it and exits 1', async () => {
      const r = await runCli(['doctor', '--backbone', notes]);
      expect(r.stderr + r.stdout).not.toContain('unexpected error');
      expect(r.stderr + r.stdout).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      expect(r.stdout).toContain(`backbone: "${notes}" is not an ONNX model ONNX Runtime can load.`);
      expect(r.code).toBe(1);
    });
  });
});
