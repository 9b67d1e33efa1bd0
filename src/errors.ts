/**
 * Every failure stegostream reports on purpose. One class per failure, a stable `code`, the
 * offending value in the message, and the fix where there is one. Tests match these messages.
 */

export type ErrorCode =
  | 'E_INPUT_NOT_FOUND'
  | 'E_INPUT_EMPTY'
  | 'E_INPUT_NOT_VIDEO'
  | 'E_DECODE'
  | 'E_IMAGE_UNREADABLE'
  | 'E_INPUT_DAMAGED'
  | 'E_FFMPEG_MISSING'
  | 'E_OUTPUT_UNWRITABLE'
  | 'E_OUTPUT_FULL'
  | 'E_ENCODE'
  | 'E_BAD_OPTION'
  | 'E_MODEL_NOT_ONNX'
  | 'E_MODEL_CONTRACT'
  | 'E_DEVICE'
  | 'E_CHECKPOINT'
  | 'E_CONFIG'
  | 'E_SOURCE'
  | 'E_EVAL_INPUT'
  | 'E_CONTROL'
  | 'E_LISTEN'
  | 'E_CLUSTER'
  | 'E_MODEL_UNKNOWN'
  | 'E_MODEL_DOWNLOAD'
  | 'E_MODEL_OFFLINE'
  | 'E_MODEL_INTEGRITY'
  | 'E_NATS_SECURITY';

/** Base class: `code` is stable across releases, `details` holds structured fields. */
export class StegoError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** A file or folder given as input does not exist. */
export class InputNotFoundError extends StegoError {
  constructor(path: string, what = 'input', reason = 'no such file or folder') {
    super('E_INPUT_NOT_FOUND', `Cannot read ${what} "${path}": ${reason}. Check the path.`, {
      details: { path },
    });
  }
}

/** The input exists but holds nothing to decode. */
export class InputEmptyError extends StegoError {
  constructor(path: string, reason = 'the file is empty (0 bytes)', fix = 'Give a video file with at least one frame') {
    super('E_INPUT_EMPTY', `Cannot process "${path}": ${reason}. ${fix}.`, {
      details: { path },
    });
  }
}

/** ffmpeg cannot find a video stream in the input. */
export class InputNotVideoError extends StegoError {
  constructor(path: string, stderrTail: string) {
    super(
      'E_INPUT_NOT_VIDEO',
      `Cannot process "${path}": ffmpeg finds no video stream in it (is it a video?). ffmpeg said: ${stderrTail}`,
      { details: { path, stderrTail } },
    );
  }
}

/**
 * Decoding failed part-way; frames before the failure were processed and kept. `framesWritten`
 * is what the outputs hold (the frames decoded unless a run stopped short of them).
 */
export class DecodeError extends StegoError {
  readonly input: string;
  readonly framesDecoded: number;
  readonly stderrTail: string;

  constructor(input: string, framesDecoded: number, stderrTail: string, cause?: unknown, framesWritten = framesDecoded) {
    super(
      'E_DECODE',
      `Decoding "${input}" failed after ${framesDecoded} frame(s); outputs hold ${framesWritten === framesDecoded ? 'those' : `${framesWritten} of those`} frames. ffmpeg said: ${stderrTail}`,
      { cause, details: { input, framesDecoded, framesWritten, stderrTail } },
    );
    this.input = input;
    this.framesDecoded = framesDecoded;
    this.stderrTail = stderrTail;
  }

  /** The same failure, stating how many frames the outputs hold. */
  withFramesWritten(framesWritten: number): DecodeError {
    return new DecodeError(this.input, this.framesDecoded, this.stderrTail, this.cause, framesWritten);
  }
}

/** A still image (a frame of an image folder, a mask) cannot be read or decoded. */
export class ImageUnreadableError extends StegoError {
  constructor(
    readonly path: string,
    readonly reason: string,
    cause?: unknown,
    written?: number,
  ) {
    super(
      'E_IMAGE_UNREADABLE',
      `Cannot read image "${path}": ${reason}. ` +
        (written === undefined ? '' : `Outputs hold the ${written} frame(s) before it. `) +
        'Replace or remove it, or convert it to PNG.',
      { cause, details: { path, reason, ...(written === undefined ? {} : { framesWritten: written }) } },
    );
  }

  /** The same failure, stating how many frames the outputs hold (a folder that failed midway). */
  withFramesWritten(written: number): ImageUnreadableError {
    return new ImageUnreadableError(this.path, this.reason, this.cause, written);
  }
}

