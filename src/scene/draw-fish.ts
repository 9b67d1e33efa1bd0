/**
 * Draws the fish into a frame: each swims a loop across the world (leaving one side, coming back
 * on the other), bobbing gently and beating its tail. An ellipse body shaded dark above and pale
 * below, a stripe, an eye, a beating tail; every pixel of it is labelled fish.
 */
import { coverage, paintPixel, type Canvas } from './canvas.js';
import type { FishSpec } from './layout.js';
import { SceneClass } from './scene-classes.js';

/**
 * @param view the frame to draw into
 * @param t scene time in seconds
 * @param ox world x of the view's left edge (likewise oy)
 * @param worldWidth the fish loop around the world, plus a margin so they leave the view first
 */
export function drawFish(view: Canvas, fish: FishSpec, t: number, ox: number, oy: number, worldWidth: number): void {
  const margin = 2 * fish.length;
  const loop = worldWidth + 2 * margin;
  const travelled = (((fish.x0 + fish.speed * t) % loop) + loop) % loop;
  const cx = travelled - margin - ox;
  const cy = fish.y0 + fish.bobAmp * Math.sin((2 * Math.PI * t) / fish.bobPeriod + fish.phase) - oy;
  const dir = fish.speed >= 0 ? 1 : -1;
  const a = fish.length * 0.36;
  // Deep-bodied, so most of a fish fills whole 8x8 patches rather than straddling them.
  const b = a * 0.48;
  const tailStart = -a * 0.82;
  const tailEnd = -a * 1.45;
  const wag = Math.sin(2 * Math.PI * fish.wagRate * t + fish.phase) * 0.5 * b;
  const [br, bgc, bb] = fish.body;
  const [sr, sg, sb] = fish.stripe;

  const x0 = Math.max(0, Math.floor(cx - a * 1.6));
  const x1 = Math.min(view.width - 1, Math.ceil(cx + a * 1.6));
  const y0 = Math.max(0, Math.floor(cy - b * 1.9));
  const y1 = Math.min(view.height - 1, Math.ceil(cy + b * 1.9));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      // Fish coordinates: lx grows towards the head whichever way the fish swims.
      const lx = (x + 0.5 - cx) * dir;
      const ly = y + 0.5 - cy;
      const e = Math.hypot(lx / a, ly / b);
      const body = (1 - e) * b;
      let tail = -1;
      let tailAt = 0;
      if (lx < tailStart && lx > tailEnd - 1) {
        tailAt = (tailStart - lx) / (tailStart - tailEnd);
        const mid = wag * tailAt;
        const half = b * (0.18 + 0.75 * tailAt);
        tail = Math.min(half - Math.abs(ly - mid), lx - tailEnd);
        // Forked tip.
        if (tailAt > 0.75) tail = Math.min(tail, Math.abs(ly - mid) - b * 0.9 * (tailAt - 0.75));
      }
      const alpha = coverage(Math.max(body, tail));
      if (alpha <= 0) continue;

      let r: number;
      let g: number;
      let bl: number;
      if (body >= tail) {
        // Countershading: darker back, paler belly, and a soft highlight on the flank; gentle, so a
        // fish reads as one smooth yellow body rather than as texture.
        const k = 0.82 + 0.15 * (ly / b) + 0.1 * Math.max(0, 1 - e * 1.4);
        const stripe = Math.abs(lx - a * 0.15) < a * 0.11;
        const eye = Math.hypot(lx - a * 0.58, ly + b * 0.18);
        if (eye < b * 0.2) {
          r = g = bl = eye < b * 0.12 ? 15 : 235;
        } else if (stripe) {
          r = sr * k;
          g = sg * k;
          bl = sb * k;
        } else {
          r = br * k;
          g = bgc * k;
          bl = bb * k;
        }
      } else {
        const k = 0.78 - 0.15 * tailAt;
        r = br * k;
        g = bgc * k;
        bl = bb * k;
      }
      paintPixel(view, y * view.width + x, r, g, bl, alpha, SceneClass.fish);
    }
  }
}
