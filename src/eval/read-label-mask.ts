import { decode } from 'fast-png';
import { readFile } from 'node:fs/promises';
import { EvalInputError, ImageUnreadableError } from '../errors.js';
import { decodeImage, readImage } from '../internal/read-image.js';
import { resizeLabelsNearest } from '../internal/resize-labels.js';

/** RGB colour (as "r,g,b") to class id, for masks coded by colour. */
export type MaskPalette = Map<string, number>;

/**
 * Reads a ground-truth mask as class ids, resized to `width`x`height` by nearest neighbour (labels
 * are never interpolated). Indexed and 8-bit grey PNGs give their values; RGB masks need a
 * palette (colour -> id); with `palette` 'auto', each new colour gets the next id, consistently
 * across files through the shared map.
 */
export async function readLabelMask(
  path: string,
  width: number,
  height: number,
  palette?: MaskPalette | 'auto',
  auto?: MaskPalette,
): Promise<Uint8Array> {
  let w: number;
  let h: number;
  let ids: Uint8Array;
  // BMP, PGM, ... come back from ffmpeg as PNG, indexed or grey when the mask was.
  const bytes = await readImage(path);
  const isPng = bytes.length > 8 && bytes[0] === 0x89 && bytes[1] === 0x50;
  let rgb: { data: Uint8Array; channels: number } | undefined;
  if (isPng) {
    let png: ReturnType<typeof decode>;
    try {
      png = decode(bytes);
    } catch (err) {
      throw new ImageUnreadableError(path, `it does not decode (${(err as Error).message})`, err);
    }
    w = png.width;
    h = png.height;
    if (png.palette && !palette) {
      ids = Uint8Array.from(png.data as Uint8Array);
    } else if (png.channels === 1 && png.depth === 8 && !png.palette) {
      ids = Uint8Array.from(png.data as Uint8Array);
    } else {
      const raw = await decodeImage(path, (img) => img.removeAlpha().toColourspace('srgb'), bytes);
      rgb = { data: raw.data, channels: raw.info.channels };
      ids = new Uint8Array(0);
    }
  } else {
    const raw = await decodeImage(path, (img) => img.removeAlpha(), bytes);
    w = raw.info.width;
    h = raw.info.height;
    if (raw.info.channels === 1) ids = Uint8Array.from(raw.data);
    else {
      rgb = { data: raw.data, channels: raw.info.channels };
      ids = new Uint8Array(0);
    }
  }
  if (rgb) {
    if (!palette) throw new EvalInputError(`mask "${path}" is colour-coded: give --palette FILE (colour to class id) or --palette auto`);
    const map = palette === 'auto' ? (auto as MaskPalette) : palette;
    ids = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const key = `${rgb.data[i * rgb.channels]},${rgb.data[i * rgb.channels + 1]},${rgb.data[i * rgb.channels + 2]}`;
      let id = map.get(key);
      if (id === undefined) {
        if (palette !== 'auto') throw new EvalInputError(`mask "${path}" has colour (${key}) that the palette does not list`);
        id = map.size;
        map.set(key, id);
      }
      ids[i] = id;
    }
  }
  return resizeLabelsNearest(ids, w, h, width, height);
}

/** Palette file: JSON `{ "r,g,b": id }` or `[[r,g,b], ...]` (index = id), or CSV lines `id,r,g,b`. */
export async function readPalette(path: string): Promise<MaskPalette> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new EvalInputError(`palette file "${path}" cannot be read`);
  });
  const map: MaskPalette = new Map();
  try {
    const json: unknown = JSON.parse(text);
    if (Array.isArray(json)) json.forEach((c: number[], i) => map.set(c.slice(0, 3).join(','), i));
    else for (const [k, v] of Object.entries(json as Record<string, number>)) map.set(k.replace(/\s/g, ''), Number(v));
  } catch {
    for (const line of text.split('\n')) {
      const parts = line.split(',').map((s) => s.trim());
      if (parts.length < 4 || !/^\d+$/.test(parts[0] as string)) continue;
      map.set(parts.slice(1, 4).join(','), Number(parts[0]));
    }
  }
  if (map.size === 0)
    throw new EvalInputError(`palette file "${path}" lists no colours (JSON {"r,g,b": id}, [[r,g,b],...] or CSV id,r,g,b)`);
  return map;
}
