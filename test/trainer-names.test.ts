/**
 * `trainer --head FILE --names FILE` names the loaded head's classes before it publishes it, as
 * `process --head --names` does; a list that does not fit the head is refused before any work.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'nats';
import { writeSceneVideo } from '../src/scene/write-scene-files.js';
import { openHeadsBucket } from '../src/cluster/cluster-connection.js';
import { HEAD_KEY, LEASE_KEY } from '../src/cluster/cluster-names.js';
import { decodeCheckpoint, loadCheckpoint } from '../src/learning/checkpoint.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';
import { runCli, startCli, tempDir } from './helpers/cli.js';

const missing = natsServerMissing();

describe.skipIf(missing)('trainer --head --names', () => {
  let server: NatsServer;
  let dir: string;
  let ckpt: string;
  let k: number;

  beforeAll(async () => {
    server = await NatsServer.start();
    dir = await tempDir('stego-trainer-names-');
    const clip = join(dir, 'clip.mp4');
    await writeSceneVideo(clip, { width: 160, height: 96, seed: 2, frames: 24, fps: 12 });
    ckpt = join(dir, 'head.ckpt');
    const r = await runCli(['process', clip, '--stats', join(dir, 's.csv'), '-k', '3', '--learn-frames', '16', '--checkpoint', ckpt]);
    expect(r.code).toBe(0);
    k = (await loadCheckpoint(ckpt)).k;
  });

  afterAll(async () => {
    await server?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes the loaded head with the names given', async () => {
    const names = ['water', 'sand', 'rock', 'coral', 'fish'].slice(0, k);
    const namesFile = join(dir, 'names.txt');
    writeFileSync(namesFile, names.join('\n') + '\n');
    const trainer = startCli(['trainer', '--head', ckpt, '--freeze', '--names', namesFile, '--nats', server.url, '--log-level', 'warn']);
    const nc = await connect({ servers: server.url });
    try {
      const kv = await openHeadsBucket(nc, 'stegostream');
      let head: ReturnType<typeof decodeCheckpoint> | undefined;
      const end = Date.now() + 60_000;
      while (head === undefined && Date.now() < end) {
        const e = await kv.get(HEAD_KEY);
        if (e?.operation === 'PUT') head = decodeCheckpoint(e.value, 'kv');
        else await new Promise((r) => setTimeout(r, 100));
      }
      expect(head?.names).toEqual(names);
    } finally {
      await nc.close();
      trainer.child.kill('SIGTERM');
      await trainer.done;
    }
  });

  it('refuses a names list that does not fit the head, naming --names, before publishing anything', async () => {
    const namesFile = join(dir, 'short.txt');
    writeFileSync(namesFile, 'water\n');
    const r = await runCli(['trainer', '--head', ckpt, '--freeze', '--names', namesFile, '--prefix', 'other', '--nats', server.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--names');
    expect(r.stderr).toContain(`${k} names, one per class (it lists 1)`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // The lease went back with the refusal: a corrected trainer need not wait for it to expire.
    const nc = await connect({ servers: server.url });
    try {
      const lease = await (await openHeadsBucket(nc, 'other')).get(LEASE_KEY);
      expect(lease === null || lease.operation !== 'PUT').toBe(true);
    } finally {
      await nc.close();
    }
  });
});
