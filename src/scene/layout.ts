/**
 * Where everything is, decided once per seed: the world (a little larger than the view, so the
 * camera can pan across it), its wavy horizon, the rocks and corals standing on the seafloor, the
 * fish and the marine snow. Pure data in world pixels; painting is elsewhere.
 *
 * Sizes are relative to the view height, so a seed gives the same picture at any resolution.
 */
import type { Rgb, Palette } from './palette.js';
import { mulberry32, pick, subSeed, uniform, type Rng } from './prng.js';
import type { ResolvedSceneOptions } from './scene-options.js';

export interface WorldGeometry {
  readonly viewWidth: number;
  readonly viewHeight: number;
  /** World size in pixels: the view plus the camera's travel. */
  readonly width: number;
  readonly height: number;
  /** Pixels per "base pixel" of a 256-row view: texture scales multiply by it. */
  readonly unit: number;
  /** Camera travel in pixels. */
  readonly panX: number;
  readonly panY: number;
  /** World y of the water/seafloor boundary, per world column. */
  readonly horizon: Float32Array;
  readonly horizonTop: number;
  readonly horizonMean: number;
}

interface PlacedObject {
  /** World x of the object's foot. */
  readonly x: number;
  /** World y where the object meets the sand. */
  readonly baseY: number;
  /** Ground depth of the foot, 0 (far, at the horizon) to 1 (near, bottom of the world). */
  readonly depth: number;
  readonly seed: number;
  readonly color: Rgb;
}

export interface RockSpec extends PlacedObject {
  readonly kind: 'rock';
  /** Half-width and half-height in pixels. */
  readonly rx: number;
  readonly ry: number;
}

export type CoralForm = 'branch' | 'brain' | 'bumpy';

export interface CoralSpec extends PlacedObject {
  readonly kind: 'coral';
  readonly form: CoralForm;
  /** Half-width of the colony in pixels. */
  readonly size: number;
}

export type SeafloorObject = RockSpec | CoralSpec;

export interface FishSpec {
  /** World position at t = 0 along its loop, and mean height. */
  readonly x0: number;
  readonly y0: number;
  /** Pixels per second; the sign is the heading. */
  readonly speed: number;
  readonly length: number;
  readonly bobAmp: number;
  readonly bobPeriod: number;
  readonly phase: number;
  /** Tail beats per second. */
  readonly wagRate: number;
  readonly body: Rgb;
  readonly stripe: Rgb;
}

export interface SnowSpec {
  /** Position at t = 0 as fractions of the view, velocity in view heights per second. */
  readonly x0: number;
  readonly y0: number;
  readonly vx: number;
  readonly vy: number;
  readonly radius: number;
  readonly brightness: number;
  /** How much the speck moves with the camera (near specks move more). */
  readonly parallax: number;
}

export interface SceneLayout {
  readonly geometry: WorldGeometry;
  /** Back to front (by baseY): paint in this order. */
  readonly objects: readonly SeafloorObject[];
  readonly fish: readonly FishSpec[];
  readonly snow: readonly SnowSpec[];
}

/** Camera travel as fractions of the view. */
const PAN_X = 0.25;
const PAN_Y = 0.06;
/** Seconds for the camera to pan across and back, and to bob up and down. */
const PAN_PERIOD_S = 24;
const BOB_PERIOD_S = 7;
/**
 * Area budgets for rocks and corals, as shares of the world. They overshoot the shares seen in
 * frames (about 8% each) because objects hide one another and run off the bottom edge.
 */
const ROCK_SHARE = 0.09;
const CORAL_SHARE = 0.125;

export function planLayout(options: ResolvedSceneOptions, palette: Palette): SceneLayout {
  const geometry = planGeometry(options);
  return Object.freeze({
    geometry,
    objects: planObjects(geometry, palette, mulberry32(subSeed(options.seed, 2))),
    fish: planFish(geometry, palette, mulberry32(subSeed(options.seed, 3))),
    snow: planSnow(geometry, mulberry32(subSeed(options.seed, 4))),
  });
}

/** Top-left of the view in world pixels at `t` seconds: a slow sweep with a gentle bob. */
export function cameraOffset(geometry: WorldGeometry, t: number): { readonly ox: number; readonly oy: number } {
  return {
    ox: Math.round(geometry.panX * 0.5 * (1 - Math.cos((2 * Math.PI * t) / PAN_PERIOD_S))),
    oy: Math.round(geometry.panY * 0.5 * (1 - Math.cos((2 * Math.PI * t) / BOB_PERIOD_S))),
  };
}

/** Ground depth of world row y: 0 at the highest point of the horizon, 1 at the bottom. */
export function groundDepth(geometry: WorldGeometry, y: number): number {
  return Math.max(0.015, (y - geometry.horizonTop) / (geometry.height - geometry.horizonTop));
}

/**
 * Share of water haze over something at ground depth d: far things fade into the blue, but only
 * so far (at most 22%), so that far sand still has the colour of sand.
 */
export function hazeAt(depth: number): number {
  const far = 1 - Math.min(1, depth);
  return 0.22 * far * far * far;
}

