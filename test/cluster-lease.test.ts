import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type KV, type NatsConnection } from 'nats';
import { acquireTrainerLease } from '../src/cluster/trainer-lease.js';
import { openHeadsBucket } from '../src/cluster/cluster-connection.js';
import { LEASE_KEY } from '../src/cluster/cluster-names.js';
import { TrainerLeaseHeldError, TrainerLeaseLostError } from '../src/errors.js';
import { NatsServer, natsServerMissing } from './helpers/nats-server.js';

const silent = pino({ level: 'silent' });
const missing = natsServerMissing();

describe.skipIf(missing)('trainer lease in KV', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let n = 0;
  const bucket = async (): Promise<KV> => openHeadsBucket(nc, `lease${++n}`);

  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  it('refuses a second trainer while the holder renews, with who holds it', async () => {
    const kv = await bucket();
    // Refused once a renewal is seen (every TTL / 3), within one TTL; a TTL of seconds, not
    // hundreds of ms, so that a busy machine's delays do not pass it.
    const a = await acquireTrainerLease({ kv, id: 'trainer-a', ttlMs: 6_000, logger: silent });
    const t0 = Date.now();
    const err = await acquireTrainerLease({ kv, id: 'trainer-b', ttlMs: 6_000, logger: silent }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainerLeaseHeldError);
    expect((err as Error).message).toMatch(
      /^Another trainer \("trainer-a", pid \d+ on .+, since .+\) holds the trainer lease and is alive: only one trainer may write heads\. Stop it first, or run this one with --standby to take over when it stops\.$/,
    );
    expect(Date.now() - t0).toBeLessThan(6_000);
    await a.release();
  });

  it('a standby takes over as soon as the holder releases', async () => {
    const kv = await bucket();
    // Taking over on release, not after the TTL: the TTL is far longer than the wait allowed.
    const a = await acquireTrainerLease({ kv, id: 'a', ttlMs: 40_000, logger: silent });
    const b = acquireTrainerLease({ kv, id: 'b', ttlMs: 40_000, standby: true, logger: silent });
    await new Promise((r) => setTimeout(r, 300));
    await a.release();
    const t0 = Date.now();
    const lease = await b;
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect((await kv.get(LEASE_KEY))?.json<{ holder: string }>().holder).toBe('b');
    await lease.release();
  });

  it('takes over a lease nobody renews (a crashed trainer), and the old holder can no longer write', async () => {
    const kv = await bucket();
    const old = await acquireTrainerLease({ kv, id: 'old', ttlMs: 400, logger: silent });
    // Simulate a partition: someone else overwrites the lease; the old holder finds out on confirm().
    await kv.put(LEASE_KEY, Buffer.from(JSON.stringify({ holder: 'thief', host: 'h', pid: 1, since: 0, ttlMs: 400 })));
    const lost = await old.confirm().catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(TrainerLeaseLostError);
    expect((lost as Error).message).toContain('This trainer lost its lease (now held by "thief")');
    // The thief never renews: a new trainer takes over after one TTL.
    const t0 = Date.now();
    const fresh = await acquireTrainerLease({ kv, id: 'fresh', ttlMs: 400, logger: silent });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect((await kv.get(LEASE_KEY))?.json<{ holder: string }>().holder).toBe('fresh');
    await fresh.release();
  });
});
