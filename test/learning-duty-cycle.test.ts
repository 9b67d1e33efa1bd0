import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import {
  adaptiveShare,
  DutyCycle,
  hurry,
  hurryCell,
  machineCpuClock,
  MAX_ADAPTIVE_SHARE,
  threadShare,
  type CpuClock,
} from '../src/learning/duty-cycle.js';
import { LearnerClient } from '../src/learning/learner-client.js';
import { Rng } from '../src/learning/rng.js';

/** Keeps the thread busy for about `ms` (real work, so the scheduler sees a busy thread). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  if (x < 0) throw new Error('unreachable');
}

describe('DutyCycle', () => {
  it('pauses after each slice for (1 - share) / share of the work it followed', () => {
    const share = 0.25;
    const duty = new DutyCycle(share);
    const t0 = performance.now();
    for (let i = 0; i < 8; i++) {
      spin(25);
      duty.tick();
    }
    const total = performance.now() - t0;
    const busy = total - duty.idleMs;
    // A sleep lasts at least what it was asked for, so idle >= 3 x busy whatever the machine's speed.
    expect(duty.idleMs).toBeGreaterThanOrEqual(((1 - share) / share) * busy * 0.99);
  });

  it('does not pause at share 1, nor once hurried', () => {
    const flat = new DutyCycle(1);
    spin(30);
    flat.tick();
    expect(flat.idleMs).toBe(0);

    const cell = hurryCell();
    const duty = new DutyCycle(0.01, cell);
    hurry(cell);
    spin(30);
    duty.tick();
    expect(duty.idleMs).toBe(0);
  });

  it('ends a pause at once when another thread hurries it', () => {
    const cell = hurryCell();
    const duty = new DutyCycle(0.001, cell);
    // 30 ms of work at share 0.001 asks for a 30 s pause; the other thread hurries after 100 ms.
    const w = new Worker(
      `const { workerData } = require('node:worker_threads');
       setTimeout(() => { Atomics.store(workerData, 0, 1); Atomics.notify(workerData, 0); }, 100);`,
      { eval: true, workerData: cell },
    );
    spin(30);
    duty.tick();
    expect(duty.idleMs).toBeLessThan(10_000);
    expect(duty.idleMs).toBeGreaterThan(0);
    void w.terminate();
  });

  it('names a bad share; threadShare scales a machine share to one thread', () => {
    expect(() => new DutyCycle(0)).toThrow(/CPU share/);
    expect(() => new DutyCycle(1.5)).toThrow(/\(0, 1\]/);
    expect(threadShare(0.1, 2)).toBeCloseTo(0.2);
    expect(threadShare(0.1, 16)).toBe(1);
    expect(threadShare(0.5, 0)).toBe(0.5);
  });
});

/** A machine whose other work leaves `idle()` of every core idle, on a clock that follows real time. */
function machineAt(idle: () => number, cores: number): CpuClock {
  let last = performance.now();
  let idleSum = 0;
  let totalSum = 0;
  return () => {
    const t = performance.now();
    idleSum += (t - last) * cores * idle();
    totalSum += (t - last) * cores;
    last = t;
    return { idle: idleSum, total: totalSum };
  };
}

/** Work and ticks until `ms` of wall time have passed; returns the duty's share at the end. */
function runFor(duty: DutyCycle, ms: number): number {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    spin(21);
    duty.tick();
  }
  return duty.currentShare;
}

