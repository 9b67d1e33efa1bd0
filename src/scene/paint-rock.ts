/**
 * A rock: a lumpy, flattened blob half sunk in the sand, lit from above, with coarse dark
 * blotches, cracks, a little algae on its top faces and fine speckle.
 */
import { clamp01, coverage, paintPixel, smoothstep, type Canvas } from './canvas.js';
import { hazeAt, type RockSpec } from './layout.js';
import { fbm } from './noise.js';
import type { Palette } from './palette.js';
import { hash2, mulberry32, uniform } from './prng.js';
import { SceneClass } from './scene-classes.js';
import { contactShadow, diffuse, type Textures } from './textures.js';

const ALGAE: readonly [number, number, number] = [84, 112, 64];

export function paintRock(c: Canvas, rock: RockSpec, unit: number, tex: Textures, palette: Palette): void {
  const rng = mulberry32(rock.seed);
  const lumps = [2, 3, 4, 5, 7].map((k) => ({
    k,
    amp: uniform(rng, 0.02, 0.14) / Math.sqrt(k),
    phase: rng() * 2 * Math.PI,
  }));
  const offX = rng() * 4096;
  const offY = rng() * 4096;
  const { rx, ry } = rock;
  const cx = rock.x;
  const cy = rock.baseY - 0.5 * ry;
  // Buried below this line; the sand meets the rock along a slight curve.
  const foot = rock.baseY + 0.2 * ry;
  const haze = hazeAt(rock.depth);
  const [br, bg, bb] = rock.color;
  const [dr, dg, db] = palette.waterDeep;
  const edgeScale = Math.sqrt(rx * ry);
  const blotch = 6 * unit * (0.6 + 0.6 * rock.depth);

  // A light shadow: deeply shaded sand loses its colour and would pass for rock.
  contactShadow(c, cx, rock.baseY + 0.1 * ry, rx * 1.3, ry * 0.4, 0.3 * (1 - haze));

  const x0 = Math.max(0, Math.floor(cx - rx * 1.4));
  const x1 = Math.min(c.width - 1, Math.ceil(cx + rx * 1.4));
  const y0 = Math.max(0, Math.floor(cy - ry * 1.4));
  const y1 = Math.min(c.height - 1, Math.ceil(foot + 1));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const ex = (px - cx) / rx;
      const ey = (py - cy) / ry;
      const rho = Math.hypot(ex, ey);
      const theta = Math.atan2(ey, ex);
      let r = 1;
      for (const l of lumps) r += l.amp * Math.sin(l.k * theta + l.phase);
      const footY = foot + 0.06 * ry * Math.sin(ex * 2.3 + offX);
      const alpha = coverage(Math.min((r - rho) * edgeScale, footY - py));
      if (alpha <= 0) continue;

      const q = Math.min(1, rho / r);
      const h = Math.sqrt(1 - q * q);
      const tx = (px + offX) / blotch;
      const ty = (py + offY) / blotch;
      // Normal of the dome, roughened by the gradient of the coarse noise (bump mapping).
      const n0 = fbm(tex.coarse, tx, ty, 3);
      const bx = (fbm(tex.coarse, tx + 0.25, ty, 3) - n0) * 6;
      const by = (fbm(tex.coarse, tx, ty + 0.25, 3) - n0) * 6;
      const nx = ex / r - bx;
      const ny = (ey / r) * 1.2 - by;
      const nz = h * 1.1 + 0.15;
      // Ambient-heavy light: the blotches and cracks, not the shading, make a rock's look.
      const light = 0.6 + 0.5 * diffuse(nx, ny, nz);
      const occlusion = 1 - 0.3 * smoothstep(cy, foot, py);
      const blot = 0.7 + 0.55 * n0;
      const crackN = fbm(tex.detail, tx * 0.7, ty * 0.7, 2);
      const crack = 0.7 + 0.3 * smoothstep(0.004, 0.025, Math.abs(crackN - 0.5));
      const speck = 0.92 + 0.16 * hash2(x, y, rock.seed);
      const algae = clamp01(-ny * 1.2) * smoothstep(0.5, 0.7, fbm(tex.detail, tx * 1.7, ty * 1.7, 2)) * 0.6;
      const k = light * occlusion * blot * crack * speck;
      let r0 = (br + (ALGAE[0] - br) * algae) * k;
      let g0 = (bg + (ALGAE[1] - bg) * algae) * k;
      let b0 = (bb + (ALGAE[2] - bb) * algae) * k;
      r0 += (dr - r0) * haze;
      g0 += (dg - g0) * haze;
      b0 += (db - b0) * haze;
      paintPixel(c, y * c.width + x, r0, g0, b0, alpha, SceneClass.rock);
    }
  }
}
