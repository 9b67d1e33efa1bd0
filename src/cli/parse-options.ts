import { InvalidArgumentError } from 'commander';

/** commander argParsers with the errors module's message template. */

/** A class count: a positive integer, or "auto" (the count the features hold). */
export function classCount(name: string): (v: string) => number | 'auto' {
  return (v) => {
    if (v === 'auto') return 'auto';
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`Expected positive integer or "auto" for ${name} but received "${v}"`);
    return n;
  };
}
export function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 1)
      throw new InvalidArgumentError(`Expected positive integer for ${name} but received "${v}"`);
    return n;
  };
}

export function nonNegativeInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n))
      throw new InvalidArgumentError(`Expected non-negative integer for ${name} but received "${v}"`);
    return n;
  };
}

/** A number >= 1, or exactly 0 (which switches the thing off). */
export function ratioOrZero(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !(n === 0 || n >= 1))
      throw new InvalidArgumentError(`Expected number >= 1, or 0 for none, for ${name} but received "${v}"`);
    return n;
  };
}

/** A share in (0, 1]: of the machine's CPU, say. */
export function share(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !(n > 0 && n <= 1))
      throw new InvalidArgumentError(`Expected number in (0, 1] for ${name} but received "${v}"`);
    return n;
  };
}

/** A finite number above 0 (1e-5 and 0.00001 both parse). */
export function positiveNumber(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`Expected number above 0 for ${name} but received "${v}"`);
    return n;
  };
}

export function integer(name: string): (v: string) => number {
  return (v) => {
    if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`Expected integer for ${name} but received "${v}"`);
    return Number(v);
  };
}

/** "WxH", e.g. 1280x720. */
export function sizeArg(name: string): (v: string) => { width: number; height: number } {
  return (v) => {
    const m = /^(\d+)x(\d+)$/.exec(v);
    if (!m || Number(m[1]) < 2 || Number(m[2]) < 2)
      throw new InvalidArgumentError(`Expected WIDTHxHEIGHT (e.g. 1280x720) for ${name} but received "${v}"`);
    return { width: Number(m[1]), height: Number(m[2]) };
  };
}

export function oneOf<T extends string>(name: string, values: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(values as readonly string[]).includes(v))
      throw new InvalidArgumentError(`Expected one of ${values.join(', ')} for ${name} but received "${v}"`);
    return v as T;
  };
}
