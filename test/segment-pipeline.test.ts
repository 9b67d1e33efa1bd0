import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { publishTo, segmentPipeline } from '../src/engine/segment-pipeline.js';
import type { Sink } from '../src/sinks/sink.js';
import type { Frame, RenderedFrame, Segmentation } from '../src/types.js';

function frame(stream: string, seq: number): Frame {
  return { streamId: stream, seq, pts: seq, width: 4, height: 2, rgb: Buffer.alloc(24), capturedAt: 0 };
}

/** Segments every frame as one class, recording the batches it was called with. */
function fakeSegment(batches: string[][]): (frames: Frame[]) => Promise<Segmentation[]> {
  return async (frames) => {
    batches.push(frames.map((f) => `${f.streamId}${f.seq}`));
    return frames.map((f) => ({
      frame: f,
      labels: new Uint8Array(8),
      headVersion: 1,
      classes: [{ id: 0, name: 'water', color: [0, 0, 255] }],
    }));
  };
}

const batch = {
  size: 2,
  maxDelayMs: 0,
  fullBatches: true,
  key: (f: Frame) => f.streamId,
  policy: () => 'wait' as const,
  queueSize: () => 2,
};

describe('segmentPipeline + publishTo', () => {
  it('batches frames across streams, renders each once, and hands every frame to the sink in each stream order', async () => {
    const batches: string[][] = [];
    const written: string[] = [];
    const sink: Sink = { name: 't', write: (r) => void written.push(`${r.stats.stream}${r.stats.seq}`), close: async () => undefined };
    const input = [frame('a', 0), frame('b', 0), frame('a', 1), frame('b', 1), frame('a', 2)];
    const out = await lastValueFrom(
      from(input).pipe(
        segmentPipeline({ batch, segment: fakeSegment(batches), render: { png: () => true, jpeg: () => false } }),
        publishTo(sink),
        toArray(),
      ),
    );
    expect(batches.flat().sort()).toEqual(['a0', 'a1', 'a2', 'b0', 'b1']);
    expect(batches.every((b) => b.length <= 2)).toBe(true);
    const order = (s: string): string[] => written.filter((w) => w.startsWith(s));
    expect(order('a')).toEqual(['a0', 'a1', 'a2']);
    expect(order('b')).toEqual(['b0', 'b1']);
    expect(out.every((r: RenderedFrame) => r.png !== undefined && r.stats.classes[0]?.fraction === 1)).toBe(true);
  });

  it('waits for a file sink before the next frame, and a failing write errors the flow', async () => {
    let inFlight = 0;
    let most = 0;
    const sink: Sink = {
      name: 'files',
      async write(r) {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
        if (r.stats.seq === 2) throw new Error('disk full');
      },
      close: async () => undefined,
    };
    const run = lastValueFrom(
      from([0, 1, 2, 3].map((i) => frame('a', i))).pipe(
        segmentPipeline({ batch, segment: fakeSegment([]), render: { png: () => false, jpeg: () => false } }),
        publishTo(sink),
        toArray(),
      ),
    );
    await expect(run).rejects.toThrow('disk full');
    expect(most).toBe(1);
  });

  it('with concurrency, overlaps that many writes', async () => {
    let inFlight = 0;
    let most = 0;
    const sink: Sink = {
      name: 'results',
      async write() {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
      },
      close: async () => undefined,
    };
    const out = await lastValueFrom(
      from([0, 1, 2, 3].map((i) => frame('a', i))).pipe(
        segmentPipeline({ batch: { ...batch, size: 4 }, segment: fakeSegment([]), render: { png: () => false, jpeg: () => false } }),
        publishTo(sink, 4),
        toArray(),
      ),
    );
    expect(out).toHaveLength(4);
    expect(most).toBe(4);
  });
});
