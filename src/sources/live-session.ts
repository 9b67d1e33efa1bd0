/**
 * The running side of `liveSource` (./live-source.ts, where the behaviour is documented): one
 * `LiveSession` per subscription, holding what lasts across connections (the frame counter and
 * timeline, consecutive failures, the retry timer), and one `LiveConnection` per ffmpeg run,
 * holding what lasts one run (its pts by frame index, whether it has gone live or stalled).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subscriber } from 'rxjs';
import type { Logger } from 'pino';
import type { Frame, ServiceEvent } from '../types.js';
import { SourceError } from '../errors.js';
import { runFfmpeg, type FfmpegRun } from '../internal/ffmpeg-process.js';
import { parseShowinfoPts, readRawFrames } from '../internal/raw-frame-reader.js';
import { backoffDelay, type BackoffOptions } from './live-backoff.js';
import type { LiveInput } from './live-url.js';
import { sendKeep, type KeepEvery } from './keep-every.js';

/** The source's state changes, in the shape the service publishes them. */
export type SourceStateEvent = Extract<ServiceEvent, { readonly type: 'source-state' }>;

/** A listening input whose ffmpeg died again soon waits at most this long before listening again. */
export const LISTEN_RESTART_MAX_MS = 1000;
/** pts step (s) across a reconnect or a clock jump back, when frames come faster than 1 ms. */
const MIN_PTS_STEP_S = 0.001;

/** `liveSource`'s options, checked and resolved. */
export interface LiveSettings {
  readonly streamId: string;
  readonly width: number;
  readonly height: number;
  readonly stallTimeoutMs: number;
  readonly maxRetries: number;
  readonly backoff: Readonly<BackoffOptions>;
  readonly source: LiveInput;
  /** ffmpeg's RTP demuxer drops a restarted sender's packets as "old" (its sequence numbers start
   * anew) for as long as it runs: after a stall an RTP receiver is replaced, once, at once. */
  readonly relisten: boolean;
  /** Hides the URL's password in text that may quote it. */
  readonly scrub: (text: string) => string;
  /** 0 without fpsCap. */
  readonly minIntervalMs: number;
  /** ffmpeg's output options for a connection that starts keeping one frame in `k`. */
  readonly outputOptions: (k: number) => readonly string[];
  readonly keepEvery: KeepEvery;
  readonly onState?: (e: SourceStateEvent) => void;
  readonly log: Logger;
}

export class LiveSession {
  closed = false;
  private run: FfmpegRun | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The current connection's stall watch (one at a time). */
  stallTimer: NodeJS.Timeout | undefined;
  private sdpDir: string | undefined;
  private input: string;
  /** Consecutive connections that failed; the backoff grows with it. */
  failures = 0;
  private seq = 0;
  /** Output pts and arrival time of the last decoded frame, over all connections. */
  lastPts: number | undefined;
  lastFrameAt = 0;
  /** The current connection has delivered a frame. */
  runLive = false;
  /** Listening inputs: reported `stalled` and not live again yet (ffmpeg kept running). */
  quiet = false;
  /** fpsCap: the grid time of the last emitted frame, ms. */
  private slot = Number.NEGATIVE_INFINITY;

  constructor(
    readonly s: LiveSettings,
    private readonly subscriber: Subscriber<Frame>,
  ) {
    this.input = s.source.input;
    // A new step reaches the running ffmpeg at once; a new connection starts with it.
    this.unkeep = s.keepEvery.onChange((k) => this.run !== undefined && sendKeep(this.run, k));
  }

  private readonly unkeep: () => void;

  /** Writes the SDP file if one is needed, then connects. */
  start(): void {
    const { source, streamId } = this.s;
    if (source.sdpText !== undefined) {
      try {
        this.sdpDir = mkdtempSync(join(tmpdir(), 'stegostream-sdp-'));
        this.input = join(this.sdpDir, 'stream.sdp');
        writeFileSync(this.input, source.sdpText);
      } catch (err) {
        this.shutdown('cannot write the SDP file');
        this.subscriber.error(new SourceError(streamId, source.displayUrl, `cannot write the SDP to a temp file: ${String(err)}`, err));
        return;
      }
    }
    this.connect(false);
  }

