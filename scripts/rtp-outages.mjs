#!/usr/bin/env node
/**
 * Listening-input fault run (issue 16): an H.264 RTP feed with a keyframe every 7 s, sent by a
 * real ffmpeg to 127.0.0.1 through a relay that cuts it (a tether outage: the sender's timeline
 * goes on) or with the sender itself restarted from scratch (new SSRC and sequence numbers),
 * ten times for 5-70 s, received by liveSource (dist/, so build first). Prints, per outage, how
 * long after the first returning keyframe packet the first frame was delivered, and the states.
 *
 *   node scripts/rtp-outages.mjs [pauses in s, comma-separated; default 5,20,70,10,40,5,30,60,15,50]
 * Loopback only; stops by itself.
 */
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { liveSource } from '../dist/sources/live-source.js';

const pauses = (process.argv[2] ?? '5,20,70,10,40,5,30,60,15,50').split(',').map(Number);
const RECV = 47000 + 2 * Math.floor(Math.random() * 500);
const RELAY = RECV + 2000;

function keyframe(p) {
  const at = 12 + 4 * (p[0] & 0x0f);
  const nal = p[at] & 0x1f;
  if (nal === 5 || nal === 7) return true;
  if (nal === 24) return [5, 7].includes(p[at + 3] & 0x1f);
  return nal === 28 && (p[at + 1] & 0x80) !== 0 && (p[at + 1] & 0x1f) === 5;
}

const relay = createSocket('udp4');
let passing = true;
let keyAt;
relay.on('message', (m) => {
  if (!passing) return;
  if (keyAt === undefined && keyframe(m)) keyAt = Date.now();
  relay.send(m, RECV, '127.0.0.1');
});
relay.bind(RELAY, '127.0.0.1');
await once(relay, 'listening');

let sender;
const startSender = () => {
  sender = spawn(
    'ffmpeg',
    [
      ...['-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=15'],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p'],
      ...['-g', '105', '-keyint_min', '105', '-sc_threshold', '0', '-f', 'rtp', `rtp://127.0.0.1:${RELAY}`],
    ],
    { stdio: 'ignore' },
  );
};
const stopSender = async () => {
  const s = sender;
  sender = undefined;
  s.kill('SIGKILL');
  await once(s, 'exit');
};

const states = [];
let frames = 0;
let lastFrameAt = 0;
const waiters = new Set();
const poke = () => waiters.forEach((w) => w());
const until = (pred, ms = 120_000) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => (waiters.delete(check), reject(new Error('timeout'))), ms);
    const check = () => pred() && (clearTimeout(t), waiters.delete(check), resolve());
    waiters.add(check);
    check();
  });
const sub = liveSource({
  url: `rtp://127.0.0.1:${RECV}`,
  streamId: 'rov',
  width: 224,
  height: 128,
  stallTimeoutMs: 2000,
  logger: pino({ level: 'silent' }),
  onState: (e) => (states.push(e.state), poke()),
}).subscribe(() => {
  frames++;
  lastFrameAt = Date.now();
  poke();
});

// Ctrl-C: stop the receiver's and the sender's ffmpeg too (they would outlive this process).
process.once('SIGINT', () => (sub.unsubscribe(), sender?.kill('SIGKILL'), process.exit(130)));
process.once('SIGTERM', () => (sub.unsubscribe(), sender?.kill('SIGKILL'), process.exit(143)));
startSender();
await until(() => frames >= 10);
const rows = [];
for (const [i, pauseS] of pauses.entries()) {
  const fromScratch = i % 2 === 1; // every other outage restarts the sender
  const mark = states.length;
  if (fromScratch) await stopSender();
  else passing = false;
  await sleep(pauseS * 1000);
  const before = frames;
  keyAt = undefined;
  const resumedAt = Date.now();
  passing = true;
  if (fromScratch) startSender();
  let ok = true;
  try {
    await until(() => frames > before);
  } catch {
    ok = false;
  }
  const row = {
    outage: i + 1,
    pauseS,
    kind: fromScratch ? 'sender restarted' : 'tether cut',
    keyframeAfterResumeMs: keyAt === undefined ? null : keyAt - resumedAt,
    firstFrameAfterKeyframeMs: ok && keyAt !== undefined ? lastFrameAt - keyAt : null,
    states: states.slice(mark).join(','),
  };
  rows.push(row);
  console.log(JSON.stringify(row));
}
sub.unsubscribe();
if (sender) await stopSender();
relay.close();
const rec = rows.map((r) => r.firstFrameAfterKeyframeMs).filter((v) => v !== null);
console.log(
  `recovered ${rec.length}/${rows.length}; first frame after the first keyframe: max ${Math.max(...rec)} ms, median ${rec.sort((a, b) => a - b)[Math.floor(rec.length / 2)]} ms`,
);
