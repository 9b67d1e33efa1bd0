import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { fanOutPublisher, type LivePublisher } from '../src/sinks/sink.js';
import type { FrameStats } from '../src/types.js';

describe('fanOutPublisher', () => {
  it('isolates a failing sink: the others still get every call, and close() settles all', async () => {
    const calls: string[] = [];
    const failing: LivePublisher = {
      name: 'broken',
      stats: () => {
        throw new Error('boom');
      },
      frame: () => {
        throw new Error('boom');
      },
      mask: () => {},
      wantsFrames: () => {
        throw new Error('boom');
      },
      wantsMasks: () => false,
      classes: () => {},
      event: () => {},
      close: () => Promise.reject(new Error('cannot close')),
    };
    const good: LivePublisher = {
      name: 'good',
      stats: (s) => void calls.push(`stats ${s.seq}`),
      frame: (stream, meta) => void calls.push(`frame ${stream} ${meta.seq}`),
      mask: () => void calls.push('mask'),
      wantsFrames: () => true,
      wantsMasks: () => false,
      classes: () => void calls.push('classes'),
      event: (e) => void calls.push(`event ${e.type}`),
      close: async () => void calls.push('close'),
    };
    const logs: unknown[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const pub = fanOutPublisher([failing, good], logger);
    const s: FrameStats = { stream: 'a', seq: 1, pts: 0, capturedAt: 0, headVersion: 0, classes: [] };
    pub.stats(s);
    pub.stats({ ...s, seq: 2 });
    expect(pub.wantsFrames('a')).toBe(true);
    expect(pub.wantsMasks('a')).toBe(false);
    pub.frame('a', { seq: 2, pts: 0, headVersion: 0, width: 1, height: 1 }, Buffer.alloc(1));
    pub.mask('a', { seq: 2, pts: 0, headVersion: 0, width: 1, height: 1 }, Buffer.alloc(1));
    pub.event({ type: 'head-updated', version: 1 });
    await pub.close();
    await pub.close();
    expect(calls).toEqual(['stats 1', 'stats 2', 'frame a 2', 'event head-updated', 'close']);
    // One log line for the burst of failures (rate-limited), one for the failed close.
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatchObject({ sink: 'broken', method: 'stats', msg: 'live sink failed; other sinks go on' });
    expect(logs[1]).toMatchObject({ sink: 'broken', msg: 'live sink failed to close' });
  });
});
