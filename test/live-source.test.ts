/**
 * liveSource against real ffmpeg senders on 127.0.0.1 (test/helpers/stream-pusher.ts). Each test
 * starts and stops its own sender(s); waits are on frames and state events, not sleeps.
 */
import { KeepEvery } from '../src/sources/keep-every.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { BadOptionError, InputNotFoundError, SourceError } from '../src/errors.js';
import { liveSource, type LiveSourceOptions, type SourceStateEvent } from '../src/sources/live-source.js';
import { backoffDelay, resolveBackoff } from '../src/sources/live-backoff.js';
import { h264RtpSdp, redactUrl, resolveLiveInput } from '../src/sources/live-url.js';
import type { Frame } from '../src/types.js';
import { ffmpegProtocolMissing, freeTcpPort, freeUdpPort, StreamPusher } from './helpers/stream-pusher.js';
import { RtpRelay } from './helpers/rtp-relay.js';

const W = 64;
const H = 48;
const WAIT_MS = 20_000;
const TEST_MS = 30_000;
const logger = pino({ level: 'silent' });

/** How a connection that fails at once is reported: by its exit code, or as a clean end when
 * fluent-ffmpeg saw stdout close before the exit (runFfmpeg counts that as a normal end). */
const FAILED = '(ffmpeg exited with code 1|ffmpeg ended before the first frame)';

/** A state event with when it came and how many frames had come before it. */
type StateAt = SourceStateEvent & { readonly at: number; readonly framesAt: number };

/** Subscribes to a live source and records frames, states and the error; `until` is the latch. */
function watch(options: Omit<LiveSourceOptions, 'onState' | 'logger' | 'width' | 'height'>) {
  const states: StateAt[] = [];
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  let error: unknown;
  const poke = (): void => waiters.forEach((w) => w());
  const source$ = liveSource({
    width: W,
    height: H,
    ...options,
    logger,
    onState: (e) => {
      states.push({ ...e, at: Date.now(), framesAt: frames.length });
      poke();
    },
  });
  const sub = source$.subscribe({
    next: (f) => {
      frames.push(f);
      poke();
    },
    error: (e: unknown) => {
      error = e;
      poke();
    },
  });
  const names = (): string => states.map((s) => s.state).join(',');
  const until = (what: string, pred: () => boolean, timeoutMs = WAIT_MS): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; states: ${names()}; frames: ${frames.length}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    states,
    frames,
    sub,
    until,
    names,
    get error() {
      return error;
    },
    of: (state: SourceStateEvent['state']) => states.filter((s) => s.state === state),
  };
}

/** Frame invariants every live source keeps. */
function expectGoodFrames(frames: readonly Frame[], streamId: string): void {
  frames.forEach((f, i) => {
    expect(f.streamId).toBe(streamId);
    expect(f.seq).toBe(i);
    expect([f.width, f.height, f.rgb.length]).toEqual([W, H, W * H * 3]);
    if (i > 0) expect(f.pts).toBeGreaterThan(frames[i - 1]!.pts);
  });
  expect(frames[0]?.pts).toBe(0);
  // testsrc2 is colourful: a decoded frame is not black.
  const last = frames.at(-1)!;
  expect(last.rgb.reduce((a, b) => a + b, 0) / last.rgb.length).toBeGreaterThan(20);
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function pusher(p: StreamPusher): StreamPusher {
  cleanups.push(() => p.stop());
  return p;
}
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stego-live-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
function sdpTempDirs(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith('stegostream-sdp-'));
}

