/**
 * Live bench: the real service (`runService`) fed by ffmpeg MPEG-TS/UDP senders on 127.0.0.1,
 * measured the way a viewer sees it.
 *
 * (a) One 1280x720 30 fps feed, faster than the model at the chosen working width: the age of each
 *     frame's stats when a WebSocket client receives them (capture = the frame leaving the decoder;
 *     p50/p99), and the share of decoded frames the latest-frame-wins queue dropped.
 * (b) Four such feeds at once against one alone, same settings: aggregate published fps and the
 *     ratio (what batching across streams buys when the model is the bottleneck), and CPU per
 *     published frame (this process, and the whole machine with ffmpeg), with the live rate
 *     control (live-rate.ts) and with every decoded frame kept (STEGOSTREAM_LIVE_RATE=off).
 * (c) The same with another process spinning on one core.
 *
 * The senders stream-copy one clip encoded up front (`-re -stream_loop -1 -c copy`), so they cost
 * next to nothing and the service's own decode, inference and encoding get the CPU. Figures are
 * machine-dependent; compare the ratio. `node dist/bench/bench-live.js` prints the JSON.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { parsePipeline } from '../config/load-pipeline.js';
import { runFfmpeg, type FfmpegRun } from '../internal/ffmpeg-process.js';
import { runService, type RunningService } from '../service/run-service.js';
import { benchLog } from './bench-log.js';

/** The feed: 1280x720 at 30 fps, a keyframe a second, as a camera encoder would send it. */
const FEED = { size: '1280x720', fps: 30, seconds: 10 } as const;
/** Working width: heavy enough that one CPU-bound model falls behind a 30 fps feed. */
const WIDTH = 640;
const BATCH = 4;
/** Ignored at the start of each run: worker start-up, first fit, ffmpeg probing, and the live rate
 * control's first windows (live-rate.ts: one every 2 s). */
const WARMUP_MS = 6_000;
const LATENCY_WINDOW_MS = 15_000;
const FPS_WINDOW_MS = 10_000;

const log = benchLog('bench-live');

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}

async function encodeClip(path: string): Promise<void> {
  const run = runFfmpeg({
    input: `testsrc2=size=${FEED.size}:rate=${FEED.fps}`,
    inputOptions: ['-f', 'lavfi', '-t', String(FEED.seconds)],
    outputOptions: ['-y', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', String(FEED.fps), '-pix_fmt', 'yuv420p'],
    format: 'mpegts',
    output: path,
  });
  const { error } = await run.done;
  if (error) throw error;
}

function sender(clip: string, port: number): FfmpegRun {
  return runFfmpeg({
    input: clip,
    inputOptions: ['-re', '-stream_loop', '-1'],
    outputOptions: ['-c', 'copy', '-loglevel', 'error'],
    format: 'mpegts',
    output: `udp://127.0.0.1:${port}?pkt_size=1316`,
  });
}

interface Run {
  readonly service: RunningService;
  /** Age (ms) of each stats message at receipt, with the receipt time. */
  readonly ages: Array<{ at: number; ms: number }>;
  stop(): Promise<void>;
}

/** Starts `streams` senders and a service reading them, with a WebSocket client taking stats and frames. */
async function start(clip: string, streams: number): Promise<Run> {
  const ports = await Promise.all(Array.from({ length: streams }, () => freeUdpPort()));
  const sources = ports.map((p, i) => `  - { use: live, name: cam${i + 1}, with: { url: "udp://127.0.0.1:${p}", queue: 2 } }`).join('\n');
  const config = parsePipeline(
    `name: bench-live\nservice: { port: 0 }\nsources:\n${sources}\nmodel: { width: ${WIDTH}, batch: { size: ${BATCH}, maxDelayMs: 10 } }\n`,
    'bench-live',
    {},
  );
  const service = await runService(config, { logger: pino({ level: 'silent' }) });
  const senders = ports.map((p) => sender(clip, p));
  const ages: Run['ages'] = [];
  const ws = new WebSocket(`${service.url.replace(/^http/, 'ws')}/ws`);
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) return;
    const msg = JSON.parse(data.toString('utf8')) as { type: string; capturedAt?: number };
    const at = Date.now();
    if (msg.type === 'stats' && msg.capturedAt !== undefined) ages.push({ at, ms: at - msg.capturedAt });
  });
  await once(ws, 'open');
  // A viewer wants the overlays too, so the JPEG encoding is part of what is measured.
  ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'frames'] }));
  return {
    service,
    ages,
    async stop() {
      ws.terminate();
      await Promise.all(senders.map((s) => s.stop('SIGKILL')));
      await service.close();
    },
  };
}

/** Sum over streams of one Prometheus counter. */
async function total(service: RunningService, name: string): Promise<number> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

interface Counters {
  readonly received: number;
  readonly dropped: number;
  readonly published: number;
  /** performance.now(), ms. */
  readonly t: number;
  /** CPU time of this process (main thread and the inference and learner workers; not ffmpeg), ms. */
  readonly cpuMs: number;
  /** CPU time of the whole machine (ffmpeg's decoding and scaling too, and the senders), ms. */
  readonly machineCpuMs: number;
}

/** Busy CPU time of all cores since boot, ms. */
function machineCpuMs(): number {
  return cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
}

