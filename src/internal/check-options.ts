/** Call-time checks for numeric options, in the message template of errors.ts (sharp's style). */
import { BadOptionError } from '../errors.js';

/** `value` or `fallback` when undefined; throws BadOptionError unless a positive integer. */
export function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new BadOptionError(name, 'positive integer', value);
  return value;
}

/** `value` or `fallback` when undefined; throws BadOptionError unless an integer >= 0. */
export function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new BadOptionError(name, 'integer >= 0', value);
  return value;
}