describe('live URL and backoff (no ffmpeg)', () => {
  it('builds ffmpeg input arguments per scheme', () => {
    const common = ['-nostats', '-fflags', 'nobuffer', '-flags', 'low_delay'];
    const probe = ['-probesize', '32', '-analyzeduration', '0'];
    const sdp = ['-protocol_whitelist', 'file,udp,rtp', '-f', 'sdp'];
    const args = (o: Parameters<typeof resolveLiveInput>[0]) => {
      const r = resolveLiveInput(o);
      return [r.kind, r.inputOptions];
    };
    expect(args({ url: 'rtsp://cam/stream' })).toEqual(['rtsp', [...common, '-rtsp_transport', 'tcp', ...probe]]);
    expect(args({ url: 'rtsp://cam/stream', transport: 'udp' })).toEqual(['rtsp', [...common, '-rtsp_transport', 'udp', ...probe]]);
    expect(args({ url: 'rtp://0.0.0.0:5600' })).toEqual(['rtp', [...common, ...sdp, ...probe]]);
    expect(args({ url: '/x/bluerov.sdp' })).toEqual(['sdp-file', [...common, ...sdp, ...probe]]);
    expect(args({ url: 'udp://@:1234' })).toEqual(['udp', [...common, '-f', 'mpegts', '-overrun_nonfatal', '1', ...probe]]);
    expect(args({ url: 'srt://10.0.0.2:9000?mode=caller' })).toEqual(['srt', [...common, ...probe]]);
    expect(args({ url: 'rtmp://host/live/key' })).toEqual(['rtmp', [...common, ...probe]]);
    expect(args({ url: 'rtmps://host/live/key' })).toEqual(['rtmp', [...common, ...probe]]);
    expect(args({ url: 'https://host/cam/index.m3u8?token=1' })).toEqual(['hls', common]);
    const mjpeg = [...common, '-f', 'mpjpeg', '-use_wallclock_as_timestamps', '1', ...probe];
    expect(args({ url: 'http://10.0.0.3/video.mjpg' })).toEqual(['mjpeg', mjpeg]);
    expect(args({ url: 'http://10.0.0.3/stream', httpFormat: 'mjpeg' })).toEqual(['mjpeg', mjpeg]);
    expect(args({ url: '/dev/video0', inputOptions: ['-input_format', 'mjpeg'] })).toEqual([
      'v4l2',
      [...common, '-f', 'v4l2', '-input_format', 'mjpeg'],
    ]);
  });

  it('keeps a loopback listener on loopback and tells listening inputs from client connections', () => {
    const rtp = resolveLiveInput({ url: 'rtp://127.0.0.1:5600' });
    expect(rtp.inputOptions.join(' ')).toContain('-f sdp -probesize 32 -analyzeduration 0 -localaddr 127.0.0.1');
    expect(resolveLiveInput({ url: 'rtp://0.0.0.0:5600' }).inputOptions).not.toContain('-localaddr');
    expect(resolveLiveInput({ url: 'udp://127.0.0.1:1234' }).input).toBe('udp://127.0.0.1:1234?localaddr=127.0.0.1');
    expect(resolveLiveInput({ url: 'udp://localhost:1234?pkt_size=1316' }).input).toBe(
      'udp://localhost:1234?pkt_size=1316&localaddr=127.0.0.1',
    );
    expect(resolveLiveInput({ url: 'udp://127.0.0.1:1234?localaddr=127.0.0.2' }).input).toBe('udp://127.0.0.1:1234?localaddr=127.0.0.2');
    expect(resolveLiveInput({ url: 'udp://@:1234' }).input).toBe('udp://@:1234');
    const listening = (o: Parameters<typeof resolveLiveInput>[0]): boolean => resolveLiveInput(o).listening;
    expect(listening({ url: 'udp://@:1234' })).toBe(true);
    expect(listening({ url: 'rtp://0.0.0.0:5600' })).toBe(true);
    expect(listening({ url: '/x/bluerov.sdp' })).toBe(true);
    expect(listening({ url: 'srt://0.0.0.0:9000?mode=listener' })).toBe(true);
    expect(listening({ url: 'srt://10.0.0.2:9000?mode=caller' })).toBe(false);
    expect(listening({ url: 'rtmp://0.0.0.0/live/key', inputOptions: ['-listen', '1'] })).toBe(true);
    expect(listening({ url: 'rtsp://0.0.0.0:8554/live', inputOptions: ['-rtsp_flags', 'listen'] })).toBe(true);
    expect(listening({ url: 'rtsp://cam/stream' })).toBe(false);
  });

  it("rejects an rtp:// URL whose port is not the SDP's, naming both", () => {
    const sdp = h264RtpSdp('0.0.0.0', 5602);
    expect(() => resolveLiveInput({ url: 'rtp://0.0.0.0:5600', sdp })).toThrow(BadOptionError);
    expect(() => resolveLiveInput({ url: 'rtp://0.0.0.0:5600', sdp })).toThrow(
      `Expected the port of the SDP's "m=video" line (5602), where ffmpeg listens: make the URL rtp://0.0.0.0:5602 or change the SDP for url but received "rtp://0.0.0.0:5600"`,
    );
    expect(resolveLiveInput({ url: 'rtp://0.0.0.0:5602', sdp }).sdpText).toBe(sdp);
  });

  it('generates an H.264 SDP for a bare rtp:// URL and keeps given SDP text', () => {
    expect(resolveLiveInput({ url: 'rtp://0.0.0.0:5600' }).sdpText).toBe(h264RtpSdp('0.0.0.0', 5600));
    expect(h264RtpSdp('0.0.0.0', 5600)).toContain('m=video 5600 RTP/AVP 96\na=rtpmap:96 H264/90000');
    expect(
      resolveLiveInput({
        url: 'rtp://127.0.0.1:5602',
        sdp: 'v=0\nm=video 5602 RTP/AVP 97\n',
      }).sdpText,
    ).toBe('v=0\nm=video 5602 RTP/AVP 97\n');
  });

  it('rejects bad options at call time with messages that say what is expected', () => {
    const base = { streamId: 'cam', width: W, height: H };
    expect(() => liveSource({ ...base, url: 'ftp://cam/x' })).toThrow(BadOptionError);
    expect(() => liveSource({ ...base, url: 'ftp://cam/x' })).toThrow(
      'Expected a live URL (rtsp://, rtp://, udp://, srt://, rtmp://, rtmps://, http://, https://), a V4L2 device (/dev/videoN) or an .sdp file path for url but received "ftp://cam/x" of type string',
    );
    expect(() => liveSource({ ...base, url: 'rtp://127.0.0.1' })).toThrow(
      'Expected a URL with a port 1-65535 (scheme://host:port) for url but received "rtp://127.0.0.1" of type string',
    );
    expect(() => liveSource({ ...base, url: 'udp://127.0.0.1:5600', transport: 'tcp' })).toThrow(
      'Expected no transport (it applies to rtsp:// URLs only) for transport but received "tcp" of type string',
    );
    expect(() => liveSource({ ...base, url: 'http://cam/stream' })).toThrow(
      'Expected "hls" or "mjpeg" (the URL says neither: no .m3u8, no "mjpeg" in it) for httpFormat but received "auto" of type string',
    );
    expect(() => liveSource({ ...base, url: 'udp://127.0.0.1:5600', httpFormat: 'mjpeg' })).toThrow(
      'Expected no httpFormat (it applies to http(s):// URLs only) for httpFormat but received "mjpeg" of type string',
    );
    expect(() => liveSource({ ...base, url: 'rtsp://cam/x', width: 0 })).toThrow(
      'Expected positive integer for width but received 0 of type number',
    );
    expect(() =>
      liveSource({
        ...base,
        url: 'rtsp://cam/x',
        backoff: { initialMs: 1000, maxMs: 10 },
      }),
    ).toThrow('Expected a number of ms >= backoff.initialMs (1000) for backoff.maxMs but received 10 of type number');
    expect(() => liveSource({ ...base, url: 'rtsp://cam/x', maxRetries: -1 })).toThrow(
      'Expected a non-negative integer or Infinity for maxRetries but received -1 of type number',
    );
    expect(() => liveSource({ ...base, url: join(tmpdir(), 'no-such-stegostream.sdp') })).toThrow(InputNotFoundError);
  });

  it('grows the backoff exponentially within the jitter, capped', () => {
    const b = resolveBackoff({
      initialMs: 100,
      maxMs: 1000,
      factor: 2,
      jitter: 0.2,
    });
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, b, () => 0.5))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelay(1, b, () => 0)).toBe(80);
    expect(backoffDelay(1, b, () => 1)).toBe(120);
    expect(backoffDelay(9, b, () => 1)).toBe(1000);
    expect(resolveBackoff(undefined)).toEqual({
      initialMs: 500,
      maxMs: 30_000,
      factor: 2,
      jitter: 0.2,
      resetAfterMs: 10_000,
    });
  });

  it('hides passwords in display URLs', () => {
    expect(redactUrl('rtsp://admin:hunter2@10.0.0.5:554/h264')).toBe('rtsp://admin:***@10.0.0.5:554/h264');
    expect(redactUrl('rtsp://10.0.0.5/h264')).toBe('rtsp://10.0.0.5/h264');
  });
});

