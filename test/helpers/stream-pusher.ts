/**
 * A real ffmpeg *sender* for live-source tests: lavfi testsrc2 (320x240, 15 fps, paced with -re),
 * H.264 (libx264 ultrafast, zerolatency, a keyframe a second) or MJPEG, pushed to 127.0.0.1.
 *
 * - `rtp`: RTP/UDP to `port` (RTCP to port+1), writing the SDP to `sdpFile`, like a BlueROV;
 * - `mpegts-udp`: MPEG-TS over UDP, 1316-byte datagrams;
 * - `rtsp`: RTSP ANNOUNCE/RECORD over TCP to a receiver listening with `-rtsp_flags listen`;
 * - `srt`: MPEG-TS over SRT as caller, to a receiver in `mode=listener`;
 * - `rtmp`: FLV over RTMP to a receiver listening with `-listen 1`;
 * - `mjpeg-http`: an HTTP server on `port` answering every GET with `multipart/x-mixed-replace`
 *   JPEGs (ffmpeg's mpjpeg, boundary "ffmpeg"), one encoder per client;
 * - `hls-http`: ffmpeg writing a live HLS playlist (1 s segments) to a temp folder that an HTTP
 *   server on `port` serves.
 * Senders that connect to the receiver (rtsp, srt, rtmp) retry until it listens, and after it drops.
 */
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { createReadStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { runFfmpeg, type FfmpegRun } from '../../src/internal/ffmpeg-process.js';

export type PushKind = 'rtp' | 'mpegts-udp' | 'rtsp' | 'srt' | 'rtmp' | 'mjpeg-http' | 'hls-http';

export interface PusherOptions {
  readonly kind: PushKind;
  readonly port: number;
  /** rtp: where ffmpeg writes the SDP. */
  readonly sdpFile?: string;
  /** rtsp and rtmp: the URL path; default "/live" and "/live/cam". */
  readonly path?: string;
  /** H.264: frames between keyframes (default 15, one a second); 105 is a keyframe every 7 s. */
  readonly gop?: number;
  /** Picture size of the test pattern, WxH; default 320x240. */
  readonly size?: string;
}

const SOURCE = 'testsrc2=size=320x240:rate=15';
const INPUT_OPTIONS = ['-re', '-f', 'lavfi'];
const h264 = (gop = 15): string[] => [
  ...['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p'],
  // A fixed keyframe interval, as a camera's encoder sends (no scene-cut keyframes in between).
  ...['-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0'],
];
const QUIET = ['-loglevel', 'warning', '-nostats'];
/** Pause between a caller's connection attempts while the receiver is not listening yet. */
const CALLER_RETRY_MS = 200;

/** Undefined when this ffmpeg build has the protocol, else why not (for `it.skipIf`). */
export function ffmpegProtocolMissing(protocol: string): string | undefined {
  const r = spawnSync(process.env['FFMPEG_PATH'] ?? 'ffmpeg', ['-hide_banner', '-protocols'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return `ffmpeg not runnable: ${r.error?.message ?? r.stderr}`;
  const input = r.stdout.split(/Output:/)[0] ?? '';
  return input.split(/\s+/).includes(protocol) ? undefined : `this ffmpeg build has no ${protocol} input protocol`;
}

/** A free UDP port on 127.0.0.1; with `pair`, an even port whose successor is free too (RTP + RTCP). */
export async function freeUdpPort(pair = false): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const a = createSocket('udp4');
    a.bind(0, '127.0.0.1');
    await once(a, 'listening');
    const port = a.address().port;
    if (!pair) {
      a.close();
      return port;
    }
    a.close();
    if (port % 2 !== 0 || port >= 65535) continue;
    const b = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      b.once('error', () => resolve(false));
      b.bind(port + 1, '127.0.0.1', () => resolve(true));
    });
    b.close();
    if (ok) return port;
  }
  throw new Error('no free UDP port pair');
}

/** A free TCP port on 127.0.0.1 (the OS picks; a tiny race with other processes is accepted). */
export async function freeTcpPort(): Promise<number> {
  const srv = createTcpServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  srv.close();
  if (typeof addr !== 'object' || addr === null) throw new Error('no port');
  return addr.port;
}

/** Resolves once `path` exists; rejects after `timeoutMs`. */
export async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > until) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await sleep(25);
  }
}

export class StreamPusher {
  private runs = new Set<FfmpegRun>();
  private http: Server | undefined;
  private loop: Promise<void> | undefined;
  private stopped = true;
  private hlsDir: string | undefined;

  constructor(readonly options: PusherOptions) {}

  static start(options: PusherOptions): StreamPusher {
    const p = new StreamPusher(options);
    p.start();
    return p;
  }

