import sharp from 'sharp';
import type { ClassInfo } from '../types.js';

/** A legend rendered as RGBA, to be laid over a frame at (x, y). */
export interface LegendImage {
  readonly rgba: Buffer;
  readonly width: number;
  readonly height: number;
  readonly x: number;
  readonly y: number;
}

/**
 * The overlay video's legend (README "Outputs"): per class a colour swatch, the name in force and
 * its share of the frame, on a translucent panel in the top-left corner, sized to the frame. Text
 * is drawn by librsvg through sharp; a legend is rendered again only when the names, colours or
 * whole-percent shares change (most frames reuse the last one).
 */
export class LegendRenderer {
  private key = '';
  private last: LegendImage | undefined;

  constructor(
    private readonly frameWidth: number,
    private readonly frameHeight: number,
  ) {}

  async render(classes: readonly ClassInfo[], shares: readonly number[]): Promise<LegendImage | undefined> {
    if (classes.length === 0) return undefined;
    const pct = shares.map((s) => Math.round(s * 100));
    const key = JSON.stringify([classes.map((c) => [c.name, c.color]), pct]);
    if (key === this.key && this.last) return this.last;
    const font = Math.max(7, Math.round(this.frameHeight / 26));
    const row = Math.round(font * 1.35);
    const pad = Math.max(2, Math.round(font / 3));
    const longest = Math.max(...classes.map((c) => [...c.name].length));
    const width = Math.min(this.frameWidth - 2 * pad, Math.round(pad * 3 + font * 1.1 + font * 0.6 * (longest + 5)));
    const height = Math.min(this.frameHeight - 2 * pad, pad * 2 + row * classes.length);
    const rows = classes
      .map((c, i) => {
        const y = pad + i * row;
        const [r, g, b] = c.color;
        return (
          `<rect x="${pad}" y="${y + Math.round(row * 0.15)}" width="${font}" height="${font}" fill="rgb(${r},${g},${b})"/>` +
          `<text x="${pad * 2 + font}" y="${y + font}" font-family="sans-serif" font-size="${font}" fill="#fff">${escapeXml(c.name)}</text>` +
          `<text x="${width - pad}" y="${y + font}" font-family="sans-serif" font-size="${font}" fill="#fff" text-anchor="end">${pct[i] ?? 0}%</text>`
        );
      })
      .join('');
    const svg = `<svg width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg"><rect width="${width}" height="${height}" rx="${pad}" fill="rgba(0,0,0,0.55)"/>${rows}</svg>`;
    const { data } = await sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    this.key = key;
    this.last = { rgba: data, width, height, x: pad, y: pad };
    return this.last;
  }
}

/** Lays `legend` over an image (RGBA with `channels` 4, or RGB with 3) of `width` pixels per row, in place. */
export function drawLegend(image: Buffer, width: number, channels: 3 | 4, legend: LegendImage): void {
  const { rgba, x: x0, y: y0 } = legend;
  for (let y = 0; y < legend.height; y++) {
    for (let x = 0; x < legend.width; x++) {
      const s = (y * legend.width + x) * 4;
      const a = (rgba[s + 3] as number) / 255;
      if (a === 0) continue;
      const d = ((y0 + y) * width + x0 + x) * channels;
      for (let c = 0; c < 3; c++) image[d + c] = (rgba[s + c] as number) * a + (image[d + c] as number) * (1 - a);
      // Over an overlay mask, the legend's alpha adds to the mask's.
      if (channels === 4) image[d + 3] = Math.round(255 * (a + ((image[d + 3] as number) / 255) * (1 - a)));
    }
  }
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[ch] as string);
}