  state(s: SourceStateEvent['state'], extra: Omit<SourceStateEvent, 'type' | 'stream' | 'state'> = {}): void {
    try {
      this.s.onState?.({ type: 'source-state', stream: this.s.streamId, state: s, ...extra });
    } catch (err) {
      this.s.log.warn({ err }, 'onState callback threw; ignored');
    }
  }

  shutdown(detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.unkeep();
    clearTimeout(this.retryTimer);
    clearTimeout(this.stallTimer);
    // Once running, ffmpeg acts on SIGTERM only at its next packet (a blocked read is aborted by
    // a second signal), and runFfmpeg's SIGKILL timer dies with this process if it exits now:
    // a feed that stops at the same time would leave ffmpeg behind, holding its port. Output is a
    // pipe nobody reads any more, so SIGKILL loses nothing; only RTSP, whose camera wants a
    // TEARDOWN for its session, gets SIGTERM while frames are still flowing.
    const quiet = !this.runLive || Date.now() - this.lastFrameAt >= this.s.stallTimeoutMs / 2;
    void this.run?.stop(this.s.source.kind === 'rtsp' && !quiet ? 'SIGTERM' : 'SIGKILL');
    if (this.sdpDir !== undefined) rmSync(this.sdpDir, { recursive: true, force: true });
    this.state('stopped', { detail });
  }

  /** Ends the subscription with `err` (the source cannot go on). */
  fail(detail: string, err: unknown): void {
    this.shutdown(detail);
    this.subscriber.error(err);
  }

  /** After a stall, ffmpeg's stderr is its banner: left out of the state, kept for the error. */
  retry(reason: string, stderrTail: string, stalled: boolean): void {
    const { log, scrub, source, backoff } = this.s;
    this.failures++;
    const said = stderrTail === '' ? '' : ` ffmpeg said: ${scrub(stderrTail)}`;
    if (this.failures > this.s.maxRetries) {
      const retries = this.failures - 1;
      const gaveUp = `gave up after ${retries} ${retries === 1 ? 'retry' : 'retries'}; last failure: ${reason}.`;
      log.error({ reason, stderrTail: scrub(stderrTail) }, 'live source gave up');
      this.fail(gaveUp, new SourceError(this.s.streamId, source.displayUrl, gaveUp + said));
      return;
    }
    // A listener's port is closed while ffmpeg is down and every packet of a returning feed lost:
    // listen again at once, and only a receiver that keeps dying waits (at most a second).
    const delayMs = source.listening
      ? this.failures === 1
        ? 0
        : Math.min(LISTEN_RESTART_MAX_MS, backoffDelay(this.failures - 1, backoff))
      : backoffDelay(this.failures, backoff);
    log.warn({ attempt: this.failures, delayMs, reason, stderrTail: scrub(stderrTail) }, 'live source retrying');
    this.state('retrying', { attempt: this.failures, delayMs, detail: `${reason}.${stalled ? '' : said}` });
    this.retryTimer = setTimeout(() => this.connect(false), delayMs);
  }

  /** `again`: a stalled RTP receiver replaced at once; still stalled, so no `connecting`. */
  connect(again: boolean): void {
    this.retryTimer = undefined;
    if (this.closed) return;
    if (!again) this.state('connecting', { detail: this.s.source.displayUrl });
    this.runLive = false;
    this.quiet = again;
    const c = new LiveConnection(this, this.input);
    this.run = c.run;
    c.pump().catch((err: unknown) => {
      if (this.closed) return;
      this.fail(`failed: ${String(err)}`, err);
    });
  }

