/**
 * A coral colony, in one of three forms: branching (staghorn-like capsules that fork upwards),
 * brain (a dome covered in meandering ridges) or bumpy (a dome of rounded polyps). All three carry
 * a strong high-frequency texture, which is what separates coral from sand in the 'hard' variant
 * where their colours are the same.
 */
import { coverage, paintPixel, type Canvas } from './canvas.js';
import { hazeAt, type CoralSpec } from './layout.js';
import { cellBumps, fbm } from './noise.js';
import type { Palette } from './palette.js';
import { mulberry32, uniform, type Rng } from './prng.js';
import { SceneClass } from './scene-classes.js';
import { contactShadow, diffuse, type Textures } from './textures.js';

export function paintCoral(c: Canvas, coral: CoralSpec, unit: number, tex: Textures, palette: Palette): void {
  const shadowRy = coral.size * (coral.form === 'branch' ? 0.25 : 0.3);
  contactShadow(c, coral.x, coral.baseY + 0.05 * coral.size, coral.size * 1.25, shadowRy, 0.3 * (1 - hazeAt(coral.depth)));
  if (coral.form === 'branch') paintBranching(c, coral, unit, palette);
  else paintDome(c, coral, unit, tex, palette);
}

interface Shade {
  readonly haze: number;
  readonly base: readonly [number, number, number];
  readonly deep: readonly [number, number, number];
}

function put(c: Canvas, x: number, y: number, k: number, s: Shade, alpha: number): void {
  let r = s.base[0] * k;
  let g = s.base[1] * k;
  let b = s.base[2] * k;
  r += (s.deep[0] - r) * s.haze;
  g += (s.deep[1] - g) * s.haze;
  b += (s.deep[2] - b) * s.haze;
  paintPixel(c, y * c.width + x, r, g, b, alpha, SceneClass.coral);
}

function paintDome(c: Canvas, coral: CoralSpec, unit: number, tex: Textures, palette: Palette): void {
  const rng = mulberry32(coral.seed);
  const rx = coral.size;
  const ry = coral.size * uniform(rng, 0.65, 0.85);
  const cx = coral.x;
  const cy = coral.baseY + 0.12 * ry;
  const lobes = [uniform(rng, 5, 8), uniform(rng, 9, 14)].map((k) => ({
    k: Math.round(k),
    amp: coral.form === 'bumpy' ? uniform(rng, 0.04, 0.07) : uniform(rng, 0.015, 0.035),
    phase: rng() * 2 * Math.PI,
  }));
  const offX = rng() * 4096;
  const offY = rng() * 4096;
  const shade: Shade = { haze: hazeAt(coral.depth), base: coral.color, deep: palette.waterDeep };
  // Texture period in pixels: small enough to read as polyps/ridges, shrinking with distance.
  const cell = unit * (3.2 + 2.2 * coral.depth);
  const bottom = coral.baseY + 0.04 * ry;

  const x0 = Math.max(0, Math.floor(cx - rx * 1.2));
  const x1 = Math.min(c.width - 1, Math.ceil(cx + rx * 1.2));
  const y0 = Math.max(0, Math.floor(cy - ry * 1.2));
  const y1 = Math.min(c.height - 1, Math.ceil(bottom + 1));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const ex = (px - cx) / rx;
      const ey = (py - cy) / ry;
      const rho = Math.hypot(ex, ey);
      const theta = Math.atan2(ey, ex);
      let r = 1;
      for (const l of lobes) r += l.amp * Math.sin(l.k * theta + l.phase);
      const alpha = coverage(Math.min((r - rho) * Math.sqrt(rx * ry), bottom - py));
      if (alpha <= 0) continue;
      const q = Math.min(1, rho / r);
      const h = Math.sqrt(1 - q * q);
      const light = 0.35 + 0.75 * diffuse(ex / r, ey / r, h + 0.1);
      let pattern: number;
      if (coral.form === 'brain') {
        // Iso-lines of warped noise make the meandering grooves of brain coral.
        const v = fbm(tex.detail, (px + offX) / (cell * 4), (py + offY) / (cell * 4), 2);
        pattern = 0.5 + 0.5 * Math.cos(2 * Math.PI * v * 7);
        pattern = 0.45 + 0.75 * pattern * pattern;
      } else {
        pattern = 0.35 + 0.85 * cellBumps(px + offX, py + offY, cell, coral.seed);
      }
      put(c, x, y, light * pattern, shade, alpha);
    }
  }
}

