/**
 * Runs the built CLI (dist/cli.js; `npm test` builds first) as a user would, in a child process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface StartedCli {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
  /** What the process has written to stderr so far. */
  stderr(): string;
  /** What the process has written to stdout so far. */
  stdout(): string;
}

export function startCli(args: readonly string[], cwd?: string): StartedCli {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stderr: () => stderr, stdout: () => stdout };
}

export function runCli(args: readonly string[], cwd?: string): Promise<CliResult> {
  return startCli(args, cwd).done;
}

export async function tempDir(prefix = 'stegostream-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Frames in a video as ffprobe counts them by decoding (not the container's claim). */
export function countFrames(path: string): number {
  const r = spawnSync(
    'ffprobe',
    ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`ffprobe failed on ${path}: ${r.stderr}`);
  return Number(r.stdout.trim().split(/\s+/)[0]);
}

export function videoInfo(path: string): { width: number; height: number; fps: string } {
  const r = spawnSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,r_frame_rate', '-of', 'json', path],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`ffprobe failed on ${path}: ${r.stderr}`);
  const s = (JSON.parse(r.stdout) as { streams: { width: number; height: number; r_frame_rate: string }[] }).streams[0];
  if (!s) throw new Error(`no video stream in ${path}`);
  return { width: s.width, height: s.height, fps: s.r_frame_rate };
}

/** A lavfi test video made by ffmpeg itself. */
export function lavfiVideo(
  path: string,
  opts: { size?: string; rate?: number; seconds?: number; codec?: string; pixFmt?: string } = {},
): void {
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${opts.size ?? '320x240'}:rate=${opts.rate ?? 15}`,
      '-t',
      String(opts.seconds ?? 2),
      '-c:v',
      opts.codec ?? 'libx264',
      '-pix_fmt',
      opts.pixFmt ?? 'yuv420p',
      path,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr}`);
}
