import { BadOptionError } from '../errors.js';

/** Reconnect delays of a live source: exponential, capped, with random jitter. */
export interface BackoffOptions {
  /** Delay before the first retry, ms. */
  readonly initialMs: number;
  /** Upper bound of any delay, ms. */
  readonly maxMs: number;
  /** Each consecutive failure multiplies the delay by this (>= 1). */
  readonly factor: number;
  /** Relative spread: a delay d becomes d * (1 +- jitter), uniformly; 0-1. */
  readonly jitter: number;
  /** After this long of continuous frames, ms, the next failure starts again at `initialMs`. */
  readonly resetAfterMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.2,
  resetAfterMs: 10_000,
});

/** Fills in defaults and checks ranges; throws BadOptionError naming the field. */
export function resolveBackoff(partial: Partial<BackoffOptions> | undefined): Readonly<BackoffOptions> {
  if (partial !== undefined && (typeof partial !== 'object' || partial === null)) {
    throw new BadOptionError('backoff', 'an object { initialMs, maxMs, factor, jitter }', partial);
  }
  const b = { ...DEFAULT_BACKOFF, ...stripUndefined(partial ?? {}) };
  const check = (name: keyof BackoffOptions, ok: boolean, expected: string): void => {
    if (!ok) throw new BadOptionError(`backoff.${name}`, expected, b[name]);
  };
  check('initialMs', isFinitePositive(b.initialMs), 'a positive number of ms');
  check('maxMs', isFinitePositive(b.maxMs) && b.maxMs >= b.initialMs, `a number of ms >= backoff.initialMs (${b.initialMs})`);
  check('factor', Number.isFinite(b.factor) && b.factor >= 1, 'a number >= 1');
  check('jitter', Number.isFinite(b.jitter) && b.jitter >= 0 && b.jitter <= 1, 'a number from 0 to 1');
  check('resetAfterMs', isFinitePositive(b.resetAfterMs), 'a positive number of ms');
  return Object.freeze(b);
}

/**
 * Delay before retry number `attempt` (1-based): `initialMs * factor^(attempt-1)`, capped at
 * `maxMs`, then spread by the jitter (and capped again), rounded to whole ms.
 */
export function backoffDelay(attempt: number, b: Readonly<BackoffOptions>, random: () => number = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * b.factor ** Math.max(0, attempt - 1));
  const spread = 1 + b.jitter * (2 * random() - 1);
  return Math.round(Math.min(b.maxMs, base * spread));
}

function isFinitePositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
