import exifReader from 'exif-reader';
import sharp from 'sharp';

/**
 * When a photo was taken, ms since the epoch, from its EXIF `DateTimeOriginal` (else `DateTime`),
 * or undefined when it has none. EXIF times carry no time zone: they are read as UTC, as the
 * camera clocks of ROVs and survey rigs are usually set (README "Statistics").
 */
export async function exifTime(image: Buffer): Promise<number | undefined> {
  try {
    const { exif } = await sharp(image).metadata();
    if (!exif) return undefined;
    const tags = exifReader(exif);
    const t = tags.Photo?.DateTimeOriginal ?? tags.Image?.DateTime;
    const ms = t instanceof Date ? t.getTime() : NaN;
    return Number.isFinite(ms) ? ms : undefined;
  } catch {
    // A damaged EXIF block is not a reason to drop the image: it just has no time.
    return undefined;
  }
}
