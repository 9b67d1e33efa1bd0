/**
 * Names the cluster roles share (docs/scaling.md "Subjects, streams and buckets"):
 *
 *   <PREFIX>_FRAMES            JetStream work-queue stream of encoded frames (ingest -> workers)
 *   <prefix>.ingest.<stream>   its subjects, one per video stream
 *   workers                    the one durable pull consumer every worker shares
 *   <prefix>.train.features    sampled patch features, workers -> trainer (core NATS)
 *   <PREFIX>_heads             KV bucket: key `head` (checkpoint bytes), key `trainer-lease`
 *   <prefix>.<stream>.stats    results, exactly as the single-process NATS sink publishes them
 *   <PREFIX>_RESULTS           JetStream stream of results kept for collectors (bounded by age and size)
 *   <prefix>.results.<stream>.seg  its subjects: one message per segmented frame (stats, mask on request)
 *   <prefix>.results.<stream>.end  ingest's end of a stream (header `frames`), kept for late collectors
 *   collector                  the durable consumer `stegostream collect` reads it with
 *
 * `<PREFIX>` is the subject prefix with dots made underscores (stream and bucket names cannot
 * hold dots): prefix "site1.stego" gives stream `site1_stego_FRAMES`.
 */
import { BadOptionError } from '../errors.js';
import { checkPrefix, subjectToken } from '../sinks/nats-subjects.js';

export const WORKERS_CONSUMER = 'workers';
export const HEAD_KEY = 'head';
export const LEASE_KEY = 'trainer-lease';
export const COLLECTOR_CONSUMER = 'collector';

/** Second tokens of `<prefix>.<x>...` the cluster uses itself: no video stream may be named so. */
export const RESERVED_STREAM_TOKENS: readonly string[] = ['ingest', 'train', 'ctl', 'events', 'results'];

function namePart(prefix: string): string {
  return checkPrefix(prefix).replace(/\./g, '_');
}

export function framesStreamName(prefix: string): string {
  return `${namePart(prefix)}_FRAMES`;
}

export function resultsStreamName(prefix: string): string {
  return `${namePart(prefix)}_RESULTS`;
}

/**
 * Four tokens after the prefix's, so the stream cannot overlap `serve`'s stats history
 * (`<prefix>.*.stats`) on the same server and prefix.
 */
export function resultsSubject(prefix: string, stream: string): string {
  return `${prefix}.results.${subjectToken(stream)}.seg`;
}

/** Ingest's end of a stream, stored beside its results so a late collector knows the count. */
export function resultsEndSubject(prefix: string, stream: string): string {
  return `${prefix}.results.${subjectToken(stream)}.end`;
}

export function resultsWildcard(prefix: string): string {
  return `${prefix}.results.*.*`;
}

export function headsBucketName(prefix: string): string {
  return `${namePart(prefix)}_heads`;
}

export function ingestSubject(prefix: string, stream: string): string {
  return `${prefix}.ingest.${subjectToken(stream)}`;
}

export function ingestWildcard(prefix: string): string {
  return `${prefix}.ingest.>`;
}

export function featuresSubject(prefix: string): string {
  return `${prefix}.train.features`;
}

/**
 * Throws BadOptionError for a stream name that would collide with the cluster's own subjects
 * (`<prefix>.ingest.stats` would be both a frame and a result subject).
 */
export function checkClusterStream(stream: string): string {
  const token = subjectToken(stream);
  if (RESERVED_STREAM_TOKENS.includes(token) || token === 'stats') {
    throw new BadOptionError(
      'stream name',
      `a name other than ${[...RESERVED_STREAM_TOKENS, 'stats'].map((t) => `"${t}"`).join(', ')}`,
      stream,
    );
  }
  return stream;
}