  /** Emits a decoded frame at output time `pts`, unless fpsCap drops it. */
  emit(rgb: Buffer, pts: number, now: number): void {
    this.lastPts = pts;
    this.lastFrameAt = now;
    const minIntervalMs = this.s.minIntervalMs;
    if (minIntervalMs > 0) {
      // Slots on a grid of 1/fpsCap keep the average at the cap; a quarter slot of slack
      // keeps arrival jitter from skipping a slot; a frame later than that starts a new grid.
      const slack = minIntervalMs / 4;
      if (now < this.slot + minIntervalMs - slack) return;
      this.slot = now > this.slot + minIntervalMs + slack ? now : this.slot + minIntervalMs;
    }
    const { streamId, width, height } = this.s;
    this.subscriber.next({ streamId, seq: this.seq, pts, width, height, rgb, capturedAt: now });
    this.seq++;
  }
}

/** One ffmpeg run of a session. */
class LiveConnection {
  readonly run: FfmpegRun;
  /** This receiver was stopped to be replaced by a fresh one (RTP after a stall). */
  private replaced = false;
  // Showinfo's pts by frame index (stderr and stdout race, so match by index).
  private readonly ptsByIndex = new Map<number, number>();
  private n = 0;
  private stalled = false;
  private liveSince: number | undefined;
  private lastActivity = Date.now();
  /** Added to this connection's pts to continue the output timeline. */
  private offset: number | undefined;
  private prevRaw: number | undefined;
  private prevAt = 0;
  private readonly startedAt = Date.now();
  /** The keep step this ffmpeg started with (one set before it ran is sent on its first frame). */
  private readonly startedKeep: number;

  constructor(
    private readonly session: LiveSession,
    input: string,
  ) {
    const s = session.s;
    this.startedKeep = s.keepEvery.value;
    this.run = runFfmpeg({
      input,
      inputOptions: s.source.inputOptions,
      outputOptions: s.outputOptions(this.startedKeep),
      format: 'rawvideo',
      onStderr: (line) => {
        const i = parseShowinfoIndex(line);
        const pts = i === undefined || i < this.n ? undefined : parseShowinfoPts(line);
        if (i !== undefined && pts !== undefined) this.ptsByIndex.set(i, pts);
      },
    });
    session.stallTimer = setTimeout(() => this.watch(), s.stallTimeoutMs);
  }

  private stallReason(): string {
    const ms = this.session.s.stallTimeoutMs;
    return this.liveSince === undefined ? `no frame within ${ms} ms of connecting` : `no frame for ${ms} ms`;
  }

  private watch(): void {
    const session = this.session;
    const { stallTimeoutMs, log } = session.s;
    const idle = Date.now() - this.lastActivity;
    if (idle < stallTimeoutMs) {
      session.stallTimer = setTimeout(() => this.watch(), stallTimeoutMs - idle);
      return;
    }
    if (session.s.source.listening) {
      // The sender comes to us: keep the port open and ffmpeg's decoder waiting for its next
      // keyframe however long the outage; report the stall once and look again later.
      if (!session.quiet) {
        session.quiet = true;
        log.warn({ stallTimeoutMs }, 'live source stalled; still listening');
        session.state('stalled', { detail: `${this.stallReason()}; still listening` });
        if (session.s.relisten) {
          this.replaced = true;
          session.stallTimer = undefined;
          void this.run.stop('SIGKILL');
          return;
        }
      }
      session.stallTimer = setTimeout(() => this.watch(), stallTimeoutMs);
      return;
    }
    session.stallTimer = undefined;
    this.stalled = true;
    log.warn({ stallTimeoutMs }, 'live source stalled');
    session.state('stalled', { detail: this.stallReason() });
    // Once running, ffmpeg finishes its output on SIGTERM and only aborts a blocked network
    // read on a second signal; a stalled feed has nothing to finish.
    void this.run.stop('SIGKILL');
  }

  private rawPts(now: number): number {
    let raw = this.ptsByIndex.get(this.n);
    for (const k of this.ptsByIndex.keys()) if (k <= this.n) this.ptsByIndex.delete(k);
    // showinfo's line not read yet: extrapolate by the arrival gap.
    raw ??= this.prevRaw === undefined ? 0 : this.prevRaw + (now - this.prevAt) / 1000;
    this.prevRaw = raw;
    this.prevAt = now;
    return raw;
  }

