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
 * - release: the holder deletes the key (on the revision it holds), and a standby takes over at once;
 * - outages: a renewal that cannot reach the server is no loss: the holder keeps the lease and
 *   tries again (a standby may take over after a TTL by its clock, and then the holder's next
 *   compare-and-set fails: lost). `confirm()` waits for the server to come back. A server that
 *   came back without its store has no lease: the holder takes it again with `kv.create` (exactly
 *   one trainer can), re-creating the bucket first when it is gone (`reopen`).
 *
 * A second trainer is refused with TrainerLeaseHeldError once it has seen the holder renew the
 * lease (it waits up to one TTL to tell a live holder from a crashed one), or, with `standby`,
 * waits and takes over when the holder stops.
 */
import { hostname } from 'node:os';
import type { KV, KvEntry } from 'nats';
import type { Logger } from 'pino';
import { LEASE_KEY } from './cluster-names.js';
import { isStreamGone, isUnreachable } from './cluster-connection.js';
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
  /** Opens (and creates) the bucket again, after the server lost it. */
  readonly reopen?: () => Promise<KV>;
  /** Called after the lease was taken again on a server that had lost it (and with it, the head). */
  readonly onRetaken?: (kv: KV) => void;
}

/** How long `confirm()` waits between tries while the server cannot be reached, ms. */
const CONFIRM_RETRY_MS = 250;

function parseHolder(e: KvEntry): LeaseHolder | undefined {
  try {
    return e.json<LeaseHolder>();
  } catch {
    return undefined;
  }
}

const encode = (h: LeaseHolder): Uint8Array => Buffer.from(JSON.stringify(h), 'utf8');

export async function acquireTrainerLease(options: AcquireOptions): Promise<TrainerLease> {
  const { logger } = options;
  let kv = options.kv;
  const ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  const me: LeaseHolder = { holder: options.id, host: hostname(), pid: process.pid, since: Date.now(), ttlMs };
  const log = logger.child({ stage: 'lease' });
  let revision: number | undefined = await takeLease(options, me, log);
  log.info({ revision, ttlMs }, 'trainer lease acquired');

  let released = false;
  let resolveLost!: (e: TrainerLeaseLostError) => void;
  const lost = new Promise<TrainerLeaseLostError>((resolve) => (resolveLost = resolve));
  let chain: Promise<'held' | 'unreachable'> = Promise.resolve('held');
  let outage = false;

  let lostError: TrainerLeaseLostError | undefined;
  const loseLease = (holder: string, cause: unknown): never => {
    const lostErr = new TrainerLeaseLostError(holder, cause);
    lostError = lostErr;
    released = true;
    clearInterval(timer);
    resolveLost(lostErr);
    throw lostErr;
  };

  /** One renewal: 'held', 'unreachable' (try again later), or throws TrainerLeaseLostError. */
  const renew = async (): Promise<'held' | 'unreachable'> => {
    if (lostError) throw lostError;
    if (released) return 'held';
    try {
      revision = await kv.update(LEASE_KEY, encode(me), revision as number);
      return 'held';
    } catch (err) {
      if (isUnreachable(err)) return 'unreachable';
      if (isStreamGone(err) && options.reopen) {
        try {
          kv = await options.reopen();
        } catch (reopenErr) {
          // The server went again before the bucket could be made: try again later, as for any outage.
          if (isUnreachable(reopenErr)) return 'unreachable';
          throw reopenErr;
        }
      }
      let e: KvEntry | null;
      try {
        e = await kv.get(LEASE_KEY);
      } catch (getErr) {
        if (isUnreachable(getErr)) return 'unreachable';
        if (!isStreamGone(getErr)) return loseLease('(unknown)', getErr);
        e = null;
      }
      if (e === null || e.operation !== 'PUT') {
        // The server lost the lease (restarted without its store): take it again, if nobody has.
        try {
          revision = await kv.create(LEASE_KEY, encode(me));
          log.warn('the trainer lease was gone from the server (restarted without its store?); took it again');
          options.onRetaken?.(kv);
          return 'held';
        } catch (createErr) {
          if (isUnreachable(createErr)) return 'unreachable';
          return loseLease('(another trainer)', createErr);
        }
      }
      const other = parseHolder(e);
      if (other !== undefined && other.holder === me.holder && other.pid === me.pid && other.since === me.since) {
        revision = e.revision; // our write landed; its answer did not
        return 'held';
      }
      return loseLease(other?.holder ?? '(none)', err);
    }
  };

  const refresh = (): Promise<'held' | 'unreachable'> => {
    chain = chain.then(renew, renew).then((r) => {
      if (r === 'unreachable' && !outage) log.warn('cannot reach NATS to renew the trainer lease; still holding it, trying again');
      if (r === 'held' && outage) log.info('trainer lease renewed after the outage');
      outage = r === 'unreachable';
      return r;
    });
    return chain;
  };

  /** Renews until the server answers: a head is written only under a lease just confirmed. */
  const confirm = async (): Promise<void> => {
    while ((await refresh()) === 'unreachable') {
      if (released) throw new TrainerLeaseLostError('(released)', undefined);
      await new Promise((r) => setTimeout(r, CONFIRM_RETRY_MS));
    }
  };

  const timer = setInterval(() => void refresh().catch(() => undefined), Math.max(100, Math.floor(ttlMs / 3)));
  timer.unref();

  return {
    holder: me,
    confirm,
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

/** Creates the lease, or waits for the holder's to go stale (standby) or refuses; the revision taken. */
async function takeLease(options: AcquireOptions, me: LeaseHolder, log: Logger): Promise<number> {
  const { kv } = options;
  const ttlMs = me.ttlMs;
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
  return revision;
}
