import { Observable } from 'rxjs';
import type { Consumer, JsMsg } from 'nats';
import type { Logger } from 'pino';
import type { Frame } from '../types.js';
import { decodeFrame, type WireFrame } from './frame-codec.js';
import type { HeldFrames } from './held-frames.js';
import { isStreamGone } from './cluster-connection.js';

/** How long one fetch waits for a batch to fill, ms (nats.js minimum: 1000). */
const FETCH_EXPIRES_MS = 1_000;

/**
 * The cluster worker's source: frames fetched from the durable `workers` consumer, `batchSize` at
 * a time, decoded in parallel (libvips threads) and handed on in stream order, each once a gate
 * credit is free (`held.gate`), so the worker holds about two batches and no worker hoards frames
 * another could run. Messages that are not frames are terminated. Completes once `closing()`
 * turns true; what was fetched and not handed on then goes back to the queue. A fetch that finds
 * the stream or consumer gone (a server restarted without its store) calls `reopen`, which
 * creates them again, and goes on with the consumer it gives.
 */
export function jetstreamFrames(
  first: Consumer,
  reopen: () => Promise<Consumer>,
  held: HeldFrames,
  batchSize: number,
  closing: () => boolean,
  log: Logger,
): Observable<Frame> {
  return new Observable<Frame>((subscriber) => {
    let stopped = false;
    const done = (): boolean => stopped || closing();
    let consumer = first;
    void (async () => {
      while (!done()) {
        let fetched: JsMsg[] = [];
        try {
          const iter = await consumer.fetch({ max_messages: batchSize, expires: FETCH_EXPIRES_MS });
          for await (const m of iter) {
            held.hold(m);
            fetched.push(m);
          }
        } catch (err) {
          if (done()) break;
          log.warn({ err: (err as Error).message }, 'fetch failed; retrying');
          await new Promise((r) => setTimeout(r, 1000));
          if (isStreamGone(err) && !done()) {
            try {
              consumer = await reopen();
              log.warn('the work queue was gone from the server (restarted without its store?); created it again');
            } catch (reopenErr) {
              log.warn({ err: (reopenErr as Error).message }, 'cannot create the work queue again yet');
            }
          }
        }
        for (const d of await decodeAll(fetched, held, log)) {
          await held.gate.acquire();
          if (done()) {
            held.settleMessage(d.m, 'nak');
            continue;
          }
          held.attach(d.w, d.m);
          subscriber.next(d.w.frame);
        }
        fetched = [];
      }
      subscriber.complete();
    })();
    return () => {
      stopped = true;
    };
  });
}

/** Decodes a fetch's frames, in message order; messages that are not frames are terminated. */
async function decodeAll(batch: JsMsg[], held: HeldFrames, log: Logger): Promise<Array<{ m: JsMsg; w: WireFrame }>> {
  const decoded: Array<{ m: JsMsg; w: WireFrame }> = [];
  await Promise.all(
    batch.map(async (m) => {
      try {
        decoded.push({ m, w: await decodeFrame(m.data, m.headers) });
      } catch (err) {
        log.error({ err: (err as Error).message, subject: m.subject }, 'not a frame; terminating the message');
        held.settleMessage(m, 'term');
      }
    }),
  );
  return decoded.sort((a, b) => a.m.seq - b.m.seq);
}
