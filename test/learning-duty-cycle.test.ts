import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DutyCycle, hurry, hurryCell, threadShare } from '../src/learning/duty-cycle.js';
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

describe('LearnerClient background rounds', () => {
  const C = 16;
  const N = 100;
  async function client(cpuShare: number): Promise<LearnerClient> {
    const l = await LearnerClient.start({
      dim: C,
      codeDim: 8,
      k: 3,
      seed: 3,
      bank: { capacityFrames: 32, pointsPerFrame: 100 },
      train: { everyFrames: 1, steps: 30, batchImages: 6, cpuShare },
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
