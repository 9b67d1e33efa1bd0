#!/usr/bin/env node
/**
 * Soak test of the live service: an ffmpeg MPEG-TS/UDP sender (testsrc2) feeds a live source of
 * the real service (built code in dist/; run `npm run build` first) for N minutes while a
 * WebSocket client takes stats and frames. Prints the process RSS after warm-up, every minute and
 * at the end, plus frames published and dropped; exits 1 if stats stop arriving.
 *
 *   node scripts/soak-live.mjs [--minutes 10] [--size 640x360] [--fps 15]
 *
 * RSS covers the inference and learner worker threads (same process), not the ffmpeg children.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import WebSocket from 'ws';
import { parsePipeline } from '../dist/config/load-pipeline.js';
import { runService } from '../dist/service/run-service.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    size: { type: 'string', default: '640x360' },
    fps: { type: 'string', default: '15' },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) throw new Error(`Expected a positive number for --minutes but received ${values.minutes}`);
/** Memory settles after the bank fills and the first training rounds; RSS "start" is taken then. */
const WARMUP_MS = Math.min(60_000, minutes * 60_000 * 0.2);
/** No stats for this long fails the soak. */
const STATS_GAP_LIMIT_MS = 15_000;

const mib = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10;
const say = (msg) => process.stdout.write(`soak: ${msg}\n`);

async function freeUdpPort() {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}

const port = await freeUdpPort();
const yaml = `
name: soak
service: { host: 127.0.0.1, port: 0 }
sources:
  - use: live
    name: cam
    with: { url: "udp://127.0.0.1:${port}", stallTimeoutMs: 3000, queue: 2 }
model: { backbone: builtin, width: 448, batch: { size: 2, maxDelayMs: 20 } }
learning: { classes: 5, trainEvery: 300, trainSteps: 10, bankFrames: 256 }
sinks:
  - use: websocket
`;
const config = parsePipeline(yaml, 'soak');
const service = await runService(config, { logger: pino({ level: 'warn' }, pino.destination(2)) });

const sender = spawn(
  process.env.FFMPEG_PATH ?? 'ffmpeg',
  [
    '-loglevel',
    'error',
    '-nostats',
    '-re',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${values.size}:rate=${values.fps}`,
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-tune',
    'zerolatency',
    '-g',
    values.fps,
    '-pix_fmt',
    'yuv420p',
    '-f',
    'mpegts',
    `udp://127.0.0.1:${port}?pkt_size=1316`,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);

let stats = 0;
let frames = 0;
let lastStatsAt = Date.now();
let lastSeq = -1;
let worstAgeMs = 0;
const ws = new WebSocket(`${service.url.replace('http', 'ws')}/ws`);
ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'frames'] })));
ws.on('message', (data, isBinary) => {
  if (isBinary) return void frames++;
  const msg = JSON.parse(data.toString());
  if (msg.type !== 'stats') return;
  stats++;
  lastStatsAt = Date.now();
  lastSeq = msg.seq;
  worstAgeMs = Math.max(worstAgeMs, Date.now() - msg.capturedAt);
});

const t0 = Date.now();
let rssStart;
let rssPeak = 0;
let failed;
const elapsed = () => `${((Date.now() - t0) / 60_000).toFixed(1)} min`;
const report = (label) => {
  const { rss, heapUsed } = process.memoryUsage();
  rssPeak = Math.max(rssPeak, rss);
  say(
    `${label} ${elapsed()}: rss ${mib(rss)} MiB, heap ${mib(heapUsed)} MiB, stats ${stats}, frames ${frames}, last seq ${lastSeq}, worst age ${worstAgeMs} ms`,
  );
  worstAgeMs = 0;
  return rss;
};

await new Promise((resolve) => {
  const warm = setTimeout(() => (rssStart = report('start (after warm-up)')), WARMUP_MS);
  const minute = setInterval(() => report('at'), 60_000);
  const watchdog = setInterval(() => {
    if (Date.now() - lastStatsAt > STATS_GAP_LIMIT_MS) {
      failed = `no stats for ${STATS_GAP_LIMIT_MS} ms`;
      finish();
    }
  }, 1000);
  const end = setTimeout(finish, minutes * 60_000);
  function finish() {
    clearTimeout(warm);
    clearTimeout(end);
    clearInterval(minute);
    clearInterval(watchdog);
    resolve();
  }
});

const rssEnd = report('end');
ws.close();
sender.kill('SIGKILL');
await service.close();
if (rssStart !== undefined) {
  say(
    `RSS start ${mib(rssStart)} MiB, end ${mib(rssEnd)} MiB, peak ${mib(rssPeak)} MiB, growth ${mib(rssEnd - rssStart)} MiB over ${elapsed()}`,
  );
}
if (failed) {
  say(`FAILED: ${failed}`);
  process.exitCode = 1;
}
