/**
 * Cluster results are durable: workers store each result in the results stream, so a collector
 * that starts late reads what it missed, and one that is killed and restarted goes on where it
 * stopped, every frame once and in order. Results are published with the worker's own publisher
 * (the code path `stegostream worker` runs) to a real nats-server; `collect` is the built CLI.
 * Also: `process --cluster` checks its output folders before any work.
 */
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import { ResultPublisher } from '../src/cluster/result-publisher.js';
import { storeStreamEnd } from '../src/cluster/run-ingest.js';
import { ensureResultsStream } from '../src/cluster/cluster-connection.js';
import type { ClassInfo, Segmentation } from '../src/types.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { lavfiVideo, runCli, startCli, tempDir } from './helpers/cli.js';

const missing = natsServerMissing();
const CLASSES: ClassInfo[] = [
  { id: 0, name: 'sand', color: [200, 180, 120] },
  { id: 1, name: 'water', color: [20, 60, 160] },
];

function segmentation(stream: string, seq: number): Segmentation {
  const labels = new Uint8Array(8 * 4).map((_, i) => (i + seq) % 2);
  return {
    frame: { streamId: stream, seq, pts: seq / 10, width: 8, height: 4, rgb: Buffer.alloc(8 * 4 * 3), capturedAt: Date.now() },
    labels,
    headVersion: 1,
    classes: CLASSES,
  };
}

function seqs(file: string): number[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => Number(l.split(',')[1]));
}

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(missing)('collect reads the results stream: late start, restart, no loss, no duplicates', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;

  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    dir = await tempDir('stego-collect-');
  });

  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  it('a collector started after the results were published, killed midway and restarted writes every frame once, in order', async () => {
    const publisher = new ResultPublisher({ nc, prefix: 'stegostream', worker: 'w1', frames: false });
    // Stored while no collector runs (workers and ingest create the results stream).
    await ensureResultsStream(await nc.jetstreamManager(), 'stegostream');
    for (let seq = 0; seq < 40; seq++) await publisher.publish(segmentation('reef', seq), 'run1');
    // A worker that segmented a frame twice (a redelivery) publishes it again: stored once.
    await publisher.publish(segmentation('reef', 7), 'run1');

    const stats = join(dir, '{stream}.csv');
    const file = join(dir, 'reef.csv');
    const args = ['collect', '--stats', stats, '--streams', 'reef', '--nats', server.url, '--log-level', 'warn'];
    const first = startCli(args);
    await until('the late collector to write the 40 stored results', () => existsSync(file) && seqs(file).length >= 40);
    first.child.kill('SIGKILL');
    await first.done;

    // Published while the collector is down, with ingest's end of the stream (the count).
    for (let seq = 40; seq < 70; seq++) await publisher.publish(segmentation('reef', seq), 'run1');
    await storeStreamEnd(nc.jetstream(), 'stegostream', 'reef', 'run1', 70);
    // The restarted collector learns the count from the stream and exits on its own.
    const second = startCli([...args, '--exit-when-done']);
    const r = await second.done;
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^reef: 70 frames in order/m);
    expect(seqs(file)).toEqual([...Array(70).keys()]);
    expect(readFileSync(file, 'utf8').split('\n')[0]).toBe('stream,seq,pts,time,file,head_version,sand,water');
    // The run the file holds is kept beside it: that is how the restart knew to append.
    expect(readFileSync(`${file}.run`, 'utf8').trim()).toBe('run1');
  });
});

describe('process --cluster checks its outputs before any work', () => {
  it('a missing stats folder fails at once, naming the path, without contacting the cluster', async () => {
    const dir = await tempDir();
    const video = join(dir, 'dive.mp4');
    lavfiVideo(video, { seconds: 1 });
    // Nothing listens on this port: the check must come first.
    for (const [option, value] of [
      ['--stats', join(dir, 'out', '{stream}.csv')],
      ['--out', join(dir, 'out', '{stream}.mp4')],
      ['--masks', join(dir, 'out', 'deep', '{stream}')],
    ] as const) {
      const r = await runCli(['process', video, '--cluster', 'nats://127.0.0.1:1', option, value, '--no-progress']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /Cannot write output ".*dive.*": folder .*out.* does not exist or is not writable\. Choose a writable path\. \[E_OUTPUT_UNWRITABLE\]/,
      );
      expect(r.stderr).not.toMatch(/ENOENT|NATS/);
    }
  });
});
