#!/usr/bin/env node
/**
 * Soak of `stegostream serve` (dist/cli.js: build first) as its own process: two live sources
 * (MPEG-TS/UDP and H.264 RTP, real ffmpeg senders on 127.0.0.1), the WebSocket sink with a
 * client reading stats and frames, the NATS sink to a nats-server started here (JetStream stats
 * history), learning on. Every --sample seconds it reads the service's RSS and open file
 * descriptors (/proc/PID) and the event-loop lag (/metrics); at the end it prints each one's
 * first and last value and its least-squares slope per hour (after --warmup). Loopback only;
 * stops by itself.
 *
 *   node scripts/soak-serve.mjs [--minutes 60] [--sample 30] [--warmup 2]
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    sample: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '2' },
  },
});
const minutes = Number(values.minutes);
const sampleMs = Number(values.sample) * 1000;
const warmupMs = Number(values.warmup) * 60_000;
if (!(minutes > 0 && sampleMs > 0 && warmupMs >= 0)) throw new Error('Expected positive --minutes and --sample, and --warmup >= 0');
const say = (msg) => process.stdout.write(`soak: ${msg}\n`);
const ffmpeg = process.env.FFMPEG_PATH ?? 'ffmpeg';
const dir = mkdtempSync(join(tmpdir(), 'stego-soak-'));
const children = [];

async function freePort(udp) {
  if (udp) {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address();
    s.close();
    return port;
  }
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  return port;
}
const run = (cmd, args, opts = {}) => {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  children.push(c);
  return c;
};

const tsPort = await freePort(true);
const rtpPort = 2 * Math.floor((await freePort(true)) / 2);
const natsPort = await freePort(false);
const httpPort = await freePort(false);
run('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'js')], { stdio: 'ignore' });
await sleep(1000);

const pipeline = join(dir, 'soak.yaml');
writeFileSync(
  pipeline,
  `
name: soak
service: { host: 127.0.0.1, port: ${httpPort} }
sources:
  - { use: live, name: ts, with: { url: "udp://127.0.0.1:${tsPort}", stallTimeoutMs: 3000, queue: 2 } }
  - { use: live, name: rtp, with: { url: "rtp://127.0.0.1:${rtpPort}", stallTimeoutMs: 3000, queue: 2 } }
model: { backbone: builtin, width: 448, batch: { size: 2, maxDelayMs: 20 } }
learning: { classes: 5, trainEvery: 300, trainSteps: 10, bankFrames: 256 }
sinks:
  - use: websocket
  - use: nats
    with: { servers: "nats://127.0.0.1:${natsPort}", prefix: soak, jetstream: { stream: SOAK_STATS } }
`,
);
const service = run(process.execPath, ['dist/cli.js', 'serve', '--log-level', 'warn', pipeline]);
const h264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '15', '-pix_fmt', 'yuv420p'];
const src = (size) => ['-loglevel', 'error', '-nostats', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=15`];
run(ffmpeg, [...src('640x360'), ...h264, '-f', 'mpegts', `udp://127.0.0.1:${tsPort}?pkt_size=1316`]);
run(ffmpeg, [...src('640x360'), ...h264, '-f', 'rtp', `rtp://127.0.0.1:${rtpPort}`]);

const base = `http://127.0.0.1:${httpPort}`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/healthz`)).ok) break;
  } catch {
    if (i > 600) throw new Error('serve did not come up within 5 minutes');
  }
  await sleep(500);
}
let stats = 0;
let frames = 0;
const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`);
ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', streams: ['*'], channels: ['stats', 'frames'] })));
ws.on('message', (_d, isBinary) => (isBinary ? frames++ : stats++));

const samples = [];
const t0 = Date.now();
const metric = (text, name) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
async function sample() {
  const status = readFileSync(`/proc/${service.pid}/status`, 'utf8');
  const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
  const fds = readdirSync(`/proc/${service.pid}/fd`).length;
  const text = await (await fetch(`${base}/metrics`)).text();
  const lagMs = metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000;
  const s = { tMin: (Date.now() - t0) / 60_000, rssMiB, fds, lagMs, stats, frames };
  samples.push(s);
  say(
    `${s.tMin.toFixed(1)} min: rss ${rssMiB.toFixed(1)} MiB, fds ${fds}, loop lag p99 ${lagMs.toFixed(1)} ms, stats ${stats}, frames ${frames}`,
  );
}
while (Date.now() - t0 < minutes * 60_000) {
  await sample();
  await sleep(Math.min(sampleMs, Math.max(0, minutes * 60_000 - (Date.now() - t0))));
}
await sample();

/** Least-squares slope of y over minutes, per hour, on the samples after warm-up. */
const slope = (key) => {
  const pts = samples.filter((s) => s.tMin * 60_000 >= warmupMs && Number.isFinite(s[key]));
  const n = pts.length;
  if (n < 2) return NaN;
  const mx = pts.reduce((a, p) => a + p.tMin, 0) / n;
  const my = pts.reduce((a, p) => a + p[key], 0) / n;
  const num = pts.reduce((a, p) => a + (p.tMin - mx) * (p[key] - my), 0);
  const den = pts.reduce((a, p) => a + (p.tMin - mx) ** 2, 0);
  return (num / den) * 60;
};
const after = samples.filter((s) => s.tMin * 60_000 >= warmupMs);
for (const [key, unit] of [
  ['rssMiB', 'MiB'],
  ['fds', 'fds'],
  ['lagMs', 'ms'],
]) {
  const first = after[0]?.[key];
  const last = after.at(-1)?.[key];
  say(`${key}: ${first?.toFixed(1)} -> ${last?.toFixed(1)} ${unit} after warm-up, slope ${slope(key).toFixed(2)} ${unit}/h`);
}
say(`stats ${stats}, frames ${frames} over ${samples.at(-1).tMin.toFixed(1)} min`);
ws.close();
for (const c of children.reverse()) c.kill('SIGTERM');
await sleep(2000);
for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
rmSync(dir, { recursive: true, force: true });
if (stats === 0) {
  say('FAILED: no stats');
  process.exitCode = 1;
}