function planGeometry(o: ResolvedSceneOptions): WorldGeometry {
  const rng = mulberry32(subSeed(o.seed, 1));
  const panX = Math.round(o.width * PAN_X);
  const panY = Math.round(o.height * PAN_Y);
  const width = o.width + panX;
  const height = o.height + panY;
  const base = height * uniform(rng, 0.4, 0.47);
  // Two long swells and a short one: distant dunes, not a ruler line.
  const waves = [0.022, 0.012, 0.005].map((amp, k) => ({
    amp: amp * height,
    freq: ((k === 0 ? uniform(rng, 0.6, 1.4) : k === 1 ? uniform(rng, 2, 3.5) : uniform(rng, 7, 11)) * 2 * Math.PI) / width,
    phase: rng() * 2 * Math.PI,
  }));
  const horizon = new Float32Array(width);
  let top = Infinity;
  let sum = 0;
  for (let x = 0; x < width; x++) {
    let y = base;
    for (const w of waves) y += w.amp * Math.sin(w.freq * x + w.phase);
    horizon[x] = y;
    top = Math.min(top, y);
    sum += y;
  }
  return Object.freeze({
    viewWidth: o.width,
    viewHeight: o.height,
    width,
    height,
    unit: o.height / 256,
    panX,
    panY,
    horizon,
    horizonTop: top,
    horizonMean: sum / width,
  });
}

interface Draft {
  readonly depth: number;
  readonly make: (x: number, baseY: number) => SeafloorObject;
}

function planObjects(g: WorldGeometry, palette: Palette, rng: Rng): SeafloorObject[] {
  const H = g.viewHeight;
  const worldArea = g.width * g.height;
  const drafts: Draft[] = [];
  // Perspective: an object's size is proportional to its foot's distance below the horizon.
  const drawDepth = (): number => 0.05 + 0.95 * Math.pow(rng(), 0.85);
  const scaleAt = (depth: number): number => Math.max(0.2, depth);

  for (let area = 0; area < ROCK_SHARE * worldArea;) {
    const depth = drawDepth();
    const rx = H * 0.15 * scaleAt(depth) * uniform(rng, 0.7, 1.3);
    const ry = rx * uniform(rng, 0.55, 0.8);
    const seed = Math.floor(rng() * 2 ** 31);
    const color = pick(rng, palette.rocks);
    area += 0.85 * Math.PI * rx * ry;
    drafts.push({ depth, make: (x, baseY) => ({ kind: 'rock', x, baseY, depth, seed, color, rx, ry }) });
  }
  const forms: readonly CoralForm[] = ['branch', 'brain', 'bumpy', 'branch'];
  for (let area = 0; area < CORAL_SHARE * worldArea;) {
    const depth = drawDepth();
    const form = pick(rng, forms);
    const size = H * (form === 'branch' ? 0.15 : 0.12) * scaleAt(depth) * uniform(rng, 0.75, 1.25);
    const seed = Math.floor(rng() * 2 ** 31);
    const color = pick(rng, palette.corals);
    // Rough coverage: a branching colony fills about a third of its box, a dome most of its half ellipse.
    area += form === 'branch' ? 0.8 * size * size : 0.45 * Math.PI * size * size * 0.75;
    drafts.push({ depth, make: (x, baseY) => ({ kind: 'coral', form, x, baseY, depth, seed, color, size }) });
  }

  // Spread feet evenly across the world (jittered slots), so every camera position sees a fair mix.
  shuffle(rng, drafts);
  const objects = drafts.map((d, i) => {
    const x = ((i + uniform(rng, 0.1, 0.9)) / drafts.length) * g.width;
    const horizonY = g.horizon[Math.min(g.width - 1, Math.floor(x))]!;
    return d.make(x, horizonY + d.depth * (g.height - horizonY));
  });
  return objects.sort((a, b) => a.baseY - b.baseY);
}

function planFish(g: WorldGeometry, palette: Palette, rng: Rng): FishSpec[] {
  const H = g.viewHeight;
  const count = Math.max(3, Math.round((6 * g.viewWidth) / H));
  const fish: FishSpec[] = [];
  for (let i = 0; i < count; i++) {
    const colours = pick(rng, palette.fish);
    // Large enough for fish to cover about 3% of a frame: a class, not a speckle.
    const length = H * uniform(rng, 0.17, 0.24);
    fish.push({
      x0: rng() * (g.width + 4 * length),
      // Mostly open water, a few low over the reef.
      y0: uniform(rng, 0.08 * g.height, g.horizonMean + 0.08 * g.height),
      speed: (rng() < 0.5 ? -1 : 1) * uniform(rng, 0.035, 0.09) * g.width,
      length,
      bobAmp: uniform(rng, 0.004, 0.015) * H,
      bobPeriod: uniform(rng, 2, 5),
      phase: rng() * 2 * Math.PI,
      wagRate: uniform(rng, 1.5, 3),
      body: colours.body,
      stripe: colours.stripe,
    });
  }
  return fish;
}

/** Marine snow: sparse and faint, a hint of particles rather than a texture over the water. */
function planSnow(g: WorldGeometry, rng: Rng): SnowSpec[] {
  const count = Math.round((g.viewWidth * g.viewHeight) / (2000 * g.unit * g.unit));
  const snow: SnowSpec[] = [];
  for (let i = 0; i < count; i++) {
    const near = rng();
    snow.push({
      x0: rng(),
      y0: rng(),
      vx: uniform(rng, -0.012, 0.012),
      vy: uniform(rng, 0.004, 0.025),
      radius: g.unit * (0.5 + 1.3 * near * near),
      brightness: uniform(rng, 20, 55) * (0.6 + 0.4 * near),
      parallax: 0.3 + 0.9 * near,
    });
  }
  return snow;
}

function shuffle<T>(rng: Rng, items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
}
