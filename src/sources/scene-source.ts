import { Observable } from 'rxjs';
import { BadOptionError } from '../errors.js';
import { FlowGate } from '../internal/flow-gate.js';
import { createScene, type Scene } from '../scene/render-scene.js';
import { expectBoolean, expectInteger, resolveSceneOptions, type SceneOptions } from '../scene/scene-options.js';
import type { Frame } from '../types.js';

export interface SceneSourceOptions extends SceneOptions {
  /** Default 'scene'. */
  readonly streamId?: string;
  /**
   * Length of the clip in frames, integer >= 1. Without `loop` the source completes after it
   * (default 300, ten seconds at 30 fps); with `loop` the clip repeats forever (default: an endless
   * scene that never repeats).
   */
  readonly frames?: number;
  /** Repeat the clip forever; `seq` and `pts` keep counting up. Default false. */
  readonly loop?: boolean;
  /** Emit at `fps` by the wall clock, like a live camera; otherwise as fast as taken. Default false. */
  readonly realtime?: boolean;
  /** Lossless backpressure: a credit is taken before each frame is emitted. */
  readonly gate?: FlowGate;
}

export const DEFAULT_SCENE_STREAM_ID = 'scene';
export const DEFAULT_SCENE_CLIP_FRAMES = 300;

/**
 * Frames of the procedural underwater scene (src/scene/render-scene.ts), rendered lazily one at a
 * time: the demo input, and test input whose ground truth `createScene` gives for the same
 * options. `seq` counts from 0, `pts = seq / fps`, `capturedAt` is the wall clock at emission.
 *
 * Options are checked at call time (BadOptionError). The scene is built on first subscribe and
 * kept for later subscriptions. With a `gate` each frame waits for a credit (a credit taken after
 * unsubscribing is given back); with `realtime` frames are paced at `fps` and, when the consumer
 * falls behind, the pace restarts from the late frame instead of bursting to catch up.
 * Unsubscribing stops at once: no frame after it, no timer left. Never errors after subscribe
 * other than from a bug in rendering.
 *
 * @example
 * sceneSource({ width: 448, height: 256, seed: 1, frames: 90, realtime: true }).subscribe(show);
 */
export function sceneSource(options: SceneSourceOptions): Observable<Frame> {
  const scene = resolveSceneOptions(options);
  const streamId = options.streamId ?? DEFAULT_SCENE_STREAM_ID;
  if (typeof streamId !== 'string' || streamId === '') throw new BadOptionError('streamId', 'non-empty string', streamId);
  const loop = expectBoolean('loop', options.loop ?? false);
  const realtime = expectBoolean('realtime', options.realtime ?? false);
  const clip =
    options.frames === undefined
      ? loop
        ? Infinity
        : DEFAULT_SCENE_CLIP_FRAMES
      : expectInteger('frames', options.frames, 1, Number.MAX_SAFE_INTEGER);
  const total = loop ? Infinity : clip;
  const gate = options.gate;
  if (gate !== undefined && !(gate instanceof FlowGate)) throw new BadOptionError('gate', 'a FlowGate', gate);
  const intervalMs = 1000 / scene.fps;
  let renderer: Scene | undefined;

  return new Observable<Frame>((subscriber) => {
    let stopped = false;
    let cancelWait: (() => void) | undefined;
    // Every pause goes through here so that teardown can end it: no timer outlives the subscription.
    const wait = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        const done = (): void => {
          cancelWait = undefined;
          resolve();
        };
        if (ms > 0) {
          const timer = setTimeout(done, ms);
          cancelWait = () => (clearTimeout(timer), done());
        } else {
          const immediate = setImmediate(done);
          cancelWait = () => (clearImmediate(immediate), done());
        }
      });

    const run = async (): Promise<void> => {
      // Yield first: building the scene is CPU work that must not run inside subscribe().
      await wait(0);
      if (stopped) return;
      renderer ??= createScene(scene);
      let clockStart = performance.now();
      for (let seq = 0; seq < total; seq++) {
        if (gate !== undefined) {
          await gate.acquire();
          if (stopped) {
            gate.release();
            return;
          }
        }
        if (realtime) {
          const late = performance.now() - (clockStart + seq * intervalMs);
          if (late > intervalMs) clockStart += late;
          else await wait(-late);
        } else {
          // Lets other streams, timers and an unsubscribe in between frames.
          await wait(0);
        }
        if (stopped) {
          gate?.release();
          return;
        }
        const { width, height, rgb } = renderer.render(seq % clip);
        subscriber.next(Object.freeze({ streamId, seq, pts: seq / scene.fps, width, height, rgb, capturedAt: Date.now() }));
        if (stopped) return;
      }
      subscriber.complete();
    };
    run().catch((error: unknown) => subscriber.error(error));

    return () => {
      stopped = true;
      cancelWait?.();
    };
  });
}
