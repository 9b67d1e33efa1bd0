/**
 * NATS subject names (DESIGN.md "NATS subjects"):
 *
 *   <prefix>.<stream>.stats | .frames | .masks | .classes | .events   per stream
 *   <prefix>.<stream>.summary.1s | .10s | .60s                        windowed summaries per stream
 *   <prefix>.events                                                    service-wide events (head updated, pipeline state)
 *   <prefix>.ctl.<verb>                                                control, request-reply
 *
 * A stream name becomes one subject token: every character outside [A-Za-z0-9_-] (dots, spaces,
 * `*`, `>`, non-ASCII) is replaced by `_`, and an empty name becomes `_`; so "dive.cam 1" is
 * published as `stegostream.dive_cam_1.stats`. Headers and payloads keep the original name.
 * Replacement is not one-to-one ("a.b" and "a_b" share subjects): give streams distinct names made
 * of those characters, and do not name one `ctl`.
 */
import { BadOptionError } from '../errors.js';

export const DEFAULT_PREFIX = 'stegostream';

export type StreamChannel = 'stats' | 'frames' | 'masks' | 'classes' | 'events' | 'summary';

/** `name` as a single subject token (see the module comment). */
export function subjectToken(name: string): string {
  const token = name.replace(/[^A-Za-z0-9_-]/g, '_');
  return token === '' ? '_' : token;
}

/** Throws BadOptionError unless `prefix` is dot-separated tokens of [A-Za-z0-9_-]. */
export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new BadOptionError(
      'prefix',
      'NATS subject prefix like "stegostream" or "site1.stego" (tokens of A-Z a-z 0-9 _ -, joined by dots)',
      prefix,
    );
  }
  return prefix;
}

export function streamSubject(prefix: string, stream: string, channel: StreamChannel): string {
  return `${prefix}.${subjectToken(stream)}.${channel}`;
}

/** `<prefix>.<stream>.summary.<window>`: a stream's windowed summaries (window 1s, 10s or 60s). */
export function summarySubject(prefix: string, stream: string, window: string): string {
  return `${prefix}.${subjectToken(stream)}.summary.${window}`;
}

export function serviceEventsSubject(prefix: string): string {
  return `${prefix}.events`;
}

export function controlSubject(prefix: string, verb: string): string {
  return `${prefix}.ctl.${verb}`;
}

/** The subjects a JetStream stats-history stream captures. */
export function statsWildcard(prefix: string): string {
  return `${prefix}.*.stats`;
}
