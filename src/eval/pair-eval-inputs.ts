import { readdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { EvalInputError, StegoError } from '../errors.js';
import { IMAGE_EXTENSIONS } from '../internal/read-image.js';
import { imageSize, listImages } from '../sources/image-folder-source.js';

/** Missing files named in one error, at most (then "and N more"). */
const MAX_NAMED = 5;
/** Aspect ratios of an image and its mask may differ this much (relative) from rounding. */
const ASPECT_TOLERANCE = 0.02;

export interface EvalPair {
  readonly image: string;
  readonly truth: string;
  /** The predicted label map, when a predictions folder was given. */
  readonly prediction?: string;
}

/**
 * Pairs every image of a folder with its ground-truth mask (and prediction) by base name, and
 * checks each mask has its image's aspect ratio, before any segmenting: every missing or
 * mismatched file is reported at once, so a long run does not end on a missing mask.
 *
 * @throws EvalInputError listing the images without a mask (or prediction), or the first mask
 *   whose shape does not fit its image; ImageUnreadableError for an image or mask that does not decode.
 */
export async function pairEvalInputs(images: string, truth: string, predictions?: string): Promise<EvalPair[]> {
  const files = listImages(images);
  const masks = imagesByStem(truth, 'ground-truth');
  const preds = predictions === undefined ? undefined : imagesByStem(predictions, 'predictions');
  const noMask = files.filter((f) => !masks.has(stem(f)));
  if (noMask.length > 0) {
    const first = noMask[0] as string;
    const which = noMask.length === 1 ? `image "${basename(first)}"` : `${noMask.length} of ${files.length} images (${listed(noMask)})`;
    throw new EvalInputError(`no ground-truth mask for ${which} in "${truth}" (expected ${stem(first)}.png)`);
  }
  if (preds) {
    const noPred = files.filter((f) => !preds.has(stem(f)));
    if (noPred.length > 0) {
      const which =
        noPred.length === 1 ? `image "${basename(noPred[0] as string)}"` : `${noPred.length} of ${files.length} images (${listed(noPred)})`;
      throw new EvalInputError(`no prediction for ${which} in "${predictions}"`);
    }
  }
  const pairs = files.map((image): EvalPair => {
    const prediction = preds?.get(stem(image));
    return { image, truth: masks.get(stem(image)) as string, ...(prediction ? { prediction } : {}) };
  });
  for (const p of pairs) {
    const [img, mask] = await Promise.all([imageSize(p.image), imageSize(p.truth)]);
    const a = img.width / img.height;
    if (Math.abs(mask.width / mask.height - a) / a > ASPECT_TOLERANCE)
      throw new EvalInputError(
        `mask "${p.truth}" is ${mask.width}x${mask.height} but its image "${p.image}" is ${img.width}x${img.height}: a mask must cover its image (same aspect ratio)`,
      );
  }
  return pairs;
}

function stem(path: string): string {
  return basename(path, extname(path));
}

function listed(paths: readonly string[]): string {
  const names = paths.slice(0, MAX_NAMED).map((p) => `"${basename(p)}"`);
  return paths.length > MAX_NAMED ? `${names.join(', ')} and ${paths.length - MAX_NAMED} more` : names.join(', ');
}

/** Image files of a folder by base name (other files, such as classes.json, are left out). */
function imagesByStem(dir: string, what: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (err instanceof StegoError) throw err;
    throw new EvalInputError(`${what} folder "${dir}" cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const images = names.filter((n) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(n).toLowerCase()));
  return new Map(images.map((n) => [stem(n), join(dir, n)]));
}
