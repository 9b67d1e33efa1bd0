/** Nearest-neighbour resize of a label map (labels are never interpolated). */
export function resizeLabelsNearest(src: Uint8Array, w: number, h: number, width: number, height: number): Uint8Array {
  if (w === width && h === height) return src;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = Math.min(h - 1, Math.floor(((y + 0.5) * h) / height)) * w;
    for (let x = 0; x < width; x++) out[y * width + x] = src[row + Math.min(w - 1, Math.floor(((x + 0.5) * w) / width))] as number;
  }
  return out;
}