  /** Reads ffmpeg's frames until it ends, then decides what comes next. */
  async pump(): Promise<void> {
    const session = this.session;
    const stdout = this.run.stdout;
    if (!stdout) throw new Error('ffmpeg stdout missing');
    const frameBytes = session.s.width * session.s.height * 3;
    for await (const rgb of readRawFrames(stdout, frameBytes)) {
      // Drained, not left: ffmpeg blocked on a full stdout pipe would not see our signals.
      if (session.closed || this.stalled || this.replaced) continue;
      this.onFrame(rgb);
    }
    // stdout ended: ffmpeg is exiting, which is no stall.
    clearTimeout(session.stallTimer);
    session.stallTimer = undefined;
    const { error } = await this.run.done;
    if (session.closed) return;
    this.onEnded(error);
  }

  private onFrame(rgb: Buffer): void {
    const session = this.session;
    const { log, source, backoff } = session.s;
    const now = Date.now();
    this.lastActivity = now;
    if (this.liveSince === undefined || session.quiet) {
      // A listener that receives again is healthy: its next death restarts it at once.
      if (source.listening) session.failures = 0;
      // Back from a stall in the same ffmpeg: the sender may have restarted its clock, so
      // the timeline goes on by the wall-clock gap, as across a reconnect.
      if (session.quiet) this.offset = undefined;
      if (this.liveSince === undefined && session.s.keepEvery.value !== this.startedKeep) {
        sendKeep(this.run, session.s.keepEvery.value);
      }
      this.liveSince = now;
      session.runLive = true;
      session.quiet = false;
      log.info({ url: source.displayUrl }, 'live source live');
      session.state('live', { detail: source.displayUrl });
    } else if (session.failures > 0 && now - this.liveSince >= backoff.resetAfterMs) {
      session.failures = 0;
    }
    const raw = this.rawPts(now);
    this.n++;
    let pts = this.offset === undefined ? Number.NaN : raw + this.offset;
    const lastPts = session.lastPts;
    if (lastPts === undefined || !(pts > lastPts)) {
      // First frame, first after a reconnect, or the sender's clock went back: continue
      // the timeline by the wall-clock gap since the last frame.
      pts = lastPts === undefined ? 0 : lastPts + Math.max(MIN_PTS_STEP_S, (now - session.lastFrameAt) / 1000);
      this.offset = pts - raw;
    }
    session.emit(rgb, pts, now);
  }

  private onEnded(error: Error | undefined): void {
    const session = this.session;
    const { log, scrub, source, stallTimeoutMs } = session.s;
    // ffmpeg's SDP input gives up after 10 s without packets: during an outage a listener
    // that ran for a while is simply started again, still stalled (no retry, no backoff).
    // One that dies sooner goes the retry way, so a receiver that cannot start never spins.
    const outlived = source.listening && session.quiet && Date.now() - this.startedAt >= stallTimeoutMs;
    if (this.replaced || outlived) {
      log.info({ reason: this.replaced ? 'replaced at a stall' : 'ffmpeg ended during the outage' }, 'live source listening again');
      session.connect(true);
      return;
    }
    // fluent-ffmpeg: "ffmpeg exited with code 1: <stderr>"; the stderr tail is added once, below.
    const ended = this.liveSince === undefined ? 'ffmpeg ended before the first frame' : 'the stream ended';
    const exited = error === undefined ? ended : scrub(error.message.split(':')[0] ?? error.message);
    const reason = this.stalled ? this.stallReason() : exited;
    session.retry(reason, this.run.stderrTail(), this.stalled);
  }
}

/** The frame index `n` of one showinfo line; undefined for other lines. */
function parseShowinfoIndex(line: string): number | undefined {
  const m = /Parsed_showinfo[^\]]*\]\s*n:\s*(\d+)/.exec(line);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
