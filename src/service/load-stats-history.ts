import { connect, DeliverPolicy, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { FrameStats, WindowSummary } from '../types.js';
import { natsConnectOptions, type NatsSecurity } from '../internal/nats-security.js';
import { WindowedSummaries } from '../operators/windowed-summaries.js';
import { HISTORY_MS, type SummaryHistory } from '../engine/summary-history.js';
import { statsWildcard } from '../sinks/nats-subjects.js';

/** Longest the start waits for the history, ms: past that, the viewer starts with what came. */
const LOAD_TIMEOUT_MS = 10_000;
/** Most stats messages read back (an hour of 4 streams at 30 fps is 432 000). */
const MAX_MESSAGES = 500_000;

export interface StatsHistorySource {
  readonly servers: string | readonly string[];
  readonly security: NatsSecurity | undefined;
  readonly prefix: string;
  /** The JetStream stream that keeps `<prefix>.*.stats` (the nats sink's `jetstream.stream`). */
  readonly stream: string;
}

/**
 * Fills `history` with the last hour's summaries from the stats a NATS sink kept in JetStream,
 * so a viewer of a restarted service still sees the hour before (README "Summaries"). The stats
 * are replayed through the same windows, dated by their capture time. Best effort: a server that
 * is down, a stream that does not exist yet, or a slow read leave the history as far as it got.
 */
export async function loadStatsHistory(src: StatsHistorySource, history: SummaryHistory, logger: Logger): Promise<number> {
  const { servers, options } = natsConnectOptions('stats history', src.servers, src.security);
  const deadline = Date.now() + LOAD_TIMEOUT_MS;
  let nc: NatsConnection | undefined;
  let read = 0;
  try {
    nc = await connect({ ...options, servers, name: 'stegostream-history', timeout: 3000 });
    const js = nc.jetstream();
    const since = new Date(Date.now() - HISTORY_MS).toISOString();
    const consumer = await js.consumers.get(src.stream, {
      filterSubjects: statsWildcard(src.prefix),
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: since,
    });
    let at = 0;
    const summaries = new WindowedSummaries(
      (s: WindowSummary) => history.add(s),
      ['1s', '10s', '60s'],
      () => at,
    );
    // Batches until the stream's end, the deadline, or the cap.
    while (read < MAX_MESSAGES && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
      let got = 0;
      let last = false;
      for await (const m of batch) {
        const s = m.json<FrameStats>();
        at = s.capturedAt;
        summaries.add(s);
        read++;
        got++;
        last = m.info.pending === 0;
      }
      if (got === 0 || last) break;
    }
    // Windows that ended before now are complete: emit them; the open one is the live pipeline's.
    at = Date.now();
    summaries.flush(at);
    logger.info({ stats: read, stream: src.stream }, 'summary history loaded from JetStream');
  } catch (err) {
    // Expected on a first start (no stream yet) and while NATS is down (the sink says so itself).
    logger.info({ err: (err as Error).message, stream: src.stream }, 'no summary history from JetStream; the viewer starts empty');
  } finally {
    await nc?.close().catch(() => undefined);
  }
  return read;
}
