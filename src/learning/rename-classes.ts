import { BadOptionError } from '../errors.js';
import type { HeadState } from './head-state.js';

/** Longest class name, characters (as the live rename). */
const MAX_NAME = 64;

/**
 * Parses `ID=NAME` arguments (`0=water 3="sea grass"`) and applies them to a head's names.
 * @throws BadOptionError naming the argument: not ID=NAME, an id the head does not have, an empty
 *   or over-long name, an id given twice, or two classes left with one name (case ignored).
 */
export function renameClasses(head: HeadState, pairs: readonly string[]): HeadState {
  if (pairs.length === 0) throw new BadOptionError('renames', 'at least one ID=NAME, e.g. 0=water 3=sand', '');
  const names = [...head.names];
  const given = new Set<number>();
  for (const pair of pairs) {
    const m = /^\s*(\d+)\s*=(.*)$/s.exec(pair);
    if (!m) throw new BadOptionError('rename', 'ID=NAME, e.g. 3=sand', pair);
    const id = Number(m[1]);
    const name = (m[2] as string).trim();
    if (id >= head.k) throw new BadOptionError('rename', `a class id 0-${head.k - 1} (the checkpoint has ${head.k} classes)`, pair);
    if (name === '' || [...name].length > MAX_NAME || /\p{Cc}/u.test(name))
      throw new BadOptionError('rename', `a name of 1-${MAX_NAME} characters without control characters`, pair);
    if (given.has(id)) throw new BadOptionError('rename', `each class id once (${id} is given twice)`, pairs.join(' '));
    given.add(id);
    names[id] = name;
  }
  const seen = new Map<string, number>();
  names.forEach((n, id) => {
    const key = n.trim().toLowerCase();
    const other = seen.get(key);
    if (other !== undefined)
      throw new BadOptionError('rename', `names used once (classes ${other} and ${id} would both be "${n}")`, pairs.join(' '));
    seen.set(key, id);
  });
  return { ...head, names };
}
