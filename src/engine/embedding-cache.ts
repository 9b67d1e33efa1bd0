import type { Embedding, Frame } from '../types.js';

/** Default most bytes of backbone outputs a learning pass keeps for the pass that segments. */
export const DEFAULT_EMBEDDING_CACHE_BYTES = 512 * 1024 * 1024;

/**
 * Backbone outputs of the learning pass, kept for the segmenting pass that decodes the same
 * frames again right after: those frames then skip the backbone, which with a ViT is most of a
 * frame's cost (64 frames of ViT-S/16 at 448x256: 9 s of a 36 s run on 2 cores). The frames
 * after them that the backbone ran on while the pass's closing round trained are kept too. The outputs are
 * the ones the backbone gave for the same pixels, so segmenting them gives what running the
 * backbone again would.
 *
 * A frame is found by stream, sequence number and a fingerprint of its pixels, so a decoder that
 * gave different pixels the second time (it should not) costs a backbone run, not a wrong map.
 * Entries are taken once; the cache holds at most `maxBytes` (frames past that are not kept).
 */
export class EmbeddingCache {
  private readonly entries = new Map<string, { readonly print: number; readonly embedding: Embedding }>();
  private bytes = 0;
  private hitCount = 0;

  constructor(private readonly maxBytes: number = DEFAULT_EMBEDDING_CACHE_BYTES) {}

  /** Bytes held now. */
  get size(): number {
    return this.bytes;
  }

  /** Frames whose outputs were taken from the cache so far. */
  get hits(): number {
    return this.hitCount;
  }

  /** Keeps copies of a batch's outputs while they fit; false when some did not. */
  put(embeddings: readonly Embedding[]): boolean {
    for (const e of embeddings) {
      const cost = (e.patchTokens.length + e.clsToken.length + (e.keys?.length ?? 0)) * 4;
      if (this.bytes + cost > this.maxBytes) return false;
      const key = keyOf(e.frame);
      if (this.entries.has(key)) continue;
      // Copies: the batch's arrays are views of one buffer per batch, which would keep it all.
      const embedding: Embedding = {
        frame: e.frame,
        gridH: e.gridH,
        gridW: e.gridW,
        dim: e.dim,
        patchTokens: e.patchTokens.slice(),
        clsToken: e.clsToken.slice(),
        ...(e.keys ? { keys: e.keys.slice() } : {}),
      };
      this.entries.set(key, { print: fingerprint(e.frame), embedding });
      this.bytes += cost;
    }
    return true;
  }

  /**
   * The outputs of every frame of the batch, taken out of the cache; undefined (and nothing
   * taken) unless all of them are there with the same pixels.
   */
  take(frames: readonly Frame[]): Embedding[] | undefined {
    if (this.entries.size === 0) return undefined;
    const found: Embedding[] = [];
    for (const f of frames) {
      const entry = this.entries.get(keyOf(f));
      if (
        !entry ||
        entry.print !== fingerprint(f) ||
        entry.embedding.frame.width !== f.width ||
        entry.embedding.frame.height !== f.height
      ) {
        return undefined;
      }
      found.push({ ...entry.embedding, frame: f });
    }
    for (const f of frames) {
      const key = keyOf(f);
      const e = this.entries.get(key)?.embedding;
      if (e) this.bytes -= (e.patchTokens.length + e.clsToken.length + (e.keys?.length ?? 0)) * 4;
      this.entries.delete(key);
    }
    this.hitCount += frames.length;
    return found;
  }

  /** Drops everything (the pass that would use it is over). */
  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function keyOf(f: Frame): string {
  return `${f.streamId}\u0000${f.seq}`;
}

/** FNV-1a over every 7th byte of the pixels and their count: cheap (50 k bytes at 448x256) and pixel-sensitive. */
function fingerprint(f: Frame): number {
  const rgb = f.rgb;
  let h = 0x811c9dc5 ^ rgb.length;
  for (let i = 0; i < rgb.length; i += 7) {
    h ^= rgb[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
