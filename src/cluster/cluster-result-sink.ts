import type { Logger } from 'pino';
import type { RenderedFrame } from '../types.js';
import type { Sink } from '../sinks/sink.js';
import type { ResultPublisher } from './result-publisher.js';
import type { HeldFrames } from './held-frames.js';

/**
 * The cluster worker's sink: each frame's results go out on the normal subjects and into the
 * results stream (./result-publisher.ts), and its work-queue message is acked only once JetStream
 * has stored the result: at-least-once. A result that cannot be stored sends the frame back to the
 * queue (terminated after too many deliveries); the worker goes on.
 */
export function clusterResultSink(results: ResultPublisher, held: HeldFrames, log: Logger): Sink {
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
      }
    },
    close: () => Promise.resolve(),
  };
}
