import ffmpeg from 'fluent-ffmpeg';
import { PassThrough, type Readable } from 'node:stream';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { FfmpegMissingError } from '../errors.js';

/** Lines of ffmpeg's stderr kept for error messages. */
export const STDERR_TAIL_LINES = 12;
/** After SIGTERM, how long ffmpeg gets to finish its output file before SIGKILL. */
export const FFMPEG_KILL_TIMEOUT_MS = 3000;
/** When to repeat the signal if ffmpeg has not exited, ms. */
export const FFMPEG_SECOND_SIGNAL_MS = 500;

export interface FfmpegRun {
  /** ffmpeg's stdout when `pipeOutput` was asked for; paused by the reader, so ffmpeg blocks. */
  readonly stdout: Readable | undefined;
  /** Resolves when ffmpeg exits: `error` set when it failed or was killed. */
  readonly done: Promise<{ readonly error?: Error }>;
  /** The last stderr lines, joined: attach to every error about this run. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after a timeout. Safe to call twice or after exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Sends a filter command (`target` a filter's name, e.g. `framestep@keep`) through ffmpeg's
   * interactive stdin, as its `c` key does; false when ffmpeg is not running.
   */
  command(target: string, name: string, arg: string): boolean;
}

export interface FfmpegInput {
  readonly source: string | Readable;
  readonly options?: readonly string[];
}

export interface FfmpegSpec {
  /** One input, or several (`inputs`) for filter graphs that combine them. */
  readonly input?: string | Readable;
  readonly inputOptions?: readonly string[];
  readonly inputs?: readonly FfmpegInput[];
  readonly outputOptions: readonly string[];
  /** Output format (`-f`); rawvideo for frame readers. */
  readonly format: string;
  /** File path to write; when absent, output is piped to `stdout`. */
  readonly output?: string;
  /** Called with each stderr line (showinfo parsing, progress). */
  readonly onStderr?: (line: string) => void;
}

let checked = false;

/** Throws FfmpegMissingError once, early, instead of a cryptic ENOENT from spawn. */
export function assertFfmpegAvailable(): void {
  if (checked) return;
  const bin = process.env['FFMPEG_PATH'] ?? 'ffmpeg';
  const res = spawnSync(bin, ['-version'], { stdio: 'ignore' });
  if (res.error || res.status !== 0) throw new FfmpegMissingError(bin);
  checked = true;
}

/**
 * Starts ffmpeg through fluent-ffmpeg with the given arguments. All stegostream processes go
 * through here so that teardown (SIGTERM, then SIGKILL) and stderr capture are written once.
 */
export function runFfmpeg(spec: FfmpegSpec): FfmpegRun {
  assertFfmpegAvailable();
  const tail: string[] = [];
  const command = ffmpeg({ stdoutLines: STDERR_TAIL_LINES });
  const inputs: FfmpegInput[] = [...(spec.inputs ?? [])];
  if (spec.input !== undefined) inputs.unshift({ source: spec.input, options: spec.inputOptions ?? [] });
  inputs.forEach((inp, i) => {
    command.input(inp.source);
    command.inputOptions([...(i === 0 ? ['-hide_banner'] : []), ...(inp.options ?? [])]);
  });
  command.outputOptions([...spec.outputOptions]).format(spec.format);
  command.on('stderr', (line: string) => {
    // showinfo prints a line per frame; keep it out of the error tail, which is for humans.
    if (!line.includes('Parsed_showinfo')) {
      tail.push(line);
      if (tail.length > STDERR_TAIL_LINES) tail.shift();
    }
    spec.onStderr?.(line);
  });
  let exited = false;
  let started = false;
  let stopRequested: NodeJS.Signals | undefined;
  // fluent-ffmpeg keeps the child it spawned here (not in its typings).
  const spawned = (): ChildProcess | undefined => (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
  command.on('start', () => {
    started = true;
    // A command written as ffmpeg exits must not become an unhandled EPIPE.
    spawned()?.stdin?.on('error', () => undefined);
    // fluent-ffmpeg spawns asynchronously; a stop() that came first is carried out now.
    if (stopRequested !== undefined) command.kill(stopRequested);
  });
  const done = new Promise<{ error?: Error }>((resolve) => {
    command.on('error', (error: Error) => {
      exited = true;
      // fluent-ffmpeg reports "Output stream closed" when ffmpeg's stdout ends more than 20 ms
      // before the process exit event (common under load), then kills it. The stream ending
      // means ffmpeg wrote everything, so that is a normal end.
      if (error.message === 'Output stream closed' && spec.output === undefined) resolve({});
      else resolve({ error });
    });
    command.on('end', () => {
      exited = true;
      resolve({});
    });
  });
  let stdout: PassThrough | undefined;
  if (spec.output !== undefined) {
    command.output(spec.output);
    command.run();
  } else {
    // A small high-water mark: the pipe from ffmpeg, not this buffer, holds the backlog.
    stdout = new PassThrough({ highWaterMark: 1 << 16 });
    command.pipe(stdout, { end: true });
  }
  const sendCommand = (target: string, name: string, arg: string): boolean => {
    const stdin = spawned()?.stdin;
    if (!started || exited || !stdin || stdin.destroyed) return false;
    // ffmpeg reads the key, then one line: target, time (-1: now), command, argument.
    stdin.write(`c${target} -1 ${name} ${arg}\n`);
    return true;
  };
  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (exited) return Promise.resolve();
    stopping ??= (async () => {
      if (started) command.kill(signal);
      else stopRequested = signal;
      // ffmpeg finishes its output on the first SIGTERM, but a read blocked on a silent network
      // input only gives up on the second one; SIGKILL is the last resort.
      const again = setTimeout(() => {
        if (started && !exited) command.kill(signal);
      }, FFMPEG_SECOND_SIGNAL_MS);
      const timer = setTimeout(() => {
        try {
          command.kill('SIGKILL');
        } catch {
          // already gone
        }
      }, FFMPEG_KILL_TIMEOUT_MS);
      await done;
      clearTimeout(again);
      clearTimeout(timer);
    })();
    return stopping;
  };
  return {
    stdout,
    done,
    stderrTail: () =>
      tail
        .filter((l) => l.trim() !== '')
        .slice(-6)
        .join(' | '),
    stop,
    command: sendCommand,
  };
}
