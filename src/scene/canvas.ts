/**
 * A colour buffer with its label map, and the one way of painting into both: blend the colour by
 * coverage (so edges in the RGB are smooth) and take the label when coverage is at least one half
 * (so every label is exactly the class that painted the pixel, never a mix).
 */

export interface Canvas {
  readonly width: number;
  readonly height: number;
  /** HWC RGB, shares memory with `bytes`; the clamped view rounds and clips on write. */
  readonly rgb: Uint8ClampedArray;
  readonly bytes: Buffer;
  /** width * height class ids. */
  readonly labels: Uint8Array;
}

export function createCanvas(width: number, height: number): Canvas {
  const bytes = Buffer.alloc(width * height * 3);
  return wrapCanvas(width, height, bytes, new Uint8Array(width * height));
}

export function wrapCanvas(width: number, height: number, bytes: Buffer, labels: Uint8Array): Canvas {
  const rgb = new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, bytes.length);
  return { width, height, rgb, bytes, labels };
}

/** Coverage of a pixel whose centre lies `inside` pixels inside an edge (negative: outside). */
export function coverage(inside: number): number {
  return inside >= 0.5 ? 1 : inside <= -0.5 ? 0 : inside + 0.5;
}

/** Paints pixel index `i` with (r, g, b) at coverage `alpha` (0-1) and, from 0.5 up, `label`. */
export function paintPixel(c: Canvas, i: number, r: number, g: number, b: number, alpha: number, label: number): void {
  if (alpha <= 0) return;
  const o = i * 3;
  const rgb = c.rgb;
  if (alpha >= 1) {
    rgb[o] = r;
    rgb[o + 1] = g;
    rgb[o + 2] = b;
  } else {
    rgb[o] = rgb[o]! + (r - rgb[o]!) * alpha;
    rgb[o + 1] = rgb[o + 1]! + (g - rgb[o + 1]!) * alpha;
    rgb[o + 2] = rgb[o + 2]! + (b - rgb[o + 2]!) * alpha;
  }
  if (alpha >= 0.5) c.labels[i] = label;
}

export function smoothstep(edge0: number, edge1: number, x: number): number {
  const t = Math.min(1, Math.max(0, (x - edge0) / (edge1 - edge0)));
  return t * t * (3 - 2 * t);
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}