/** The input decoded to the end, but ffmpeg met damaged data on the way and concealed it. */
export class DamagedInputError extends StegoError {
  constructor(
    readonly input: string,
    readonly framesDecoded: number,
    readonly errors: number,
    readonly firstAtFrame: number,
    readonly sample: string,
    framesWritten = framesDecoded,
  ) {
    super(
      'E_INPUT_DAMAGED',
      `"${input}" holds damaged data: ffmpeg reported ${errors} decoding error(s), the first near frame ${firstAtFrame}, and concealed them; ` +
        (framesWritten === framesDecoded
          ? `outputs hold all ${framesDecoded} frame(s) it decoded. `
          : `it decoded ${framesDecoded} frame(s) and outputs hold ${framesWritten}. `) +
        `Check the file with: ffmpeg -v error -i "${input}" -f null -  (ffmpeg said: ${sample})`,
      { details: { input, framesDecoded, framesWritten, errors, firstAtFrame, sample } },
    );
  }

  /** The same finding, stating how many frames the outputs hold. */
  withFramesWritten(framesWritten: number): DamagedInputError {
    return new DamagedInputError(this.input, this.framesDecoded, this.errors, this.firstAtFrame, this.sample, framesWritten);
  }
}

/** ffmpeg or ffprobe is not on the PATH. */
export class FfmpegMissingError extends StegoError {
  constructor(binary: string) {
    super(
      'E_FFMPEG_MISSING',
      `${binary} was not found on the PATH. Install it (Debian/Ubuntu: sudo apt-get install ffmpeg) or set FFMPEG_PATH / FFPROBE_PATH.`,
      { details: { binary } },
    );
  }
}

/** An output path cannot be written. */
export class OutputUnwritableError extends StegoError {
  constructor(path: string, reason: string, cause?: unknown) {
    super('E_OUTPUT_UNWRITABLE', `Cannot write output "${path}": ${reason}. Choose a writable path.`, {
      cause,
      details: { path },
    });
  }
}

/** The disk (or quota) of an output filled up mid-run: that output stops; the others are finalised. */
export class OutputFullError extends StegoError {
  constructor(path: string, atFrame: number, cause?: unknown) {
    super(
      'E_OUTPUT_FULL',
      `Cannot write output "${path}": no space left on its device (ENOSPC) at frame ${atFrame}; it is incomplete, the other outputs are finalised. Free some space or write it elsewhere.`,
      { cause, details: { path, atFrame } },
    );
  }
}

/** True for a Node or ffmpeg failure that means the device is full. */
export function isNoSpace(err: unknown, text = ''): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC' || /No space left on device|ENOSPC/i.test(text);
}

/** The output encoder failed. */
export class EncodeError extends StegoError {
  constructor(path: string, stderrTail: string, cause?: unknown) {
    super('E_ENCODE', `Encoding "${path}" failed. ffmpeg said: ${stderrTail}`, { cause, details: { path, stderrTail } });
  }
}

/** An option has a value out of range or of the wrong type. */
export class BadOptionError extends StegoError {
  constructor(option: string, expected: string, received: unknown) {
    super('E_BAD_OPTION', `Expected ${expected} for ${option} but received ${describe(received)}`, {
      details: { option, expected, received },
    });
  }
}

/** A model file is not an ONNX model. */
export class ModelNotOnnxError extends StegoError {
  constructor(path: string, cause?: unknown) {
    super(
      'E_MODEL_NOT_ONNX',
      `"${path}" is not an ONNX model ONNX Runtime can load. Export one with tools/export_dino.py or use --backbone builtin.`,
      { cause, details: { path } },
    );
  }
}

/** A model loads but breaks the backbone contract of DESIGN.md. */
export class ModelContractError extends StegoError {
  constructor(path: string, problem: string) {
    super(
      'E_MODEL_CONTRACT',
      `Backbone "${path}" breaks the backbone contract: ${problem}. See README "Models" for what a backbone must provide.`,
      { details: { path, problem } },
    );
  }
}

/** A requested execution provider is not available. */
export class DeviceError extends StegoError {
  constructor(device: string, reason: string) {
    super('E_DEVICE', `Device "${device}" is not available: ${reason}`, { details: { device } });
  }
}

/** A head checkpoint is unreadable or does not fit the running configuration. */
export class CheckpointError extends StegoError {
  constructor(path: string, problem: string, cause?: unknown) {
    super('E_CHECKPOINT', `Checkpoint "${path}" cannot be used: ${problem}`, { cause, details: { path, problem } });
  }
}

/** A pipeline file or configuration value is invalid. */
export class ConfigError extends StegoError {
  constructor(where: string, problems: readonly string[]) {
    super('E_CONFIG', `Invalid pipeline ${where}:\n  ${problems.join('\n  ')}`, { details: { where, problems } });
  }
}

/** A live source failed (connection refused, stalled, ...). */
export class SourceError extends StegoError {
  constructor(streamId: string, url: string, reason: string, cause?: unknown) {
    super('E_SOURCE', `Stream "${streamId}" (${url}): ${reason}`, { cause, details: { streamId, url } });
  }
}

/** `eval` inputs do not line up. */
export class EvalInputError extends StegoError {
  constructor(problem: string) {
    super('E_EVAL_INPUT', `Cannot evaluate: ${problem}`, { details: { problem } });
  }
}

