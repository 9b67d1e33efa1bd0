/**
 * The single-writer lease of the trainer, in the heads KV bucket (key `trainer-lease`):
 *
 * - acquire: `kv.create` succeeds only when the key does not exist (or was deleted);
 * - hold: the holder rewrites the key every `ttlMs / 3` with `kv.update(key, value, revision)`,
 *   a compare-and-set on the revision it last wrote, and checks the lease the same way before every
 *   head it publishes (`confirm()`): a trainer that lost the lease cannot write;
 * - a lease not rewritten for `ttlMs` (by the waiting trainer's own clock, so clocks need not
 *   agree) is stale: the waiting trainer takes it over with `kv.update` on the stale revision, so
 *   of two waiting trainers exactly one wins;
 * - release: the holder deletes the key (on the revision it holds), and a standby takes over at once.
 *
 * A second trainer is refused with TrainerLeaseHeldError once it has seen the holder renew the
 * lease (it waits up to one TTL to tell a live holder from a crashed one), or, with `standby`,
 * waits and takes over when the holder stops.
 */
import { hostname } from 'node:os';
import type { KV, KvEntry } from 'nats';
import type { Logger } from 'pino';
import { LEASE_KEY } from './cluster-names.js';
import { TrainerLeaseHeldError, TrainerLeaseLostError } from '../errors.js';

export const DEFAULT_LEASE_TTL_MS = 15_000;

export interface LeaseHolder {
  readonly holder: string;
  readonly host: string;
  readonly pid: number;
  /** ms since the epoch, by the holder's clock. */
  readonly since: number;
  readonly ttlMs: number;
}

export interface TrainerLease {
  readonly holder: LeaseHolder;
  /** Rewrites the lease now (CAS); throws TrainerLeaseLostError when another trainer holds it. */
  confirm(): Promise<void>;
  /** Resolves with the error when the lease is lost (a refresh failed). */
  readonly lost: Promise<TrainerLeaseLostError>;
  /** Stops refreshing and deletes the lease. Idempotent. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  readonly kv: KV;
  readonly id: string;
  readonly ttlMs?: number;
  /** Wait for the lease instead of failing when another live trainer holds it. */
  readonly standby?: boolean;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

function parseHolder(e: KvEntry): LeaseHolder | undefined {
  try {
    return e.json<LeaseHolder>();
  } catch {
    return undefined;
  }
}

const encode = (h: LeaseHolder): Uint8Array => Buffer.from(JSON.stringify(h), 'utf8');

export async function acquireTrainerLease(options: AcquireOptions): Promise<TrainerLease> {
  const { kv, logger } = options;
  const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  const me: LeaseHolder = { holder: options.id, host: hostname(), pid: process.pid, since: Date.now(), ttlMs };
  const log = logger.child({ stage: 'lease' });
  let revision: number | undefined;
  /** Revision of the other holder's lease and when we first saw it (our clock). */
  let seen: { revision: number; at: number } | undefined;
  let renewedSeen = false;

  while (revision === undefined) {
    if (options.signal?.aborted) throw new Error('aborted while waiting for the trainer lease');
    try {
      revision = await kv.create(LEASE_KEY, encode(me));
      break;
    } catch {
      // Exists: look at it below.
    }
    const e = await kv.get(LEASE_KEY);
    if (e === null || e.operation !== 'PUT') continue; // deleted meanwhile: create again
    const other = parseHolder(e);
    const now = Date.now();
    if (seen === undefined || seen.revision !== e.revision) {
      if (seen !== undefined) renewedSeen = true;
      seen = { revision: e.revision, at: now };
    }
    const otherTtl = other?.ttlMs ?? ttlMs;
    if (renewedSeen && !options.standby)
      throw new TrainerLeaseHeldError(other?.holder ?? '?', other?.host ?? '?', other?.pid ?? 0, other?.since ?? 0);
    if (now - seen.at >= otherTtl) {
      // Not renewed for a whole TTL: its holder is gone. Take over on that revision (CAS).
      try {
        revision = await kv.update(LEASE_KEY, encode(me), e.revision);
        log.warn({ previous: other }, 'took over a stale trainer lease');
        break;
      } catch {
        continue; // someone else renewed or took it
      }
    }
    if (seen.at === now)
      log.info(
        { holder: other },
        options.standby ? 'another trainer holds the lease; standing by' : 'another trainer holds the lease; checking that it is alive',
      );
    await new Promise((r) => setTimeout(r, Math.max(100, Math.min(1000, otherTtl / 5))));
  }
  log.info({ revision, ttlMs }, 'trainer lease acquired');

  let released = false;
  let resolveLost!: (e: TrainerLeaseLostError) => void;
  const lost = new Promise<TrainerLeaseLostError>((resolve) => (resolveLost = resolve));
  let chain: Promise<void> = Promise.resolve();

  const refresh = (): Promise<void> =>
    (chain = chain.then(async () => {
      if (released) return;
      try {
        revision = await kv.update(LEASE_KEY, encode(me), revision as number);
      } catch (err) {
        const e = await kv.get(LEASE_KEY).catch(() => null);
        const other = e ? parseHolder(e) : undefined;
        const lostErr = new TrainerLeaseLostError(other?.holder ?? '(none)', err);
        released = true;
        clearInterval(timer);
        resolveLost(lostErr);
        throw lostErr;
      }
    }));

  const timer = setInterval(() => void refresh().catch(() => undefined), Math.max(100, Math.floor(ttlMs / 3)));
  timer.unref();

  return {
    holder: me,
    confirm: refresh,
    lost,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await chain.catch(() => undefined);
      try {
        await kv.delete(LEASE_KEY, { previousSeq: revision as number });
        log.info('trainer lease released');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not release the trainer lease (it expires by itself)');
      }
    },
  };
}