describe('liveSource with real ffmpeg senders', () => {
  it("reads RTP/UDP H.264 described by the sender's SDP file (BlueROV style)", { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort(true);
    const sdpFile = join(tempDir(), 'rov.sdp');
    const p = pusher(StreamPusher.start({ kind: 'rtp', port, sdpFile }));
    await p.ready();
    const w = watch({ url: sdpFile, streamId: 'rov' });
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'rov');
    expect(w.names()).toBe('connecting,live,stopped');
    expect(w.states[0]).toMatchObject({
      type: 'source-state',
      stream: 'rov',
      state: 'connecting',
      detail: sdpFile,
    });
  });

  it('reads RTP/UDP with inline SDP text, and with the SDP generated for a bare rtp:// URL', { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort(true);
    const sdpFile = join(tempDir(), 'rov.sdp');
    const p = pusher(StreamPusher.start({ kind: 'rtp', port, sdpFile }));
    await p.ready();
    const before = sdpTempDirs();

    const inline = watch({
      url: `rtp://127.0.0.1:${port}`,
      sdp: readFileSync(sdpFile, 'utf8'),
      streamId: 'inline',
    });
    await inline.until('5 frames', () => inline.frames.length >= 5);
    inline.sub.unsubscribe();
    expectGoodFrames(inline.frames, 'inline');

    const generated = watch({
      url: `rtp://127.0.0.1:${port}`,
      streamId: 'generated',
    });
    await generated.until('5 frames', () => generated.frames.length >= 5);
    generated.sub.unsubscribe();
    expectGoodFrames(generated.frames, 'generated');
    // The temp SDP files went with the subscriptions.
    expect(sdpTempDirs()).toEqual(before);
  });

  it('reads MPEG-TS over UDP', { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort();
    pusher(StreamPusher.start({ kind: 'mpegts-udp', port }));
    const w = watch({ url: `udp://127.0.0.1:${port}`, streamId: 'ts' });
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'ts');
    expect(w.names()).toBe('connecting,live,stopped');
  });

  // Debian has no RTSP server ffmpeg can pull from (mediamtx is not packaged), so this covers the
  // ingest direction: the source listens (-rtsp_flags listen) and ffmpeg pushes over RTSP/TCP.
  it('reads RTSP over TCP from an ffmpeg pushing to the source in listen mode', { timeout: TEST_MS }, async () => {
    const port = await freeTcpPort();
    const w = watch({
      url: `rtsp://127.0.0.1:${port}/live`,
      transport: 'tcp',
      inputOptions: ['-rtsp_flags', 'listen'],
      streamId: 'rtsp',
    });
    pusher(StreamPusher.start({ kind: 'rtsp', port, path: '/live' }));
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'rtsp');
  });

  const noSrt = ffmpegProtocolMissing('srt');
  it.skipIf(noSrt !== undefined)(
    `reads MPEG-TS over SRT as listener, ffmpeg calling${noSrt ? ` (skipped: ${noSrt})` : ''}`,
    { timeout: TEST_MS },
    async () => {
      const port = await freeUdpPort();
      const w = watch({
        url: `srt://127.0.0.1:${port}?mode=listener`,
        streamId: 'srt',
      });
      pusher(StreamPusher.start({ kind: 'srt', port }));
      await w.until('10 frames', () => w.frames.length >= 10);
      w.sub.unsubscribe();
      expectGoodFrames(w.frames, 'srt');
    },
  );

  it('reads RTMP from an ffmpeg pushing to the source in listen mode', { timeout: TEST_MS }, async () => {
    const port = await freeTcpPort();
    const w = watch({
      url: `rtmp://127.0.0.1:${port}/live/cam`,
      inputOptions: ['-listen', '1'],
      streamId: 'rtmp',
    });
    pusher(StreamPusher.start({ kind: 'rtmp', port, path: '/live/cam' }));
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'rtmp');
  });

  it('reads MJPEG over HTTP (multipart/x-mixed-replace)', { timeout: TEST_MS }, async () => {
    const port = await freeTcpPort();
    const p = pusher(StreamPusher.start({ kind: 'mjpeg-http', port }));
    await p.ready();
    const w = watch({ url: p.url, streamId: 'mjpeg' });
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'mjpeg');
  });

  it('reads live HLS over HTTP', { timeout: TEST_MS }, async () => {
    const port = await freeTcpPort();
    const p = pusher(StreamPusher.start({ kind: 'hls-http', port }));
    await p.ready();
    const w = watch({ url: p.url, streamId: 'hls' });
    await w.until('10 frames', () => w.frames.length >= 10);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'hls');
  });

  it('drops frames above fpsCap', { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort();
    pusher(StreamPusher.start({ kind: 'mpegts-udp', port }));
    const w = watch({
      url: `udp://127.0.0.1:${port}`,
      streamId: 'capped',
      fpsCap: 5,
    });
    await w.until('6 frames', () => w.frames.length >= 6);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'capped');
    // Never closer than half a 1/fpsCap slot; the 15 fps sender's frames in between were dropped.
    for (let i = 1; i < w.frames.length; i++) {
      expect(w.frames[i]!.capturedAt - w.frames[i - 1]!.capturedAt).toBeGreaterThanOrEqual(100);
    }
    const f = w.frames;
    expect((f.at(-1)!.pts - f[0]!.pts) / (f.length - 1)).toBeGreaterThan(1.5 / 15);
  });

  it('keeps one decoded frame in N inside ffmpeg, changed while it runs, and all of them again at 1', { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort();
    pusher(StreamPusher.start({ kind: 'mpegts-udp', port }));
    const keep = new KeepEvery();
    keep.set(3);
    const w = watch({ url: `udp://127.0.0.1:${port}`, streamId: 'kept', keepEvery: keep });
    await w.until('5 frames', () => w.frames.length >= 5);
    // pts are the sender's (15 fps): one frame in three is 0.2 s apart, whatever the arrival times.
    const step = (from: number, to: number): number => (w.frames[to - 1]!.pts - w.frames[from]!.pts) / (to - 1 - from);
    expect(step(0, 5)).toBeCloseTo(3 / 15, 2);
    keep.set(1);
    const at = w.frames.length;
    // Frames already in the pipe when the command is sent come out at the old step: judge the
    // last ones of a longer run.
    await w.until('20 frames after the change', () => w.frames.length >= at + 20);
    expect(step(w.frames.length - 8, w.frames.length)).toBeCloseTo(1 / 15, 2);
    keep.set(5);
    const at5 = w.frames.length;
    await w.until('12 frames after the second change', () => w.frames.length >= at5 + 12);
    expect(step(w.frames.length - 5, w.frames.length)).toBeCloseTo(5 / 15, 2);
    w.sub.unsubscribe();
    expectGoodFrames(w.frames, 'kept');
    // The frame numbers stay consecutive: what ffmpeg drops is never counted as lost.
    w.frames.forEach((f, i) => expect(f.seq).toBe(i));
  });

  it(
    'keeps a listening UDP input listening through an outage: stalled, then live again in the same ffmpeg',
    { timeout: TEST_MS },
    async () => {
      const port = await freeUdpPort();
      const p = pusher(StreamPusher.start({ kind: 'mpegts-udp', port }));
      const w = watch({ url: `udp://127.0.0.1:${port}`, streamId: 'rov', stallTimeoutMs: 1500 });
      await w.until('10 frames', () => w.frames.length >= 10);
      await p.stop();
      const mark = w.states.length;
      const after = (): StateAt[] => w.states.slice(mark);
      await w.until('stalled', () => after().some((s) => s.state === 'stalled'));
      // Frames still in ffmpeg's buffers when the sender stopped came before the stall.
      const before = after()[0]!.framesAt;
      // An outage longer than the watchdog (its length is the fault under test, not a wait on speed).
      await sleep(3000);
      p.start();
      await w.until('live again', () => after().some((s) => s.state === 'live'));
      await w.until('frames resuming', () => w.frames.length >= before + 8);
      w.sub.unsubscribe();

      // One stall report, no reconnect: the port stayed open the whole time.
      expect(after().map((s) => [s.state, s.detail])).toEqual([
        ['stalled', 'no frame for 1500 ms; still listening'],
        ['live', `udp://127.0.0.1:${port}`],
        ['stopped', 'unsubscribed'],
      ]);
      expect(w.of('connecting')).toHaveLength(1);
      expectGoodFrames(w.frames, 'rov');
      expect(w.frames[before]!.pts - w.frames[before - 1]!.pts).toBeGreaterThan(1.5);
    },
  );

  it(
    'recovers an RTP/SDP feed with a keyframe every 7 s from outages of 5 and 20 s and a sender restarted from scratch, listening throughout',
    { timeout: 150_000 },
    async () => {
      const recvPort = await freeUdpPort(true);
      const relayPort = await freeUdpPort(true);
      const relay = await RtpRelay.start(relayPort, recvPort);
      cleanups.push(() => relay.close());
      const dir = tempDir();
      const p = pusher(StreamPusher.start({ kind: 'rtp', port: relayPort, sdpFile: join(dir, 'tx.sdp'), gop: 105 }));
      const w = watch({ url: `rtp://127.0.0.1:${recvPort}`, streamId: 'rov', stallTimeoutMs: 1500 });
      cleanups.push(() => w.sub.unsubscribe());
      await w.until('first frames', () => w.frames.length >= 10, 60_000);

      const recoveries: number[] = [];
      const keyframes: number[] = [];
      /** Waits for the stall and the outage, lets packets through (`restore`), and waits for frames. */
      const outage = async (pauseMs: number, restore: () => void): Promise<void> => {
        const mark = w.states.length;
        const cutAt = Date.now();
        await w.until('stalled', () => w.states.slice(mark).some((s) => s.state === 'stalled'));
        // The outage's length is the fault under test, not a wait on speed.
        await sleep(Math.max(0, pauseMs - (Date.now() - cutAt)));
        const framesBefore = w.frames.length;
        relay.resume();
        restore();
        // At most one keyframe interval (7 s) and then some under load.
        await w.until('live again', () => w.states.slice(mark).some((s) => s.state === 'live'), 60_000);
        await w.until('frames again', () => w.frames.length > framesBefore, 60_000);
        const keyAt = relay.firstKeyframeAt;
        expect(keyAt).toBeDefined();
        const first = w.frames[framesBefore]!;
        // The fresh receiver decodes from the first keyframe that went through (at most 7 s after
        // the first returning packet).
        expect(first.capturedAt).toBeGreaterThanOrEqual(keyAt!);
        recoveries.push(first.capturedAt - keyAt!);
        keyframes.push(keyAt! - relay.firstPacketAt!);
        expect(w.states.slice(mark).map((s) => s.state)).toEqual(['stalled', 'live']);
      };

      // Tether outages: the sender's timeline goes on, its packets are lost.
      for (const pauseMs of [5000, 20_000]) {
        relay.cut();
        await outage(pauseMs, () => undefined);
      }
      // The sender itself restarts: new process, new SSRC and sequence numbers.
      await p.stop();
      await outage(5000, () => p.start());

      // One ffmpeg receiver for the whole run: never reconnecting, never retrying.
      expect(w.of('connecting')).toHaveLength(1);
      expect(w.of('retrying')).toEqual([]);
      expectGoodFrames(w.frames, 'rov');
      console.info(
        `RTP: first frame after the first keyframe (ms): ${recoveries.join(', ')}; keyframe after the first packet (ms): ${keyframes.join(', ')}`,
      );
    },
  );

  it('keeps a good stream delivering while another points at a dead port, which never busy-loops', { timeout: TEST_MS }, async () => {
    const goodPort = await freeUdpPort();
    const deadPort = await freeTcpPort();
    pusher(StreamPusher.start({ kind: 'mpegts-udp', port: goodPort }));
    const bad = watch({
      url: `rtsp://127.0.0.1:${deadPort}/x`,
      streamId: 'bad',
      backoff: { initialMs: 100, jitter: 0 },
    });
    const good = watch({
      url: `udp://127.0.0.1:${goodPort}`,
      streamId: 'good',
    });
    cleanups.push(() => bad.sub.unsubscribe());
    await good.until('20 frames', () => good.frames.length >= 20);
    await bad.until('3 retries', () => bad.of('retrying').length >= 3);
    good.sub.unsubscribe();
    bad.sub.unsubscribe();

    expectGoodFrames(good.frames, 'good');
    expect(good.of('retrying')).toEqual([]);
    expect(bad.frames).toEqual([]);
    expect(bad.of('live')).toEqual([]);
    expect(
      bad
        .of('retrying')
        .slice(0, 3)
        .map((s) => s.delayMs),
    ).toEqual([100, 200, 400]);
    expect(bad.of('retrying')[0]?.detail).toContain('Connection refused');
    // ffmpeg fails at once, yet each new connection waits out the delay announced before it.
    const retrying = bad.of('retrying');
    const connecting = bad.of('connecting');
    for (let i = 0; i < 2; i++) {
      expect(connecting[i + 1]!.at - retrying[i]!.at).toBeGreaterThanOrEqual(retrying[i]!.delayMs! - 2);
    }
  });

  it("errors with SourceError once maxRetries is exhausted, with ffmpeg's words and no password", { timeout: TEST_MS }, async () => {
    const port = await freeTcpPort();
    const w = watch({
      url: `rtsp://viewer:hunter2@127.0.0.1:${port}/x`,
      streamId: 'cam',
      maxRetries: 2,
      backoff: { initialMs: 20, jitter: 0 },
    });
    await w.until('the error', () => w.error !== undefined);
    w.sub.unsubscribe();
    expect(w.error).toBeInstanceOf(SourceError);
    const message = (w.error as SourceError).message;
    expect(message).toMatch(
      new RegExp(
        `^Stream "cam" \\(rtsp://viewer:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x\\): gave up after 2 retries; last failure: ${FAILED}\\. ffmpeg said: .*Connection refused`,
      ),
    );
    expect(message).not.toContain('hunter2');
    expect(w.names()).toBe('connecting,retrying,connecting,retrying,connecting,stopped');
    expect(w.states.at(-1)?.detail).toMatch(new RegExp(`^gave up after 2 retries; last failure: ${FAILED}\\.$`));
  });

  it('stops ffmpeg and timers on unsubscribe, once, however often it is called', { timeout: TEST_MS }, async () => {
    const port = await freeUdpPort();
    const w = watch({ url: `udp://127.0.0.1:${port}`, streamId: 'idle' });
    // ffmpeg holds the UDP port while it runs: wait until it is bound, then until it is released.
    const bindable = (): Promise<boolean> =>
      new Promise((resolve) => {
        const s = createSocket('udp4');
        s.once('error', () => resolve(false));
        s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
      });
    while (await bindable()) await sleep(50);
    w.sub.unsubscribe();
    w.sub.unsubscribe();
    while (!(await bindable())) await sleep(50);
    expect(w.names()).toBe('connecting,stopped');
  });
});
