/**
 * Ground-truth classes of the procedural underwater scene. The ids are stable across releases:
 * masks written to disk store them as pixel values, and eval tests compare against them.
 */
import type { ClassInfo } from '../types.js';

/** Class id by name. */
export const SceneClass = Object.freeze({
  water: 0,
  sand: 1,
  rock: 2,
  coral: 3,
  fish: 4,
} as const);

export type SceneClassName = keyof typeof SceneClass;
export type SceneClassId = (typeof SceneClass)[SceneClassName];

/** Every class, index = id. `color` is for legends and overlays, not the colour the scene paints. */
export const SCENE_CLASSES: readonly ClassInfo[] = Object.freeze(
  [
    { id: SceneClass.water, name: 'water', color: [40, 110, 200] as const },
    { id: SceneClass.sand, name: 'sand', color: [235, 205, 120] as const },
    { id: SceneClass.rock, name: 'rock', color: [125, 110, 100] as const },
    { id: SceneClass.coral, name: 'coral', color: [240, 80, 150] as const },
    { id: SceneClass.fish, name: 'fish', color: [255, 225, 30] as const },
  ].map((c) => Object.freeze(c)),
);

/** Class names, index = id. */
export const SCENE_CLASS_NAMES: readonly string[] = Object.freeze(SCENE_CLASSES.map((c) => c.name));
