/**
 * Maximum-weight one-to-one matching of rows to columns (Hungarian algorithm, via the `munkres`
 * package). Used to keep class ids stable across head versions and, by evaluation, to match
 * clusters to ground-truth classes by overlap (DESIGN.md "Metric").
 */
import { munkres } from 'munkres';
import { BadOptionError } from '../errors.js';

/**
 * Matches rows to columns so that the sum of the matched `score[row][col]` is as large as
 * possible; the matrix may be rectangular. Returns, for every row, its column, or -1 for rows
 * left over when there are more rows than columns.
 *
 * @param score e.g. a confusion matrix [clusters][classes] of pixel counts, or cosine similarities.
 * @throws BadOptionError on ragged rows or non-finite values.
 */
export function hungarianMatch(score: ArrayLike<ArrayLike<number>>): Int32Array {
  const rows = score.length;
  const result = new Int32Array(rows).fill(-1);
  if (rows === 0) return result;
  const cols = score[0]!.length;
  const cost: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const row = score[r]!;
    if (row.length !== cols) throw new BadOptionError(`score[${r}]`, `a row of ${cols} values`, `${row.length} values`);
    const out = new Array<number>(cols);
    for (let c = 0; c < cols; c++) {
      const v = row[c]!;
      if (!Number.isFinite(v)) throw new BadOptionError(`score[${r}][${c}]`, 'a finite number', v);
      // munkres minimises; negate to maximise (it handles negative costs).
      out[c] = -v;
    }
    cost.push(out);
  }
  if (cols === 0) return result;
  for (const [r, c] of munkres(cost)) result[r] = c;
  return result;
}
