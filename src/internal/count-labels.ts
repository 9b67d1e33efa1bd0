/** Per-class pixel counts of one label map (ids >= classes.length are ignored). */
export function countLabels(labels: Uint8Array, k: number): Uint32Array {
  const counts = new Uint32Array(Math.max(k, 1));
  for (let i = 0; i < labels.length; i++) {
    const id = labels[i] as number;
    if (id < k) counts[id] = (counts[id] as number) + 1;
  }
  return counts;
}
