/**
 * Every pipeline shipped in pipelines/ loads and validates (with the environment variables it
 * needs), and documents each key with a comment.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPipeline } from '../src/config/load-pipeline.js';

const DIR = fileURLToPath(new URL('../pipelines/', import.meta.url));
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/** What each file needs from the environment; nothing else is set, so defaults are exercised. */
const ENV: Record<string, NodeJS.ProcessEnv> = {
  'demo.yaml': {},
  'recorded-dive.yaml': { DIVE_VIDEO: 'dives/reef.mp4' },
  'bluerov-live.yaml': {},
  'multi-camera.yaml': { CAM1_URL: 'rtsp://pilot:secret@10.0.0.21:554/stream1' },
  'rov-live.yaml': {},
};

describe('pipelines/', () => {
  it('holds the pipelines the issue names', () => {
    expect(FILES).toEqual(['bluerov-live.yaml', 'demo.yaml', 'multi-camera.yaml', 'recorded-dive.yaml', 'rov-live.yaml']);
  });

  it.each(FILES)('%s validates with its environment', async (file) => {
    const config = await loadPipeline(join(DIR, file), ENV[file] ?? {});
    expect(config.sources.length).toBeGreaterThan(0);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each(FILES.filter((f) => Object.keys(ENV[f] ?? {}).length > 0))('%s names the variable it misses', async (file) => {
    await expect(loadPipeline(join(DIR, file), {})).rejects.toThrow(/environment variable [A-Z0-9_]+ is not set/);
  });

  it.each(FILES)('%s comments every key', (file) => {
    const lines = readFileSync(join(DIR, file), 'utf8').split('\n');
    // `with:` opens the options of the entry above it, which carries the comment.
    const bare = lines.filter((l) => /^\s*(- )?[A-Za-z][A-Za-z0-9]*:/.test(l) && !l.includes('#') && !/^\s*with:\s*$/.test(l));
    expect(bare).toEqual([]);
  });

  it('bluerov-live listens for RTP on 5600 and publishes to NATS with JetStream history', async () => {
    const c = await loadPipeline(join(DIR, 'bluerov-live.yaml'), {});
    expect(c.sources).toEqual([
      expect.objectContaining({ use: 'live', name: 'bluerov', with: expect.objectContaining({ url: 'rtp://0.0.0.0:5600' }) }),
    ]);
    expect(c.sinks.map((s) => s.use)).toEqual(['websocket', 'nats']);
    expect(c.sinks[1]).toMatchObject({
      with: {
        servers: 'nats://127.0.0.1:4222',
        jetstream: { stream: 'STEGOSTREAM_STATS', maxAgeMs: 604_800_000, maxBytes: 1_073_741_824 },
      },
    });
    const other = await loadPipeline(join(DIR, 'bluerov-live.yaml'), { NATS_URL: 'nats://10.1.1.1:4222' });
    expect(other.sinks[1]).toMatchObject({ with: { servers: 'nats://10.1.1.1:4222' } });
  });

  it('rov-live takes RTSP from ROV_URL, or the BlueROV RTP default', async () => {
    const rtsp = await loadPipeline(join(DIR, 'rov-live.yaml'), { ROV_URL: 'rtsp://192.168.2.10:8554/video', PORT: '9090' });
    expect(rtsp.sources[0]).toMatchObject({ use: 'live', name: 'rov', with: { url: 'rtsp://192.168.2.10:8554/video' } });
    expect(rtsp.service.port).toBe(9090);
    const rov = await loadPipeline(join(DIR, 'rov-live.yaml'), {});
    expect(rov.sources[0]).toMatchObject({ with: { url: 'rtp://0.0.0.0:5600' } });
    expect(rov.sinks.map((s) => s.use)).toEqual(['websocket', 'nats']);
  });

  it('multi-camera has an RTSP, an SRT and an MPEG-TS/UDP camera', async () => {
    const c = await loadPipeline(join(DIR, 'multi-camera.yaml'), { CAM1_URL: 'rtsp://cam1/s', CAM3_URL: 'udp://239.0.0.1:5601' });
    expect(c.sources.map((s) => (s.use === 'live' ? `${s.name} ${s.with.url}` : s.name))).toEqual([
      'cam1 rtsp://cam1/s',
      'cam2 srt://0.0.0.0:9000?mode=listener',
      'cam3 udp://239.0.0.1:5601',
    ]);
  });

  it('recorded-dive plays DIVE_VIDEO in real time', async () => {
    const c = await loadPipeline(join(DIR, 'recorded-dive.yaml'), { DIVE_VIDEO: '/videos/dive 3.mp4' });
    expect(c.sources[0]).toEqual({
      use: 'file',
      name: 'dive',
      with: { path: '/videos/dive 3.mp4', realtime: true, loop: false, every: 1 },
    });
  });
});
