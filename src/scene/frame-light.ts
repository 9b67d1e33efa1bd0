/**
 * Per-frame light, applied to a frame after the fish are in it: the ROV's lamps (lamp-light.ts:
 * a gain per pixel and channel), caustics shimmering near the surface, slanted shafts of sunlight
 * (both left out where the lamps say there is no sunlight), then drifting marine snow. Colour only: labels are untouched, so a speck of
 * snow belongs to whatever class is behind it.
 *
 * Everything per pixel is a table lookup and a multiply-add; the tables are built once per scene.
 */
import type { Canvas } from './canvas.js';
import type { LampGains } from './lamp-light.js';
import type { SnowSpec, WorldGeometry } from './layout.js';
import { mulberry32, subSeed } from './prng.js';

/** Caustic cells across the (square, tileable) caustic texture. */
const CAUSTIC_CELLS = 8;
/** Height of one caustic cell, as a fraction of the view height. */
const CAUSTIC_CELL = 0.07;
const RAY_SIZE = 1024;
const RAY_MASK = RAY_SIZE - 1;
/** Caustics fade out this far down the view (fraction of its height), sun shafts further. */
const CAUSTIC_DEPTH = 0.5;
const RAY_DEPTH = 0.9;
/** Peak light added, in 0-255 levels: enough to see, not so much that open water turns to texture. */
const CAUSTIC_GAIN = 40;
const RAY_GAIN = 26;

export interface FrameLight {
  apply(view: Canvas, t: number, ox: number, oy: number): void;
}

/** `lamp` gives the lamps' gain per view pixel and channel (lamp-light.ts). */
export function createFrameLight(g: WorldGeometry, snow: readonly SnowSpec[], seed: number, lamp: LampGains): FrameLight {
  const W = g.viewWidth;
  const H = g.viewHeight;
  const { r: gainR, g: gainG, b: gainB } = lamp;
  // About one texel per pixel at any resolution: finer wastes time, coarser shows blocks.
  const causticSize = Math.max(64, 2 ** Math.ceil(Math.log2(CAUSTIC_CELLS * CAUSTIC_CELL * H)));
  const causticMask = causticSize - 1;
  const caustic = causticTexture(causticSize, subSeed(seed, 30));
  const rays = sunShafts(subSeed(seed, 31));
  const causticRow = new Float32Array(H);
  const rayRow = new Float32Array(H);
  for (let y = 0; y < H; y++) {
    const c = Math.max(0, 1 - y / (CAUSTIC_DEPTH * H));
    const r = Math.max(0, 1 - y / (RAY_DEPTH * H));
    causticRow[y] = lamp.sunlight * CAUSTIC_GAIN * c * c;
    rayRow[y] = lamp.sunlight * RAY_GAIN * r * r;
  }
  const texelsPerPx = causticSize / CAUSTIC_CELLS / (CAUSTIC_CELL * H);
  const rayPerPx = 256 / W;
  const colA = new Int32Array(W);
  const colB = new Int32Array(W);

  return {
    apply(view, t, ox, oy) {
      const rgb = view.rgb;
      // Two caustic layers drifting apart; light is brightest where their networks cross.
      const speed = causticSize / 16;
      const ax = 1.1 * speed * t;
      const ay = 0.6 * speed * t;
      const bx = -0.9 * speed * t + 37;
      const by = speed * t + 71;
      for (let x = 0; x < W; x++) {
        const wx = (x + ox) * texelsPerPx;
        colA[x] = Math.floor(wx + ax) & causticMask;
        colB[x] = Math.floor(wx * 0.83 + bx) & causticMask;
      }
      const rayDrift = 6 * t;
      for (let y = 0; y < H; y++) {
        const cg = causticRow[y]!;
        const rg = rayRow[y]!;
        const wy = (y + oy) * texelsPerPx;
        const rowA = (Math.floor(wy + ay) & causticMask) * causticSize;
        const rowB = (Math.floor(wy * 0.83 + by) & causticMask) * causticSize;
        // Shafts slant: the lookup shifts along x as y goes down.
        const rayShift = rayDrift + y * 0.45 * rayPerPx;
        let i = y * W;
        for (let x = 0; x < W; x++, i++) {
          let add = 0;
          if (cg > 0) add = cg * caustic[rowA + colA[x]!]! * caustic[rowB + colB[x]!]!;
          if (rg > 0) add += rg * rays[Math.floor((x + ox * 0.5) * rayPerPx + rayShift) & RAY_MASK]!;
          const o = i * 3;
          rgb[o] = rgb[o]! * gainR[i]! + add * 0.85;
          rgb[o + 1] = rgb[o + 1]! * gainG[i]! + add;
          rgb[o + 2] = rgb[o + 2]! * gainB[i]! + add * 0.95;
        }
      }
      for (const s of snow) drawSpeck(view, s, t, ox);
    },
  };
}

