import type { Segmentation } from '../types.js';

/**
 * RGBA image of a label map at working resolution: each pixel its class colour at `alpha`, LOST
 * object boxes outlined opaque white. Used for overlays (video, JPEG for live viewers).
 */
export function paintMaskRgba(seg: Segmentation, alpha: number): Buffer {
  const { width, height } = seg.frame;
  const lut = new Uint32Array(256);
  for (const c of seg.classes) {
    // Little-endian RGBA packed in one 32-bit write per pixel.
    lut[c.id & 255] = (c.color[0] | (c.color[1] << 8) | (c.color[2] << 16) | (alpha << 24)) >>> 0;
  }
  const out = Buffer.allocUnsafe(width * height * 4);
  const px = new Uint32Array(out.buffer, out.byteOffset, width * height);
  const labels = seg.labels;
  for (let i = 0; i < px.length; i++) px[i] = lut[labels[i] as number] as number;
  for (const obj of seg.objects ?? []) {
    const [x0, y0, x1, y1] = obj.box.map((v) => Math.round(v)) as [number, number, number, number];
    const white = 0xffffffff;
    for (let t = 0; t < 2; t++) {
      for (let x = Math.max(0, x0); x < Math.min(width, x1); x++) {
        if (y0 + t >= 0 && y0 + t < height) px[(y0 + t) * width + x] = white;
        if (y1 - 1 - t >= 0 && y1 - 1 - t < height) px[(y1 - 1 - t) * width + x] = white;
      }
      for (let y = Math.max(0, y0); y < Math.min(height, y1); y++) {
        if (x0 + t >= 0 && x0 + t < width) px[y * width + x0 + t] = white;
        if (x1 - 1 - t >= 0 && x1 - 1 - t < width) px[y * width + x1 - 1 - t] = white;
      }
    }
  }
  return out;
}

/** The frame with its class colours blended in at `alpha` (0-255), RGB at working resolution. */
export function blendOverlay(seg: Segmentation, alpha: number): Buffer {
  const rgba = paintMaskRgba(seg, alpha);
  const src = seg.frame.rgb;
  const out = Buffer.allocUnsafe(src.length);
  for (let i = 0, j = 0; i < src.length; i += 3, j += 4) {
    const a = (rgba[j + 3] as number) / 255;
    out[i] = (src[i] as number) * (1 - a) + (rgba[j] as number) * a;
    out[i + 1] = (src[i + 1] as number) * (1 - a) + (rgba[j + 1] as number) * a;
    out[i + 2] = (src[i + 2] as number) * (1 - a) + (rgba[j + 2] as number) * a;
  }
  return out;
}
