import { basename } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import type { Logger } from 'pino';
import type { ClassInfo, ProgressFactory, Segmentation } from '../types.js';
import type { LearningOptions } from '../learning/learning-options.js';
import { runProcess, type ProcessOptions } from '../process/run-process.js';
import { expandInputs } from '../sources/input-files.js';
import { listImages } from '../sources/image-folder-source.js';
import { probeVideo } from '../internal/probe-video.js';
import { BadOptionError } from '../errors.js';

/** Sizes on the sheet, px. */
const CROP_W = 192;
const CROP_H = 120;
const LABEL_W = 260;
const GAP = 10;
const HEADER_H = 44;

export interface ClassSheetOptions {
  readonly checkpoint: string;
  readonly input: string;
  readonly out: string;
  /** Frames sampled over the input. */
  readonly frames: number;
  /** Example crops per class. */
  readonly crops: number;
  readonly model: Pick<ProcessOptions, 'backbone' | 'device' | 'batchSize' | 'objects' | 'threads' | 'width' | 'height' | 'refine'>;
  readonly learning: LearningOptions;
  readonly progress: ProgressFactory;
  readonly logger: Logger;
}

/** One example: a frame and the box around a class's largest patch of pixels in it. */
interface Example {
  readonly seg: Segmentation;
  readonly pixels: number;
  readonly box: { x: number; y: number; w: number; h: number };
}

/**
 * `stegostream classes sheet`: segments frames spread over the input with the checkpoint's head
 * (frozen) and draws, per class, its id, colour, name and share over those frames, and the crops
 * where it covers most, with the class outlined in its colour, so a user sees what each id is
 * before naming it.
 */
export async function writeClassSheet(o: ClassSheetOptions): Promise<{ out: string; classes: number; frames: number }> {
  const every = await samplingStep(o.input, o.frames);
  const segs: Segmentation[] = [];
  const r = await runProcess({
    input: o.input,
    ...o.model,
    objects: false,
    every,
    learning: o.learning,
    logger: o.logger,
    progress: o.progress,
    onSegment: (seg) => void segs.push(seg),
  });
  if (r.error) throw r.error;
  if (segs.length === 0) throw new BadOptionError('input', 'a video or folder with at least one frame', o.input);
  const classes = segs[segs.length - 1]?.classes ?? [];
  const share = new Map<number, number>(r.shares.map((s) => [s.id, s.share]));
  const rows: OverlayOptions[] = [];
  const width = LABEL_W + o.crops * (CROP_W + GAP) + GAP;
  for (const [row, c] of classes.entries()) {
    const top = HEADER_H + row * (CROP_H + GAP);
    rows.push({ input: labelSvg(c, share.get(c.id) ?? 0), left: 0, top });
    const examples = bestExamples(segs, c.id, o.crops);
    for (const [i, ex] of examples.entries()) {
      rows.push({ input: await crop(ex, c), left: LABEL_W + i * (CROP_W + GAP), top });
    }
  }
  const height = HEADER_H + classes.length * (CROP_H + GAP) + GAP;
  const header = Buffer.from(
    `<svg width="${width}" height="${HEADER_H}" xmlns="http://www.w3.org/2000/svg"><text x="${GAP}" y="28" font-family="sans-serif" font-size="17" fill="#dbe6ee">${escapeXml(
      `${basename(o.checkpoint)} · head v${r.headVersion} · ${classes.length} classes · ${segs.length} frames of ${basename(o.input)}`,
    )}</text></svg>`,
  );
  await sharp({ create: { width, height, channels: 3, background: '#0a141c' } })
    .composite([{ input: header, left: 0, top: 0 }, ...rows])
    .png()
    .toFile(o.out);
  return { out: o.out, classes: classes.length, frames: segs.length };
}

/** Every how many frames to take one so that about `frames` are spread over the input. */
async function samplingStep(input: string, frames: number): Promise<number> {
  const [first] = expandInputs([input]);
  if (!first) return 1;
  const total = first.kind === 'images' ? listImages(first.path).length : ((await probeVideo(first.path)).frames ?? frames);
  return Math.max(1, Math.floor(total / frames));
}