describe('adaptive DutyCycle', () => {
  it('takes what the rest of the machine leaves free beyond half a core, between its floor and 0.9', () => {
    expect(adaptiveShare(0, 0.2)).toBe(0.2);
    expect(adaptiveShare(0.6, 0.2)).toBe(0.2);
    expect(adaptiveShare(1, 0.2)).toBeCloseTo(0.5);
    expect(adaptiveShare(2, 0.2)).toBe(MAX_ADAPTIVE_SHARE);
    expect(adaptiveShare(16, 0.2)).toBe(MAX_ADAPTIVE_SHARE);
  });

  it('rises to 0.9 on an idle machine, stays at its floor on a saturated one, and follows a change', () => {
    const idle = new DutyCycle(0.2, hurryCell(), { clock: machineAt(() => 1, 2), cores: 2 });
    expect(runFor(idle, 800)).toBe(MAX_ADAPTIVE_SHARE);
    // Paused far less than the floor's 4x the work once risen.
    expect(idle.idleMs).toBeLessThan(2 * idle.workMs);

    const busy = new DutyCycle(0.2, hurryCell(), { clock: machineAt(() => 0.05, 2), cores: 2 });
    expect(runFor(busy, 800)).toBe(0.2);
    expect(busy.idleMs).toBeGreaterThanOrEqual(((1 - 0.2) / 0.2) * busy.workMs * 0.99);

    // One core free of two: 0.5 of the learner's core.
    let free = 1;
    const changing = new DutyCycle(0.2, hurryCell(), { clock: machineAt(() => free, 2), cores: 2 });
    expect(runFor(changing, 800)).toBe(MAX_ADAPTIVE_SHARE);
    // At 0.9 the pauses are short: 200 ms of them (one probe) take about 2 s of work.
    free = 0.5;
    expect(runFor(changing, 4500)).toBeCloseTo(0.5, 1);
  });

  it("reads this machine's CPU clock, and keeps to its floor while every core is busy", async () => {
    const clock = machineCpuClock();
    const a = clock();
    spin(120);
    const b = clock();
    expect(b.total).toBeGreaterThan(a.total);
    expect(b.idle - a.idle).toBeGreaterThanOrEqual(0);
    expect(b.idle - a.idle).toBeLessThanOrEqual(b.total - a.total);

    // Saturate every core with spinning threads: nothing is left idle while the duty pauses.
    const cores = availableParallelism();
    const spinners = Array.from(
      { length: cores },
      () => new Worker(`const end = Date.now() + 4000; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1);`, { eval: true }),
    );
    await new Promise((r) => setTimeout(r, 200));
    try {
      const duty = new DutyCycle(0.2, hurryCell(), { clock, cores });
      expect(runFor(duty, 1500)).toBe(0.2);
    } finally {
      await Promise.all(spinners.map((w) => w.terminate()));
    }
  }, 20_000);
});

describe('LearnerClient background rounds', () => {
  const C = 16;
  const N = 100;
  /** Fixed shares (no adaptivity): what a round takes must not depend on what else runs on the test machine. */
  async function client(cpuShare: number): Promise<LearnerClient> {
    const l = await LearnerClient.start({
      dim: C,
      codeDim: 8,
      k: 3,
      seed: 3,
      bank: { capacityFrames: 32, pointsPerFrame: 100 },
      train: { everyFrames: 1, steps: 30, batchImages: 6, cpuShare, adaptiveCpu: false },
    });
    const rng = new Rng(5);
    for (let f = 0; f < 24; f++) {
      const tokens = new Float32Array(N * C);
      for (let i = 0; i < tokens.length; i++) tokens[i] = rng.gaussian() + (i % C < 4 ? 2 : 0);
      l.observe(tokens, N, C);
    }
    // Probe then first head, flat out (the caller waits for these).
    await l.runRound(24);
    await l.runRound(24);
    return l;
  }

  it('keep to the CPU share, report the time paused, and run flat out once waited for', async () => {
    const cores = (await import('node:os')).availableParallelism();
    const paced = await client(0.2 / cores); // 0.2 of one core
    const before = paced.state.version;
    await paced.runRound(25, undefined, true);
    const r = paced.lastRound!;
    expect(r.kind === 'train' || r.kind === 'rejected').toBe(true);
    expect(paced.state.version).toBeGreaterThanOrEqual(before);
    // Paused about 80% of the round; the few unpaced pieces between the last pause and the end keep it above half.
    expect(r.idleMs).toBeGreaterThan(0.5 * r.ms);
    await paced.close();

    // A share so small the round would take many minutes: close() hurries it instead.
    const slow = await client(0.0001);
    const pending = slow.runRound(25, undefined, true);
    await slow.close();
    await pending;
    expect(slow.lastRound!.ms).toBeLessThan(60_000);

    // Rounds the caller waits for are never paced.
    const flat = await client(0.0001);
    expect(flat.lastRound!.idleMs).toBeUndefined();
    await flat.close();
  }, 120_000);

  it('thin the frames offered while a round runs, and take every frame again after it', async () => {
    const l = await client(0.0001);
    const frame = new Float32Array(N * C).fill(1);
    const round = l.runRound(25, undefined, true);
    const before = l.observed;
    for (let f = 0; f < 200; f++) l.observe(frame, N, C);
    const during = l.observed.sent - before.sent;
    // 16 kept at stride 1 (frames 0-15), at 2 (16-47) and at 4 (48-111), then every 8th of 112-199: 11.
    expect(during).toBe(59);
    expect(l.observed.thinned - before.thinned).toBe(200 - during);
    l.hurry();
    await round;
    for (let f = 0; f < 10; f++) l.observe(frame, N, C);
    expect(l.observed.sent - before.sent).toBe(during + 10);
    await l.close();
  }, 60_000);

  it('names a bad cpuShare when the learner starts', async () => {
    await expect(LearnerClient.start({ dim: C, k: 3, seed: 1, train: { everyFrames: 1, cpuShare: 2 } })).rejects.toThrow(/cpuShare/);
  });
});