/**
 * A tileable web of bright lines, 0-1: the edges of a Voronoi diagram of jittered points (where
 * the distances to the two nearest points are nearly equal), as refracted sunlight draws them.
 */
function causticTexture(size: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  const cells = CAUSTIC_CELLS;
  const cell = size / cells;
  const points: Array<readonly [number, number]> = [];
  for (let i = 0; i < cells * cells; i++) points.push([rng(), rng()]);
  const tex = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const gx = (x + 0.5) / cell;
      const gy = (y + 0.5) / cell;
      let d1 = Infinity;
      let d2 = Infinity;
      for (let oy = -1; oy <= 1; oy++) {
        for (let ox = -1; ox <= 1; ox++) {
          const cx = Math.floor(gx) + ox;
          const cy = Math.floor(gy) + oy;
          const p = points[(((cy % cells) + cells) % cells) * cells + (((cx % cells) + cells) % cells)]!;
          const d = Math.hypot(cx + p[0] - gx, cy + p[1] - gy);
          if (d < d1) {
            d2 = d1;
            d1 = d;
          } else if (d < d2) d2 = d;
        }
      }
      tex[y * size + x] = Math.exp(-(d2 - d1) * 9);
    }
  }
  return tex;
}

/** 1-D profile of sun shafts across the view: a few soft bright bands, 0-1. */
function sunShafts(seed: number): Float32Array {
  const rng = mulberry32(seed);
  const bands = Array.from({ length: 9 }, () => ({
    at: rng() * RAY_SIZE,
    width: 6 + rng() * 26,
    peak: 0.4 + 0.6 * rng(),
  }));
  const rays = new Float32Array(RAY_SIZE);
  for (let i = 0; i < RAY_SIZE; i++) {
    let v = 0;
    for (const b of bands) {
      const d = Math.min(Math.abs(i - b.at), RAY_SIZE - Math.abs(i - b.at)) / b.width;
      v += b.peak * Math.exp(-d * d);
    }
    rays[i] = Math.min(1, v);
  }
  return rays;
}

/** A soft round speck, lit by the lamps: additive, whitish, drifting down and with the camera. */
function drawSpeck(view: Canvas, s: SnowSpec, t: number, ox: number): void {
  const W = view.width;
  const H = view.height;
  const x = (((s.x0 * W + s.vx * H * t - ox * s.parallax) % W) + W) % W;
  const y = (((s.y0 * H + s.vy * H * t) % H) + H) % H;
  const r = s.radius + 0.5;
  const x0 = Math.max(0, Math.floor(x - r));
  const x1 = Math.min(W - 1, Math.ceil(x + r));
  const y0 = Math.max(0, Math.floor(y - r));
  const y1 = Math.min(H - 1, Math.ceil(y + r));
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      const d = Math.hypot(px + 0.5 - x, py + 0.5 - y) / r;
      if (d >= 1) continue;
      const add = s.brightness * (1 - d * d);
      const o = (py * W + px) * 3;
      view.rgb[o] = view.rgb[o]! + add;
      view.rgb[o + 1] = view.rgb[o + 1]! + add;
      view.rgb[o + 2] = view.rgb[o + 2]! + add * 0.95;
    }
  }
}