  /** Where the sender sends (or, for mjpeg-http, serves). */
  get url(): string {
    const { kind, port } = this.options;
    switch (kind) {
      case 'rtp':
        return `rtp://127.0.0.1:${port}`;
      case 'mpegts-udp':
        return `udp://127.0.0.1:${port}?pkt_size=1316`;
      case 'rtsp':
        return `rtsp://127.0.0.1:${port}${this.options.path ?? '/live'}`;
      case 'srt':
        return `srt://127.0.0.1:${port}?mode=caller&pkt_size=1316`;
      case 'rtmp':
        return `rtmp://127.0.0.1:${port}${this.options.path ?? '/live/cam'}`;
      case 'mjpeg-http':
        return `http://127.0.0.1:${port}/stream.mjpg`;
      case 'hls-http':
        return `http://127.0.0.1:${port}/live.m3u8`;
    }
  }

  /** Resolves when a receiver can use the sender: the SDP file is written, the HTTP server listens. */
  async ready(): Promise<void> {
    if (this.options.kind === 'rtp' && this.options.sdpFile !== undefined) await waitForFile(this.options.sdpFile);
    if (this.hlsDir !== undefined) await waitForFile(join(this.hlsDir, 'live.m3u8'));
    if (this.http !== undefined && !this.http.listening) await once(this.http, 'listening');
  }

  /** (Re)starts sending; a no-op while running. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const { kind } = this.options;
    if (kind === 'mjpeg-http') {
      this.serveMjpeg();
      return;
    }
    if (kind === 'hls-http') this.serveHls();
    const caller = kind === 'rtsp' || kind === 'srt' || kind === 'rtmp';
    this.loop = (async () => {
      do {
        const run = this.spawn();
        this.runs.add(run);
        await run.done;
        this.runs.delete(run);
        if (!this.stopped) await sleep(CALLER_RETRY_MS);
      } while (caller && !this.stopped);
    })();
  }

  /** Stops every sender process (and the HTTP server); resolves when they have exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    const http = this.http;
    this.http = undefined;
    if (http !== undefined) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
    await Promise.all([...this.runs].map((r) => r.stop()));
    await this.loop;
    if (this.hlsDir !== undefined) rmSync(this.hlsDir, { recursive: true, force: true });
    this.hlsDir = undefined;
  }

  private spawn(): FfmpegRun {
    const { kind, sdpFile } = this.options;
    const common = {
      input: this.options.size === undefined ? SOURCE : SOURCE.replace('320x240', this.options.size),
      inputOptions: INPUT_OPTIONS,
      output: this.url,
    };
    switch (kind) {
      case 'rtp':
        if (sdpFile === undefined) throw new Error('rtp needs sdpFile');
        return runFfmpeg({
          ...common,
          format: 'rtp',
          outputOptions: [...QUIET, ...h264(this.options.gop), '-sdp_file', sdpFile],
        });
      case 'mpegts-udp':
      case 'srt':
        return runFfmpeg({
          ...common,
          format: 'mpegts',
          outputOptions: [...QUIET, ...h264(this.options.gop)],
        });
      case 'rtsp':
        return runFfmpeg({
          ...common,
          format: 'rtsp',
          outputOptions: [...QUIET, ...h264(this.options.gop), '-rtsp_transport', 'tcp'],
        });
      case 'rtmp':
        return runFfmpeg({
          ...common,
          format: 'flv',
          outputOptions: [...QUIET, ...h264(this.options.gop)],
        });
      case 'hls-http':
        if (this.hlsDir === undefined) throw new Error('hls folder missing');
        return runFfmpeg({
          input: this.options.size === undefined ? SOURCE : SOURCE.replace('320x240', this.options.size),
          inputOptions: INPUT_OPTIONS,
          output: join(this.hlsDir, 'live.m3u8'),
          format: 'hls',
          outputOptions: [...QUIET, ...h264(this.options.gop), '-hls_time', '1', '-hls_list_size', '5', '-hls_flags', 'delete_segments'],
        });
      case 'mjpeg-http':
        throw new Error('mjpeg-http spawns per client');
    }
  }

  private serveMjpeg(): void {
    const server = createServer((req, res) => {
      const run = runFfmpeg({
        input: this.options.size === undefined ? SOURCE : SOURCE.replace('320x240', this.options.size),
        inputOptions: INPUT_OPTIONS,
        format: 'mpjpeg',
        outputOptions: [...QUIET, '-c:v', 'mjpeg', '-q:v', '5'],
      });
      this.runs.add(run);
      void run.done.then(() => this.runs.delete(run));
      res.writeHead(200, {
        'Content-Type': 'multipart/x-mixed-replace;boundary=ffmpeg',
        'Cache-Control': 'no-cache',
      });
      run.stdout?.pipe(res);
      req.socket.once('close', () => void run.stop());
    });
    server.listen(this.options.port, '127.0.0.1');
    this.http = server;
  }

  private serveHls(): void {
    const dir = mkdtempSync(join(tmpdir(), 'stego-hls-'));
    this.hlsDir = dir;
    const server = createServer((req, res) => {
      const name = basename(new URL(req.url ?? '/', 'http://x').pathname);
      const file = join(dir, name);
      if (!existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      const type = name.endsWith('.m3u8') ? 'application/vnd.apple.mpegurl' : 'video/mp2t';
      res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
      createReadStream(file).pipe(res);
    });
    server.listen(this.options.port, '127.0.0.1');
    this.http = server;
  }
}
