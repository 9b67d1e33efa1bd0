import type { KV } from 'nats';
import type { Logger } from 'pino';
import { decodeCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { HEAD_KEY, headsBucketName } from './cluster-names.js';

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
 * a corrupt value) is logged and the current one kept.
 */
export async function watchHeads(kv: KV, prefix: string, dim: number, log: Logger): Promise<HeadWatch> {
  const state: { latest: HeadState | undefined; problem: string | undefined } = {
    latest: undefined,
    problem: 'waiting for the first head from the trainer',
  };
  const watch = await kv.watch({ key: HEAD_KEY });
  const where = `KV ${headsBucketName(prefix)}/${HEAD_KEY}`;
  const watching = (async () => {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      try {
        state.latest = decodeCheckpoint(e.value, `${where} revision ${e.revision}`, { dim });
        state.problem = undefined;
        log.info({ headVersion: state.latest.version, revision: e.revision }, 'head received');
      } catch (err) {
        state.problem = (err as Error).message;
        log.error({ err, revision: e.revision }, 'cannot use the head in KV; keeping the current one');
      }
    }
  })();
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
      watch.stop();
      await watching.catch(() => undefined);
    },
  };
}