/** The frames where the class's largest connected region is biggest, one example each. */
function bestExamples(segs: readonly Segmentation[], id: number, n: number): Example[] {
  const all: Example[] = [];
  for (const seg of segs) {
    const region = largestRegion(seg.labels, seg.frame.width, seg.frame.height, id);
    if (region) all.push({ seg, ...region });
  }
  return all.sort((a, b) => b.pixels - a.pixels).slice(0, n);
}

/** Bounding box of the largest 4-connected region of `id` (flood fill), padded, at the crop's aspect. */
function largestRegion(labels: Uint8Array, w: number, h: number, id: number): { pixels: number; box: Example['box'] } | undefined {
  const seen = new Uint8Array(w * h);
  let best: { pixels: number; x0: number; y0: number; x1: number; y1: number } | undefined;
  const stack: number[] = [];
  for (let start = 0; start < labels.length; start++) {
    if (labels[start] !== id || seen[start]) continue;
    let pixels = 0;
    let [x0, y0, x1, y1] = [w, h, 0, 0];
    stack.push(start);
    seen[start] = 1;
    while (stack.length > 0) {
      const p = stack.pop() as number;
      const x = p % w;
      const y = (p - x) / w;
      pixels++;
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
      for (const q of [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1]) {
        if (q >= 0 && !seen[q] && labels[q] === id) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (!best || pixels > best.pixels) best = { pixels, x0, y0, x1, y1 };
  }
  if (!best) return undefined;
  // Pad by a quarter and widen to the crop's aspect, inside the frame.
  let bw = Math.max(8, (best.x1 - best.x0 + 1) * 1.25);
  let bh = Math.max(8, (best.y1 - best.y0 + 1) * 1.25);
  if (bw / bh < CROP_W / CROP_H) bw = (bh * CROP_W) / CROP_H;
  else bh = (bw * CROP_H) / CROP_W;
  bw = Math.min(w, Math.round(bw));
  bh = Math.min(h, Math.round(bh));
  const cx = (best.x0 + best.x1) / 2;
  const cy = (best.y0 + best.y1) / 2;
  const x = Math.max(0, Math.min(w - bw, Math.round(cx - bw / 2)));
  const y = Math.max(0, Math.min(h - bh, Math.round(cy - bh / 2)));
  return { pixels: best.pixels, box: { x, y, w: bw, h: bh } };
}

/** The example's crop with the class's boundary drawn in its colour, at the sheet's crop size. */
async function crop(ex: Example, c: ClassInfo): Promise<Buffer> {
  const { width: w, height: h, rgb } = ex.seg.frame;
  const labels = ex.seg.labels;
  const out = Buffer.from(rgb);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      if (labels[p] !== c.id) continue;
      const edge =
        (x > 0 && labels[p - 1] !== c.id) ||
        (x < w - 1 && labels[p + 1] !== c.id) ||
        (y > 0 && labels[p - w] !== c.id) ||
        (y < h - 1 && labels[p + w] !== c.id);
      if (edge) out.set(c.color, p * 3);
    }
  }
  return sharp(out, { raw: { width: w, height: h, channels: 3 } })
    .extract({ left: ex.box.x, top: ex.box.y, width: ex.box.w, height: ex.box.h })
    .resize(CROP_W, CROP_H, { fit: 'fill', kernel: 'nearest' })
    .png()
    .toBuffer();
}

function labelSvg(c: ClassInfo, share: number): Buffer {
  const [r, g, b] = c.color;
  return Buffer.from(
    `<svg width="${LABEL_W}" height="${CROP_H}" xmlns="http://www.w3.org/2000/svg">` +
      `<rect x="${GAP}" y="10" width="34" height="34" rx="6" fill="rgb(${r},${g},${b})"/>` +
      `<text x="${GAP + 46}" y="34" font-family="sans-serif" font-size="20" font-weight="bold" fill="#dbe6ee">${c.id}</text>` +
      `<text x="${GAP}" y="72" font-family="sans-serif" font-size="18" fill="#dbe6ee">${escapeXml(c.name)}</text>` +
      `<text x="${GAP}" y="98" font-family="sans-serif" font-size="15" fill="#8aa0b0">${(share * 100).toFixed(1)}% of the pixels</text>` +
      `</svg>`,
  );
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[ch] as string);
}
