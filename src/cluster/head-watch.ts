import { Events, type KV, type KvWatchOptions, type NatsConnection, type QueuedIterator, type KvEntry } from 'nats';
import type { Logger } from 'pino';
import { decodeCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { HEAD_KEY, headsBucketName } from './cluster-names.js';
import { openHeadsBucket } from './cluster-connection.js';

/** How long to wait before watching again when the bucket cannot be opened, ms. */
const REWATCH_RETRY_MS = 1_000;

/** The latest head the trainer put in KV, for a worker to swap in between batches. */
export interface HeadWatch {
  /** The newest usable head received, if any. */
  readonly latest: HeadState | undefined;
  /** True once a head has been received. */
  readonly available: boolean;
  /** Why there is no usable head (waiting, or the one in KV cannot be used). */
  readonly problem: string | undefined;
  stop(): Promise<void>;
}

/**
 * Watches `<PREFIX>_heads` key `head`. A head that cannot be used (another backbone's dimension,
 * a corrupt value) is logged and the current one kept. After every reconnect the watch starts
 * again on a freshly opened bucket: a server restarted without its store has a new, empty bucket,
 * which a watch of the old one never hears from (the trainer writes its head there again).
 */
export async function watchHeads(nc: NatsConnection, prefix: string, dim: number, log: Logger): Promise<HeadWatch> {
  const state: { latest: HeadState | undefined; problem: string | undefined } = {
    latest: undefined,
    problem: 'waiting for the first head from the trainer',
  };
  const where = `KV ${headsBucketName(prefix)}/${HEAD_KEY}`;
  let stopped = false;
  let watch: QueuedIterator<KvEntry> | undefined;
  let watching: Promise<void> = Promise.resolve();

  const onEntry = (e: KvEntry): void => {
    if (e.operation !== 'PUT') return;
    try {
      const head = decodeCheckpoint(e.value, `${where} revision ${e.revision}`, { dim });
      state.problem = undefined;
      // The same head seen again (a new watch after a reconnect): nothing changes.
      if (state.latest !== undefined && sameHead(head, state.latest)) return;
      state.latest = head;
      log.info({ headVersion: head.version, revision: e.revision }, 'head received');
    } catch (err) {
      state.problem = (err as Error).message;
      log.error({ err, revision: e.revision }, 'cannot use the head in KV; keeping the current one');
    }
  };

  const start = async (kv: KV): Promise<void> => {
    const opts: KvWatchOptions = { key: HEAD_KEY };
    const w = await kv.watch(opts);
    watch = w;
    watching = (async () => {
      for await (const e of w) onEntry(e);
    })();
  };

  /** Watches again on a freshly opened bucket, retrying until it works or the watch stops. */
  const rewatch = async (): Promise<void> => {
    watch?.stop();
    await watching.catch(() => undefined);
    while (!stopped) {
      try {
        await start(await openHeadsBucket(nc, prefix));
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot watch the heads bucket yet; retrying');
        await new Promise((r) => setTimeout(r, REWATCH_RETRY_MS));
      }
    }
  };

  await start(await openHeadsBucket(nc, prefix));
  const statusWatch = (async () => {
    for await (const s of nc.status()) {
      if (stopped) return;
      if (s.type === Events.Reconnect) await rewatch();
    }
  })();
  statusWatch.catch((err: unknown) => log.error({ err }, 'NATS status watch failed'));

  return {
    get latest() {
      return state.latest;
    },
    get available() {
      return state.latest !== undefined;
    },
    get problem() {
      return state.problem;
    },
    stop: async () => {
      stopped = true;
      watch?.stop();
      await watching.catch(() => undefined);
    },
  };
}

function sameHead(a: HeadState, b: HeadState): boolean {
  return (
    a.version === b.version && a.createdAt === b.createdAt && a.names.length === b.names.length && a.names.every((n, i) => n === b.names[i])
  );
}
