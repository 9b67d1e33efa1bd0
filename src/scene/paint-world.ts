/**
 * Paints the static world of a seed once: backdrop, then rocks and corals from back to front (so
 * near objects hide far ones, in colour and in labels alike). Frames are windows into it.
 */
import { createCanvas, type Canvas } from './canvas.js';
import type { SceneLayout } from './layout.js';
import { paintBackdrop } from './paint-backdrop.js';
import { paintCoral } from './paint-coral.js';
import { paintRock } from './paint-rock.js';
import type { Palette } from './palette.js';
import { SceneClass } from './scene-classes.js';
import { createTextures } from './textures.js';

export function paintWorld(layout: SceneLayout, palette: Palette, seed: number): Canvas {
  const g = layout.geometry;
  const canvas = createCanvas(g.width, g.height);
  paintBackdrop(canvas, g, palette, seed);
  const textures = createTextures(seed);
  for (const object of layout.objects) {
    if (object.kind === 'rock') paintRock(canvas, object, g.unit, textures, palette);
    else paintCoral(canvas, object, g.unit, textures, palette);
  }
  if (palette.coralMatchesSand) matchMeanColour(canvas, SceneClass.coral, SceneClass.sand);
  return canvas;
}

/**
 * Shifts every pixel labelled `target` so that the class's mean colour equals that of `reference`,
 * keeping its texture (the deviations from the mean) as painted.
 */
function matchMeanColour(c: Canvas, target: number, reference: number): void {
  const target3 = meanColour(c, target);
  const reference3 = meanColour(c, reference);
  if (target3 === undefined || reference3 === undefined) return;
  const sr = reference3[0] - target3[0];
  const sg = reference3[1] - target3[1];
  const sb = reference3[2] - target3[2];
  for (let i = 0; i < c.labels.length; i++) {
    if (c.labels[i] !== target) continue;
    c.rgb[i * 3] = c.rgb[i * 3]! + sr;
    c.rgb[i * 3 + 1] = c.rgb[i * 3 + 1]! + sg;
    c.rgb[i * 3 + 2] = c.rgb[i * 3 + 2]! + sb;
  }
}

function meanColour(c: Canvas, label: number): [number, number, number] | undefined {
  let r = 0;
  let g = 0;
  let b = 0;
  let n = 0;
  for (let i = 0; i < c.labels.length; i++) {
    if (c.labels[i] !== label) continue;
    r += c.rgb[i * 3]!;
    g += c.rgb[i * 3 + 1]!;
    b += c.rgb[i * 3 + 2]!;
    n++;
  }
  return n === 0 ? undefined : [r / n, g / n, b / n];
}
