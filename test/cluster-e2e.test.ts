/**
 * The cluster end to end, on loopback with a real nats-server: 1 ingest, 2 workers, a trainer
 * (child processes of the built CLI) and the collector (the library `process --cluster` uses).
 * One worker is SIGKILLed mid-run: every frame's stats still arrive exactly once after
 * de-duplication, in order. Head versions: both workers swap in what the trainer publishes.
 */
import { join } from 'node:path';
import { existsSync, copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { createStatsCollector, type CollectedStats, type StatsCollector } from '../src/cluster/stats-collector.js';
import { openHeadsBucket } from '../src/cluster/cluster-connection.js';
import { HEAD_KEY } from '../src/cluster/cluster-names.js';
import { decodeCheckpoint } from '../src/learning/checkpoint.js';
import { NatsServer, freePort, natsServerMissing } from './helpers/nats-server.js';
import { countFrames, runCli, startCli, tempDir, videoInfo } from './helpers/cli.js';

const missing = natsServerMissing();
const silent = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const WARM_FRAMES = 16;
const MAIN_FRAMES = 120;

interface Raw {
  readonly stream: string;
  readonly seq: number;
  readonly worker: string;
  readonly headVersion: number;
}

describe.skipIf(missing)('cluster: ingest, 2 workers, trainer, collector', () => {
  let server: NatsServer;
  let dir: string;
  let nc: NatsConnection;
  const children: Array<ReturnType<typeof startCli>> = [];
  const raw: Raw[] = [];

  const role = (args: string[]): ReturnType<typeof startCli> => {
    const c = startCli([...args, '--nats', server.url, '--log-level', 'warn']);
    children.push(c);
    return c;
  };

  async function headVersion(): Promise<number> {
    const e = await (await openHeadsBucket(nc, 'stegostream')).get(HEAD_KEY);
    return e && e.operation === 'PUT' ? decodeCheckpoint(e.value, 'kv').version : 0;
  }

  async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    server = await NatsServer.start();
    dir = await tempDir('stego-cluster-');
    await writeSceneVideo(join(dir, 'warm.mp4'), { width: 192, height: 108, seed: 3, frames: WARM_FRAMES, fps: 15 });
    await writeSceneVideo(join(dir, 'main.mp4'), { width: 192, height: 108, seed: 4, frames: MAIN_FRAMES, fps: 15 });
    nc = await connect({ servers: server.url });
    nc.subscribe('stegostream.*.stats', {
      callback: (_err, m) => {
        const s = m.json<{ stream: string; seq: number; headVersion: number }>();
        raw.push({ stream: s.stream, seq: s.seq, worker: m.headers?.get('worker') ?? '', headVersion: s.headVersion });
      },
    });
  });

  afterAll(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.done));
    await nc?.close();
    await server?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('segments every frame exactly once and in order with a worker killed midway; heads reach both workers; a second trainer is refused', async () => {
    const ckpt = join(dir, 'head.ckpt');
    const trainer1 = role([
      'trainer',
      '--warmup-frames',
      '8',
      '--train-every',
      '100000',
      '--train-steps',
      '5',
      '--learn-steps',
      '5',
      '--lease-ttl',
      '3000',
      '--checkpoint',
      ckpt,
      '--name',
      't1',
    ]);
    const workerArgs = ['worker', '--threads', '1', '--batch', '2', '--no-frames', '--features-every', '1', '--ack-wait', '2000'];
    const w1 = role([...workerArgs, '--name', 'w1']);
    const healthPort = await freePort();
    role([...workerArgs, '--name', 'w2', '--health-port', String(healthPort)]);
    const health = `http://127.0.0.1:${healthPort}`;
    await until('the worker health endpoint', () =>
      fetch(`${health}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    );
    const notReady = await fetch(`${health}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, reason: 'waiting for the first head from the trainer' });

    // Phase 1: no head yet. Workers embed the first frames for the trainer and return them to the
    // queue; the trainer fits and publishes; both workers swap that head in.
    const collected: CollectedStats[] = [];
    const collector: StatsCollector = createStatsCollector({
      nc,
      statsPath: join(dir, '{stream}.csv'),
      logger: silent,
      onStats: (r) => collected.push(r),
    });
    const ingestWarm = await runCli(['ingest', join(dir, 'warm.mp4'), '--width', '160', '--nats', server.url, '--log-level', 'warn']);
    expect(ingestWarm.stderr).toBe('');
    expect(ingestWarm.stdout).toContain(`warm: ${WARM_FRAMES} frames queued`);
    const warm = await collector.expect('warm', WARM_FRAMES);
    expect(warm).toMatchObject({ written: WARM_FRAMES, lost: 0 });
    const first = await headVersion();
    expect(first).toBeGreaterThan(0);
    expect(raw.filter((r) => r.stream === 'warm').every((r) => r.headVersion === first)).toBe(true);
    expect((await fetch(`${health}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${health}/metrics`)).text()).toMatch(/^stegostream_worker_frames_total\{outcome="acked"\} \d+$/m);

    // A second trainer is refused while the first holds the lease.
    const intruder = await runCli(['trainer', '--lease-ttl', '3000', '--name', 't2', '--nats', server.url, '--log-level', 'warn']);
    expect(intruder.code).toBe(1);
    expect(intruder.stderr).toContain('Another trainer ("t1"');
    expect(intruder.stderr).toContain('holds the trainer lease and is alive');

    // A replacement trainer resumes from the head: the new version reaches every worker.
    trainer1.child.kill('SIGTERM');
    expect((await trainer1.done).code).toBe(0);
    role(['trainer', '--head', ckpt, '--train-every', '100000', '--lease-ttl', '3000', '--name', 't3']);
    await until('the replacement head', async () => (await headVersion()) > first);
    const second = await headVersion();

    // Phase 2: kill w1 once it has published some results; nothing is lost.
    const redelivered = async (): Promise<number> =>
      Number(/^stegostream_worker_redelivered_total (\d+)$/m.exec(await (await fetch(`${health}/metrics`)).text())?.[1] ?? 0);
    const redeliveredBefore = await redelivered();
    const mainIngest = role(['ingest', join(dir, 'main.mp4'), '--width', '160']);
    await until('w1 at work', () => raw.filter((r) => r.stream === 'main' && r.worker === 'w1').length >= 6);
    w1.child.kill('SIGKILL');
    const main = await collector.expect('main', MAIN_FRAMES);
    const ingested = await mainIngest.done;
    expect(ingested.stderr).toBe('');
    expect(ingested.code).toBe(0);
    expect(main).toMatchObject({ written: MAIN_FRAMES, lost: 0 });

    const mainRaw = raw.filter((r) => r.stream === 'main');
    expect(new Set(mainRaw.map((r) => r.seq)).size).toBe(MAIN_FRAMES);
    // Results are stored with a msgID per (run, stream, seq): JetStream keeps one copy of a frame
    // segmented twice within its duplicate window, the collector drops any later copy.
    expect(main.duplicates).toBeLessThanOrEqual(mainRaw.length - MAIN_FRAMES);
    expect(collected.filter((r) => r.stats.stream === 'main').map((r) => r.stats.seq)).toEqual([...Array(MAIN_FRAMES).keys()]);
    // Both workers used the replacement head, and the survivor took over the dead one's frames.
    const byWorker = (w: string): Raw[] => mainRaw.filter((r) => r.worker === w);
    expect(byWorker('w1').length).toBeGreaterThan(0);
    expect(byWorker('w2').length).toBeGreaterThan(0);
    expect(mainRaw.every((r) => r.headVersion === second)).toBe(true);
    // Frames w1 fetched but had not acked when it died are covered by the complete, once-only
    // sequence above (they would be missing otherwise); whether it held any at the instant of the
    // kill depends on timing, so the redelivery counter is only checked to be consistent.
    expect(await redelivered()).toBeGreaterThanOrEqual(redeliveredBefore);

    await collector.close();
    const rows = readFileSync(join(dir, 'main.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows.map((l) => Number(l.split(',')[1]))).toEqual([...Array(MAIN_FRAMES).keys()]);

    // Control over NATS, as in single-process mode: the trainer renames, workers use the new name.
    const reply = (await nc.request('stegostream.ctl.rename', JSON.stringify({ classId: 0, name: 'sand' }), { timeout: 15_000 })).json<{
      ok: boolean;
      classes: Array<{ name: string }>;
    }>();
    expect(reply.ok).toBe(true);
    expect(reply.classes[0]?.name).toBe('sand');
    await until('the renamed head', async () => {
      const e = await (await openHeadsBucket(nc, 'stegostream')).get(HEAD_KEY);
      return e !== null && decodeCheckpoint(e.value, 'kv').names[0] === 'sand';
    });
    expect(await headVersion()).toBe(second);
    const status = (await nc.request('stegostream.ctl.status', '', { timeout: 15_000 })).json<{
      ok: boolean;
      status: { role: string; headVersion: number };
    }>();
    expect(status).toMatchObject({ ok: true, status: { role: 'trainer', headVersion: second } });
  });

  it('process --cluster splits a folder of videos across the workers and writes one complete stats file per video, in order', async () => {
    const videos = join(dir, 'videos');
    mkdirSync(videos);
    copyFileSync(join(dir, 'warm.mp4'), join(videos, 'dive1.mp4'));
    copyFileSync(join(dir, 'warm.mp4'), join(videos, 'dive2.mp4'));
    const r = await runCli([
      'process',
      videos,
      '--cluster',
      server.url,
      '--stats',
      join(dir, 'out-{stream}.jsonl'),
      '--out',
      join(dir, 'out-{stream}.mp4'),
      '--masks',
      join(dir, 'masks-{stream}'),
      '--width',
      '160',
      '--no-progress',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Overlay video and masks as single-process mode writes them: one frame and one PNG per row.
    for (const name of ['dive1', 'dive2']) {
      expect(countFrames(join(dir, `out-${name}.mp4`))).toBe(WARM_FRAMES);
      expect(videoInfo(join(dir, `out-${name}.mp4`))).toMatchObject({ width: 192, height: 108 });
      expect(
        readdirSync(join(dir, `masks-${name}`))
          .filter((f) => f.endsWith('.png'))
          .sort(),
      ).toEqual([...Array(WARM_FRAMES).keys()].map((i) => `frame_${String(i).padStart(6, '0')}.png`));
    }
    const result = JSON.parse(r.stdout.trim()) as {
      frames: number;
      streams: Array<{ stream: string; written: number; lost: number; file: string }>;
    };
    expect(result.frames).toBe(2 * WARM_FRAMES);
    expect(result.streams.map((s) => [s.stream, s.written, s.lost])).toEqual([
      ['dive1', WARM_FRAMES, 0],
      ['dive2', WARM_FRAMES, 0],
    ]);
    for (const name of ['dive1', 'dive2']) {
      const rows = readFileSync(join(dir, `out-${name}.jsonl`), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { stream: string; seq: number });
      expect(rows.map((x) => x.seq)).toEqual([...Array(WARM_FRAMES).keys()]);
      expect(rows.every((x) => x.stream === name)).toBe(true);
      expect(rows.every((x) => (x as unknown as { classes: Array<{ name: string }> }).classes[0]?.name === 'sand')).toBe(true);
    }
  });

  it('process --cluster exits non-zero with the count when an output could not be written', async () => {
    const full = join(dir, 'full-{stream}.csv');
    symlinkSync('/dev/full', join(dir, 'full-warm.csv'));
    const r = await runCli(['process', join(dir, 'warm.mp4'), '--cluster', server.url, '--stats', full, '--width', '160', '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${WARM_FRAMES} result(s) of this run were not written (0 frame(s) were)`);
    expect(r.stderr).toContain(`Cannot write output "${join(dir, 'full-warm.csv')}": no space left on its device (ENOSPC)`);
    expect(r.stderr).toContain('[E_CLUSTER]');
    expect(r.stdout).toContain(`warm: 0 frames in order, ${WARM_FRAMES} not written`);
  });

  it('workers and the trainer stop cleanly on SIGTERM, releasing the lease', async () => {
    const running = children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
    expect(running.length).toBe(2); // w2 and the replacement trainer
    for (const c of running) c.child.kill('SIGTERM');
    for (const c of running) expect((await c.done).code).toBe(0);
    const lease = await (await openHeadsBucket(nc, 'stegostream')).get('trainer-lease');
    expect(lease?.operation).toBe('DEL');
  });

  it('process with several videos and no --cluster runs them one after another in this process', async () => {
    const r = await runCli([
      'process',
      join(dir, 'warm.mp4'),
      join(dir, 'main.mp4'),
      '--stats',
      join(dir, 'local-{stream}.csv'),
      '--no-progress',
    ]);
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'local-warm.csv'))).toBe(true);
    expect(existsSync(join(dir, 'local-main.csv'))).toBe(true);
  });
});