/** A control request (rename, pause, ...) is malformed or refers to something unknown. */
export class ControlError extends StegoError {
  constructor(problem: string) {
    super('E_CONTROL', problem, { details: { problem } });
  }
}

/** A --backbone / `models` name that is neither known nor `hub:OWNER/REPO`. */
export class UnknownModelError extends StegoError {
  constructor(name: string, known: readonly string[]) {
    super(
      'E_MODEL_UNKNOWN',
      `Unknown model "${name}": use one of ${known.join(', ')}, hub:OWNER/REPO for another repository in the same layout, ` +
        'builtin, or a path to an ONNX file (stegostream models list shows them).',
      { details: { name } },
    );
  }
}

/** A model file could not be downloaded (HTTP error, timeout, cut connection that did not resume). */
export class ModelDownloadError extends StegoError {
  constructor(url: string, reason: string, fix: string, cause?: unknown) {
    super('E_MODEL_DOWNLOAD', `Cannot download ${url}: ${reason}. ${fix}`, { cause, details: { url, reason } });
  }
}

/** A model is not cached and may not be downloaded (offline). */
export class ModelOfflineError extends StegoError {
  constructor(name: string, why: string, manual: string) {
    super('E_MODEL_OFFLINE', `Model "${name}" is not in the cache and ${why}. ${manual}`, { details: { name } });
  }
}

/** A cached or downloaded model file does not match its SHA-256. */
export class ModelIntegrityError extends StegoError {
  constructor(path: string, expected: string, actual: string, fix: string) {
    super('E_MODEL_INTEGRITY', `"${path}" is damaged: its SHA-256 is ${actual}, expected ${expected}. ${fix}`, {
      details: { path, expected, actual },
    });
  }
}

/** A server cannot bind its address (the port is in use, a privileged port, an address not on this machine). */
export class ListenError extends StegoError {
  constructor(host: string, port: number, code: string, fix: string, cause?: unknown) {
    const why =
      code === 'EADDRINUSE'
        ? 'the port is in use (EADDRINUSE)'
        : code === 'EACCES'
          ? 'permission denied (EACCES; ports below 1024 need privileges)'
          : code === 'EADDRNOTAVAIL'
            ? 'the address is not on this machine (EADDRNOTAVAIL)'
            : code;
    super('E_LISTEN', `Cannot listen on ${host}:${port}: ${why}; ${fix}`, { cause, details: { host, port, code } });
  }
}

/**
 * A NATS connection was refused for a security reason (credentials, certificate, permission), or
 * its security settings cannot be used. The message names the connection, the cause and the fix,
 * and never holds a secret.
 */
export class NatsSecurityError extends StegoError {
  constructor(connection: string, cause: string, fix: string, err?: unknown) {
    super('E_NATS_SECURITY', `NATS connection "${connection}": ${cause}. Fix: ${fix}`, { cause: err, details: { connection, fix } });
  }
}

/** "1.5 of type number", the way sharp reports received values. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value}" of type string`;
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  return `${String(value)} of type ${typeof value}`;
}

// ---- the cluster roles (E_CLUSTER) ----

/** Another trainer holds the lease and renews it. */
export class TrainerLeaseHeldError extends StegoError {
  constructor(holder: string, host: string, pid: number, since: number) {
    super(
      'E_CLUSTER',
      `Another trainer ("${holder}", pid ${pid} on ${host}, since ${new Date(since).toISOString()}) holds the trainer lease and is alive: only one trainer may write heads. Stop it first, or run this one with --standby to take over when it stops.`,
      { details: { holder, host, pid, since } },
    );
  }
}

/** This trainer's lease was taken over (it was paused longer than the TTL, or partitioned). */
export class TrainerLeaseLostError extends StegoError {
  constructor(newHolder: string, cause?: unknown) {
    super(
      'E_CLUSTER',
      `This trainer lost its lease (now held by "${newHolder}"): it stopped writing heads. It was cut off or paused for longer than the lease TTL; restart it with --standby to wait for the lease again.`,
      { cause, details: { newHolder } },
    );
  }
}

/** Nothing came back from the cluster for too long (no workers running?). */
export class ClusterStalledError extends StegoError {
  constructor(waitedMs: number, missing: string) {
    super(
      'E_CLUSTER',
      `No results for ${Math.round(waitedMs / 1000)} s while waiting for ${missing}: are workers and a trainer running on this NATS server and prefix? (stegostream worker --nats URL; stegostream trainer --nats URL)`,
      { details: { waitedMs, missing } },
    );
  }
}

/** `process --cluster` finished but some results are not in its outputs (never came back, or an output failed). */
export class ClusterIncompleteError extends StegoError {
  constructor(notWritten: number, frames: number, reasons: readonly string[]) {
    super(
      'E_CLUSTER',
      `${notWritten} result(s) of this run were not written (${frames} frame(s) were): ${reasons.join('; ') || 'they never came back from the cluster'}.`,
      { details: { notWritten, frames, reasons } },
    );
  }
}
