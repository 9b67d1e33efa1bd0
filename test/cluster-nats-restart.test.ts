/**
 * Every cluster role (ingest, worker, trainer, collect: child processes of the built CLI) keeps
 * going through a nats-server crash mid-run (SIGKILL, then a restart on the same port):
 *
 * - with its store kept, nothing is lost: every frame of a paced ingest reaches the stats file
 *   once, in order;
 * - without its store (restarted empty, or a replacement node), the roles create again what was
 *   lost: the work queue and its consumer (worker, ingest), the results stream and the durable
 *   consumer (collect), the heads bucket, the trainer lease and the head (trainer), and workers
 *   watch the new bucket. Frames queued in the lost store are lost (the collector counts them
 *   missing); the frames ingested after the restart are segmented and written, and the trainer
 *   goes on training.
 *
 * Waits are on files, logs and KV contents, never on how fast anything runs.
 */
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'nats';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { openHeadsBucket } from '../src/cluster/cluster-connection.js';
import { HEAD_KEY, LEASE_KEY } from '../src/cluster/cluster-names.js';
import { decodeCheckpoint } from '../src/learning/checkpoint.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { startCli, tempDir, type StartedCli } from './helpers/cli.js';

const missing = natsServerMissing();
const FRAMES = 90;

/** (seq, head version) of each row of a stats CSV; [] while it does not exist. */
function rows(file: string): Array<{ seq: number; head: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => {
      const f = l.split(',');
      return { seq: Number(f[1]), head: Number(f[5]) };
    });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (c: StartedCli): boolean => c.child.exitCode === null && c.child.signalCode === null;

describe.skipIf(missing)('cluster roles through a nats-server crash', () => {
  let dir: string;
  let server: NatsServer | undefined;
  let children: StartedCli[] = [];

  beforeAll(async () => {
    dir = await tempDir('stego-nats-restart-');
    await writeSceneVideo(join(dir, 'dive.mp4'), { width: 192, height: 108, seed: 5, frames: FRAMES, fps: 15 });
  });

  afterEach(async () => {
    for (const c of children) if (alive(c)) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.done));
    children = [];
    await server?.dispose();
    server = undefined;
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function start(args: string[]): StartedCli {
    const c = startCli([...args, '--nats', (server as NatsServer).url, '--log-level', 'info']);
    children.push(c);
    return c;
  }

  /** Trainer, worker and collect; the stats go to `<out>/dive.csv`. */
  function startRoles(out: string, gapTimeoutMs: number): { roles: StartedCli[]; statsFile: string } {
    const roles = [
      start(['trainer', '--warmup-frames', '8', '--train-every', '20', '--train-steps', '3', '--learn-steps', '3', '--lease-ttl', '3000']),
      start(['worker', '--threads', '1', '--batch', '2', '--no-frames', '--features-every', '1', '--ack-wait', '3000']),
      start(['collect', '--gap-timeout', String(gapTimeoutMs), '--stats', join(out, '{stream}.csv')]),
    ];
    return { roles, statsFile: join(out, 'dive.csv') };
  }

  /** Once some results are written: SIGKILL the server, and start it again once every role has seen it go. */
  async function crashMidRun(roles: StartedCli[], statsFile: string, loseStore: boolean): Promise<void> {
    const s = server as NatsServer;
    await until('the first results in the stats file', () => rows(statsFile).length >= 10);
    await s.kill(loseStore);
    await until('every role to see the server go', () => roles.filter(alive).every((r) => r.stderr().includes('disconnected from NATS')));
    await s.restart();
  }

  it('with its store kept, every frame reaches the stats file once, in order', async () => {
    server = await NatsServer.start();
    // The default gap timeout (60 s): a result lost on its way during the crash comes again sooner.
    const { roles, statsFile } = startRoles(await tempDir('stego-nats-kept-'), 60_000);
    const ingest = start(['ingest', `dive=${join(dir, 'dive.mp4')}`, '--width', '160', '--realtime']);
    await crashMidRun([...roles, ingest], statsFile, false);

    const r = await ingest.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`dive: ${FRAMES} frames queued`);
    await until('the collector to finish the stream', () => roles[2]!.stdout().includes('dive: '));
    expect(roles[2]!.stdout()).toMatch(new RegExp(`^dive: ${FRAMES} frames in order`, 'm'));
    expect(rows(statsFile).map((x) => x.seq)).toEqual([...Array(FRAMES).keys()]);
    expect(roles.every(alive)).toBe(true);
    expect(roles[0]!.stderr()).not.toContain('lost its lease');
  });

  it('without its store, each role creates again what it needs: frames ingested after the restart are segmented with new heads and written', async () => {
    server = await NatsServer.start();
    // Frames lost with the store never come: a short gap timeout gives them up sooner.
    const { roles, statsFile } = startRoles(await tempDir('stego-nats-lost-'), 5_000);
    const [trainer, worker, collect] = roles as [StartedCli, StartedCli, StartedCli];
    // A feed that goes on across the crash (the clip looped at its frame rate).
    const ingest = start(['ingest', `dive=${join(dir, 'dive.mp4')}`, '--width', '160', '--realtime', '--loop']);
    await crashMidRun([...roles, ingest], statsFile, true);
    const before = rows(statsFile);
    const lastSeq = Math.max(...before.map((x) => x.seq));
    const lastHead = Math.max(...before.map((x) => x.head));

    // The trainer takes its lease again and writes its head into the new bucket.
    await until('the trainer to take its lease again', () => trainer.stderr().includes('took it again'));
    const nc = await connect({ servers: (server as NatsServer).url });
    try {
      const kv = await openHeadsBucket(nc, 'stegostream');
      await until('a head in the new bucket', async () => (await kv.get(HEAD_KEY))?.operation === 'PUT');
      expect((await kv.get(LEASE_KEY))?.operation).toBe('PUT');
      expect(decodeCheckpoint((await kv.get(HEAD_KEY))!.value, 'kv').version).toBeGreaterThanOrEqual(lastHead);
    } finally {
      await nc.close();
    }
    // Frames ingested after the restart are segmented and written, with heads trained since.
    await until('frames ingested after the restart in the stats file', () => rows(statsFile).some((x) => x.seq > lastSeq + 20));
    await until('a head trained after the restart in use', () => rows(statsFile).some((x) => x.head > lastHead));

    ingest.child.kill('SIGTERM');
    expect((await ingest.done).code).toBe(0);
    // The collector reads the new results stream and completes the stream from ingest's end.
    await until('the collector to finish the stream', () => /^dive: \d+ frames/m.test(collect.stdout()));
    const seqs = rows(statsFile).map((x) => x.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(worker.stderr()).toContain('the work queue was gone from the server');
    expect(collect.stderr()).toContain('the results stream was gone from the server');
    expect(roles.every(alive)).toBe(true);
  });
});