interface Segment {
  readonly ax: number;
  readonly ay: number;
  readonly bx: number;
  readonly by: number;
  readonly r0: number;
  readonly r1: number;
  /** 0 for the trunk, up to the tips: tips are paler, like growing Acropora. */
  readonly level: number;
}

const BRANCH_LEVELS = 5;

function growBranches(rng: Rng, coral: CoralSpec): Segment[] {
  const segments: Segment[] = [];
  const grow = (x: number, y: number, angle: number, len: number, thick: number, level: number): void => {
    const bx = x + Math.cos(angle) * len;
    const by = y + Math.sin(angle) * len;
    segments.push({ ax: x, ay: y, bx, by, r0: thick, r1: thick * 0.85, level });
    if (level >= BRANCH_LEVELS) return;
    const n = level === 0 ? 3 : rng() < 0.35 ? 3 : 2;
    const spread = uniform(rng, 0.45, 0.75);
    for (let i = 0; i < n; i++) {
      // Branches lean outwards but keep reaching up towards the light.
      let a = angle + spread * (i - (n - 1) / 2) + uniform(rng, -0.15, 0.15);
      a += (-Math.PI / 2 - a) * 0.2;
      grow(bx, by, a, len * uniform(rng, 0.68, 0.85), thick * 0.85, level + 1);
    }
  };
  grow(coral.x, coral.baseY + coral.size * 0.05, -Math.PI / 2 + uniform(rng, -0.2, 0.2), coral.size * 0.3, coral.size * 0.1, 0);
  return segments;
}

function paintBranching(c: Canvas, coral: CoralSpec, unit: number, palette: Palette): void {
  const rng = mulberry32(coral.seed);
  const shade: Shade = { haze: hazeAt(coral.depth), base: coral.color, deep: palette.waterDeep };
  const cell = unit * (2.6 + 1.6 * coral.depth);
  const floorY = coral.baseY + coral.size * 0.06;
  for (const s of growBranches(rng, coral)) {
    const dx = s.bx - s.ax;
    const dy = s.by - s.ay;
    const len2 = dx * dx + dy * dy;
    const len = Math.sqrt(len2);
    const pad = Math.max(s.r0, s.r1) + 1;
    const x0 = Math.max(0, Math.floor(Math.min(s.ax, s.bx) - pad));
    const x1 = Math.min(c.width - 1, Math.ceil(Math.max(s.ax, s.bx) + pad));
    const y0 = Math.max(0, Math.floor(Math.min(s.ay, s.by) - pad));
    const y1 = Math.min(c.height - 1, Math.ceil(Math.min(floorY, Math.max(s.ay, s.by) + pad)));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        const t = Math.max(0, Math.min(1, ((px - s.ax) * dx + (py - s.ay) * dy) / len2));
        const qx = px - (s.ax + dx * t);
        const qy = py - (s.ay + dy * t);
        const dist = Math.hypot(qx, qy);
        const radius = s.r0 + (s.r1 - s.r0) * t;
        const alpha = coverage(Math.min(radius - dist, floorY - py));
        if (alpha <= 0) continue;
        // Across the branch it is a cylinder: signed offset -1..1 gives the surface normal.
        const across = (qx * -dy + qy * dx) / (len * radius);
        const nz = Math.sqrt(Math.max(0, 1 - across * across));
        const nx = (-dy / len) * across;
        const ny = (dx / len) * across;
        const light = 0.4 + 0.7 * diffuse(nx, ny, nz + 0.15);
        const polyp = 0.45 + 0.75 * cellBumps(px, py, cell, coral.seed);
        const tip = 1 + 0.12 * ((s.level + t) / (BRANCH_LEVELS + 1));
        put(c, x, y, light * polyp * tip, shade, alpha);
      }
    }
  }
}