async function counters(service: RunningService): Promise<Counters> {
  const [received, dropped, published] = await Promise.all([
    total(service, 'stegostream_frames_in_total'),
    total(service, 'stegostream_frames_dropped_total'),
    total(service, 'stegostream_frames_out_total'),
  ]);
  const cpu = process.cpuUsage();
  return { received, dropped, published, t: performance.now(), cpuMs: (cpu.user + cpu.system) / 1000, machineCpuMs: machineCpuMs() };
}

/** Rates over a window. CPU per published frame does not depend on what else the machine runs. */
function rates(c0: Counters, c1: Counters, streams: number): Record<string, number> {
  const seconds = (c1.t - c0.t) / 1000;
  const received = c1.received - c0.received;
  const published = c1.published - c0.published;
  return {
    seconds: round(seconds),
    receivedFpsPerStream: round(received / seconds / streams),
    publishedFps: round(published / seconds),
    publishedFpsPerStream: round(published / seconds / streams),
    dropRate: round(received > 0 ? (c1.dropped - c0.dropped) / received : 0, 3),
    cpuMsPerFrame: round(published > 0 ? (c1.cpuMs - c0.cpuMs) / published : Number.NaN),
    // With a spinner running this includes it: compare machine CPU only between idle runs.
    machineCpuMsPerFrame: round(published > 0 ? (c1.machineCpuMs - c0.machineCpuMs) / published : Number.NaN),
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** (a): frame age at publish and the drop rate of one 30 fps feed. */
async function latency(clip: string): Promise<Record<string, unknown>> {
  const run = await start(clip, 1);
  try {
    await sleep(WARMUP_MS);
    const c0 = await counters(run.service);
    const from = Date.now();
    await sleep(LATENCY_WINDOW_MS);
    const c1 = await counters(run.service);
    const ages = run.ages
      .filter((a) => a.at >= from)
      .map((a) => a.ms)
      .sort((x, y) => x - y);
    return {
      input: `${FEED.size} ${FEED.fps} fps H.264 MPEG-TS/UDP`,
      workingWidth: WIDTH,
      ...rates(c0, c1, 1),
      frameAgeMs: { p50: percentile(ages, 50), p99: percentile(ages, 99), max: ages.at(-1) ?? Number.NaN, samples: ages.length },
    };
  } finally {
    await run.stop();
  }
}

/** Four feeds against one: aggregate published fps, CPU per published frame (this process; the machine). */
function ratios(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return {
    aggregateFpsRatio: round((b['publishedFps'] ?? 0) / (a['publishedFps'] ?? 1), 2),
    cpuPerFrameRatio: round((b['cpuMsPerFrame'] ?? 0) / (a['cpuMsPerFrame'] ?? 1), 2),
    machineCpuPerFrameRatio: round((b['machineCpuMsPerFrame'] ?? 0) / (a['machineCpuMsPerFrame'] ?? 1), 2),
  };
}

/** (b): aggregate published fps of `streams` feeds at once. */
async function throughput(clip: string, streams: number): Promise<Record<string, number>> {
  const run = await start(clip, streams);
  try {
    await sleep(WARMUP_MS);
    const c0 = await counters(run.service);
    const from = Date.now();
    await sleep(FPS_WINDOW_MS);
    const ages = run.ages
      .filter((a) => a.at >= from)
      .map((a) => a.ms)
      .sort((x, y) => x - y);
    return { ...rates(c0, await counters(run.service), streams), frameAgeP50Ms: percentile(ages, 50), frameAgeP99Ms: percentile(ages, 99) };
  } finally {
    await run.stop();
  }
}

export async function benchLive(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'stegostream-bench-live-'));
  try {
    const clip = join(dir, 'feed-720p30.ts');
    log(`encoding a ${FEED.seconds} s ${FEED.size} ${FEED.fps} fps feed`);
    await encodeClip(clip);
    log(`(a) one live feed through the service, ${(WARMUP_MS + LATENCY_WINDOW_MS) / 1000} s`);
    const live = await latency(clip);
    // (b) one feed, then four, with the live rate control and without it (every decoded frame
    // scaled, converted and queued); (c) the same with one core kept busy by another process,
    // as on a pilot's laptop.
    const pair = async (what: string): Promise<Record<string, unknown>> => {
      log(`${what}: one feed, then four at once, ${(2 * (WARMUP_MS + FPS_WINDOW_MS)) / 1000} s`);
      const one = await throughput(clip, 1);
      const four = await throughput(clip, 4);
      return { oneStream: one, fourStreams: four, ...ratios(one, four) };
    };
    const multi = async (what: string): Promise<Record<string, unknown>> => {
      const on = await pair(`${what}, rate control on`);
      process.env['STEGOSTREAM_LIVE_RATE'] = 'off';
      try {
        return { rateControl: on, everyFrame: await pair(`${what}, every frame kept`) };
      } finally {
        delete process.env['STEGOSTREAM_LIVE_RATE'];
      }
    };
    const idle = await multi('(b) idle');
    const spinner = spawn(process.execPath, ['-e', 'let x = 0; for (;;) x += Math.sqrt(x + 1);'], { stdio: 'ignore' });
    let busy: Record<string, unknown>;
    try {
      busy = await multi('(c) one core busy');
    } finally {
      spinner.kill('SIGKILL');
    }
    return { live, multiStream: { batchSize: BATCH, workingWidth: WIDTH, idle, oneCoreBusy: busy } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await benchLive(), null, 2)}\n`);
}
