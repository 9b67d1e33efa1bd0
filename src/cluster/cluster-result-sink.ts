import type { Logger } from 'pino';
import type { RenderedFrame } from '../types.js';
import type { Sink } from '../sinks/sink.js';
import type { ResultPublisher } from './result-publisher.js';
import type { HeldFrames } from './held-frames.js';
import { isStreamGone } from './cluster-connection.js';

/**
 * The cluster worker's sink: each frame's results go out on the normal subjects and into the
 * results stream (./result-publisher.ts), and its work-queue message is acked only once JetStream
 * has stored the result: at-least-once. A result that cannot be stored sends the frame back to the
 * queue (terminated after too many deliveries); the worker goes on. When the results stream is
 * gone (a server restarted without its store), `recreate` makes it again (once at a time).
 */
export function clusterResultSink(results: ResultPublisher, held: HeldFrames, log: Logger, recreate?: () => Promise<unknown>): Sink {
  let recreating: Promise<unknown> | undefined;
  return {
    name: 'cluster-results',
    async write(r: RenderedFrame): Promise<void> {
      const frame = r.seg.frame;
      const run = held.run(frame);
      if (run === undefined) return;
      try {
        await results.publish(r, run, held.wantsMask(frame));
        held.settle(frame, 'ack');
      } catch (err) {
        log.error({ err, stream: frame.streamId, seq: frame.seq }, 'result not stored; returning the frame to the queue');
        held.fail(frame);
        if (recreate !== undefined && isStreamGone(err)) {
          recreating ??= recreate()
            .then(() => log.warn('the results stream was gone from the server (restarted without its store?); created it again'))
            .catch((e: unknown) => log.warn({ err: (e as Error).message }, 'cannot create the results stream again yet'))
            .finally(() => (recreating = undefined));
        }
      }
    },
    close: () => Promise.resolve(),
  };
}
