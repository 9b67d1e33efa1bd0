/**
 * Control requests (rename a class, pause/resume learning, snapshot the head, status), shared by
 * the WebSocket hub and the NATS publisher so both validate and answer the same way. The pipeline
 * implements `ControlHandler`; this module checks every request before it reaches the handler and
 * turns every failure into an error reply, so a bad request never crashes anything.
 */
import type { Logger } from 'pino';
import { ControlError, StegoError, describe } from '../errors.js';
import type { ClassInfo } from '../types.js';

/** Implemented by the pipeline. Methods may throw `ControlError`; the message goes to the caller. */
export interface ControlHandler {
  /** Renames class `id`; returns the whole legend after the rename. */
  renameClass(id: number, name: string): ClassInfo[];
  pauseLearning(): void;
  resumeLearning(): void;
  /** Writes a checkpoint of the current head. */
  snapshotHead(): Promise<{ path: string; version: number }>;
  /** Anything JSON-serialisable that describes the running service. */
  status(): object;
}

export const CONTROL_VERBS = ['rename', 'pause', 'resume', 'snapshot', 'status'] as const;
export type ControlVerb = (typeof CONTROL_VERBS)[number];

/** Longest class name accepted, in characters (code points). */
export const MAX_CLASS_NAME_LENGTH = 64;

export type ControlReply =
  | { readonly ok: true; readonly verb: 'rename'; readonly classes: readonly ClassInfo[] }
  | { readonly ok: true; readonly verb: 'pause' | 'resume'; readonly learning: 'paused' | 'running' }
  | { readonly ok: true; readonly verb: 'snapshot'; readonly path: string; readonly version: number }
  | { readonly ok: true; readonly verb: 'status'; readonly status: object }
  | { readonly ok: false; readonly verb?: string; readonly error: { readonly code: string; readonly message: string } };

export interface ControlContext {
  /** The legend the sink last saw; when given, class ids not in it are refused before the handler. */
  readonly classes?: readonly ClassInfo[] | undefined;
  readonly logger?: Logger;
}

/**
 * Validates `verb` and `args` (an object holding the verb's fields, e.g. `{ classId, name }` for
 * rename; other verbs take none) and runs it on `handler`. Never rejects: failures become
 * `{ ok: false, error: { code, message } }` (code `E_CONTROL` for bad requests, the handler's
 * `StegoError` code, or `E_INTERNAL` for anything else, which is also logged).
 */
export async function runControl(
  handler: ControlHandler,
  verb: unknown,
  args: unknown,
  context: ControlContext = {},
): Promise<ControlReply> {
  const verbName = typeof verb === 'string' ? verb : undefined;
  try {
    if (!isVerb(verb)) {
      throw new ControlError(`Unknown control verb ${describe(verb)}. Expected one of: ${CONTROL_VERBS.join(', ')}.`);
    }
    switch (verb) {
      case 'rename': {
        const { classId, name } = parseRename(args, context.classes);
        return { ok: true, verb, classes: handler.renameClass(classId, name) };
      }
      case 'pause':
        handler.pauseLearning();
        return { ok: true, verb, learning: 'paused' };
      case 'resume':
        handler.resumeLearning();
        return { ok: true, verb, learning: 'running' };
      case 'snapshot': {
        const { path, version } = await handler.snapshotHead();
        return { ok: true, verb, path, version };
      }
      case 'status':
        return { ok: true, verb, status: handler.status() };
    }
  } catch (err) {
    return errorReply(verbName, err, context.logger);
  }
}

/** Checks a rename request; throws `ControlError` naming the bad field. */
export function parseRename(args: unknown, classes?: readonly ClassInfo[]): { classId: number; name: string } {
  const obj = typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {};
  const { classId, name } = obj;
  if (typeof classId !== 'number' || !Number.isInteger(classId) || classId < 0) {
    throw new ControlError(`Expected integer >= 0 for classId but received ${describe(classId)}`);
  }
  if (classes !== undefined && classes.length > 0) assertClassId(classes, classId);
  if (typeof name !== 'string' || name.trim() === '' || [...name].length > MAX_CLASS_NAME_LENGTH) {
    throw new ControlError(
      `Expected non-empty string of at most ${MAX_CLASS_NAME_LENGTH} characters for name but received ${describe(name)}`,
    );
  }
  // Control characters would corrupt legends in logs, files and the viewer.
  if (/\p{Cc}/u.test(name)) {
    throw new ControlError(`Expected a name without control characters but received ${JSON.stringify(name)}`);
  }
  return { classId, name: name.trim() };
}

/** Throws `ControlError` when `id` is not one of `classes`' ids; for `ControlHandler.renameClass`. */
export function assertClassId(classes: readonly ClassInfo[], id: number): void {
  if (classes.some((c) => c.id === id)) return;
  const ids = classes.map((c) => c.id);
  const range = ids.length === 0 ? 'none yet' : `ids ${Math.min(...ids)}-${Math.max(...ids)}`;
  throw new ControlError(`Class id ${id} does not exist: the head has ${classes.length} classes (${range}).`);
}

/**
 * Throws `ControlError` when another class already has `name` (case and surrounding spaces
 * ignored): two classes of one name would make stats columns, legends and summaries ambiguous.
 */
export function assertUniqueName(classes: readonly ClassInfo[], id: number, name: string): void {
  const key = name.trim().toLowerCase();
  const other = classes.find((c) => c.id !== id && c.name.trim().toLowerCase() === key);
  if (other) throw new ControlError(`Class ${other.id} is already named "${other.name}": give class ${id} another name.`);
}

function isVerb(v: unknown): v is ControlVerb {
  return typeof v === 'string' && (CONTROL_VERBS as readonly string[]).includes(v);
}

function errorReply(verb: string | undefined, err: unknown, logger?: Logger): ControlReply {
  if (err instanceof StegoError) {
    return { ok: false, ...(verb === undefined ? {} : { verb }), error: { code: err.code, message: err.message } };
  }
  logger?.error({ err, verb }, 'control handler failed');
  const message = `Control verb "${verb ?? '?'}" failed: ${err instanceof Error ? err.message : String(err)}`;
  return { ok: false, ...(verb === undefined ? {} : { verb }), error: { code: 'E_INTERNAL', message } };
}
