/**
 * Turns a live source's URL into ffmpeg input arguments. Pure (no I/O), so every scheme's
 * arguments are unit-tested and listed in one place.
 *
 * | input | kind | ffmpeg input arguments (before `-i`), after the common ones |
 * |---|---|---|
 * | `rtsp://host[:port]/path` | rtsp | `-rtsp_transport tcp` (or `udp`), probe flags |
 * | `rtp://host:port` | rtp | `-protocol_whitelist file,udp,rtp -f sdp`, probe flags; input is a generated SDP (H.264, payload type 96, BlueROV's default) or the `sdp` option's text |
 * | `/path/stream.sdp` | sdp-file | as rtp, reading the given SDP file |
 * | `udp://host:port` | udp | `-f mpegts -overrun_nonfatal 1`, probe flags (MPEG-TS over UDP) |
 * | `srt://host:port?mode=...` | srt | probe flags (the container, usually MPEG-TS, is detected) |
 * | `rtmp(s)://host/app/key` | rtmp | probe flags |
 * | `http(s)://...m3u8` | hls | none (the HLS demuxer probes each segment) |
 * | `http(s)://...` MJPEG | mjpeg | `-f mpjpeg -use_wallclock_as_timestamps 1`, probe flags |
 * | `/dev/videoN` | v4l2 | `-f v4l2` |
 *
 * Common to all: `-nostats -fflags nobuffer -flags low_delay`. Probe flags: `-probesize 32
 * -analyzeduration 0` (decoding starts at the first keyframe; the decoder learns the picture size
 * from the stream itself, and the scale filter is set up on the first decoded frame).
 * The caller's `inputOptions` come last, so they override any of these.
 *
 * Receiving as a server (the sender connects to us): RTSP with `inputOptions: ['-rtsp_flags',
 * 'listen']` (the sender ANNOUNCEs/RECORDs), RTMP with `['-listen', '1']`, SRT with
 * `srt://0.0.0.0:port?mode=listener`. UDP, RTP and .sdp inputs always bind the local port.
 */
import { BadOptionError } from '../errors.js';

export type LiveKind = 'rtsp' | 'rtp' | 'sdp-file' | 'udp' | 'srt' | 'rtmp' | 'hls' | 'mjpeg' | 'v4l2';

/** URL schemes a live source reads; besides these, /dev/videoN (V4L2) and .sdp file paths. */
export const LIVE_URL_SCHEMES = ['rtsp://', 'rtp://', 'udp://', 'srt://', 'rtmp://', 'rtmps://', 'http://', 'https://'] as const;

/** How an http(s) URL is read: `auto` takes `.m3u8` as HLS and mjpeg/mjpg in the URL as MJPEG. */
export type HttpFormat = 'auto' | 'hls' | 'mjpeg';

export interface LiveUrlOptions {
  readonly url: string;
  /** RTSP only: RTP over the RTSP TCP connection (default) or over UDP. */
  readonly transport?: 'tcp' | 'udp';
  /** RTP only: SDP text describing the stream (written to a temp file by the source). */
  readonly sdp?: string;
  /** http(s) only. */
  readonly httpFormat?: HttpFormat;
  readonly inputOptions?: readonly string[];
}

export interface LiveInput {
  readonly kind: LiveKind;
  /** The `-i` argument; for `rtp` it is replaced by the path of a temp file holding `sdpText`. */
  readonly input: string;
  readonly inputOptions: readonly string[];
  /** For `rtp`: the SDP to write to a temp file and give to ffmpeg as input. */
  readonly sdpText?: string;
  /** The URL with any password replaced by `***`: use it in logs, states and errors. */
  readonly displayUrl: string;
  /**
   * We listen and the sender comes to us (UDP, RTP, .sdp, SRT listener, RTMP/RTSP in listen mode):
   * a quiet feed is a stall to report, not a reason to close the port (see live-source.ts).
   */
  readonly listening: boolean;
}

/** No progress lines on stderr (they would interleave with showinfo); no demuxer or decoder buffering. */
export const COMMON_INPUT_OPTIONS: readonly string[] = ['-nostats', '-fflags', 'nobuffer', '-flags', 'low_delay'];
/** Start decoding without analysing the stream first (see the header). */
export const PROBE_INPUT_OPTIONS: readonly string[] = ['-probesize', '32', '-analyzeduration', '0'];
export const SDP_INPUT_OPTIONS: readonly string[] = ['-protocol_whitelist', 'file,udp,rtp', '-f', 'sdp'];

const SCHEMES: Readonly<Record<string, LiveKind | 'http'>> = {
  'rtsp:': 'rtsp',
  'rtp:': 'rtp',
  'udp:': 'udp',
  'srt:': 'srt',
  'rtmp:': 'rtmp',
  'rtmps:': 'rtmp',
  'http:': 'http',
  'https:': 'http',
};

/** Picks the kind of input and builds ffmpeg's input arguments; throws BadOptionError. */
export function resolveLiveInput(options: LiveUrlOptions): LiveInput {
  const { url, transport, sdp, httpFormat } = options;
  if (typeof url !== 'string' || url.trim() === '') throw new BadOptionError('url', 'a stream URL', url);
  const kind = classify(url, httpFormat ?? 'auto');
  if (httpFormat !== undefined && kind !== 'hls' && kind !== 'mjpeg') {
    throw new BadOptionError('httpFormat', 'no httpFormat (it applies to http(s):// URLs only)', httpFormat);
  }
  const displayUrl = redactUrl(url);
  if (transport !== undefined) {
    if (transport !== 'tcp' && transport !== 'udp') throw new BadOptionError('transport', '"tcp" or "udp"', transport);
    if (kind !== 'rtsp') throw new BadOptionError('transport', 'no transport (it applies to rtsp:// URLs only)', transport);
  }
  if (sdp !== undefined) {
    if (typeof sdp !== 'string' || !/^v=0/m.test(sdp)) throw new BadOptionError('sdp', 'SDP text starting with "v=0"', sdp);
    if (kind !== 'rtp') {
      throw new BadOptionError('url', 'an rtp://host:port URL naming where the SDP stream arrives (sdp is given)', url);
    }
  }
  const extra = options.inputOptions ?? [];
  if (!Array.isArray(extra) || !extra.every((o) => typeof o === 'string')) {
    throw new BadOptionError('inputOptions', 'an array of strings', extra);
  }
  if (kind === 'udp' || kind === 'srt') hostPort(url);
  let sdpText: string | undefined;
  let input = url;
  if (kind === 'rtp') {
    const { host, port } = hostPort(url);
    if (sdp !== undefined) {
      const sdpPort = sdpVideoPort(sdp);
      if (sdpPort !== undefined && sdpPort !== port) {
        throw new BadOptionError(
          'url',
          `the port of the SDP's "m=video" line (${sdpPort}), where ffmpeg listens: make the URL rtp://${host}:${sdpPort} or change the SDP`,
          url,
        );
      }
    }
    sdpText = sdp ?? h264RtpSdp(host, port);
  }
  if (kind === 'udp') input = loopbackUdp(url);
  // The SDP demuxer binds every interface unless told its local address.
  const local = kind === 'rtp' ? loopbackAddr(hostPort(url).host) : undefined;
  const bind = local === undefined ? [] : ['-localaddr', local];
  const inputOptions = [...COMMON_INPUT_OPTIONS, ...KIND_INPUT_OPTIONS[kind](transport ?? 'tcp'), ...bind, ...extra];
  const listening = isListening(kind, url, extra);
  return { kind, input, inputOptions, displayUrl, listening, ...(sdpText === undefined ? {} : { sdpText }) };
}

/** Whether the sender connects to us (see LiveInput.listening). */
function isListening(kind: LiveKind, url: string, extra: readonly string[]): boolean {
  const flag = (name: string, value: RegExp): boolean => extra.some((o, i) => o === name && value.test(extra[i + 1] ?? ''));
  switch (kind) {
    case 'udp':
    case 'rtp':
    case 'sdp-file':
      return true;
    case 'srt':
      return /[?&]mode=listener\b/i.test(url);
    case 'rtmp':
      return flag('-listen', /^1$/);
    case 'rtsp':
      return flag('-rtsp_flags', /listen/);
    default:
      return false;
  }
}

/** The port of an SDP's first `m=video` line, if it has one. */
export function sdpVideoPort(sdp: string): number | undefined {
  const m = /^m=video\s+(\d+)/m.exec(sdp);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/**
 * ffmpeg's udp:// input binds every interface whatever the host says; `localaddr` makes it bind
 * the one named. A loopback host (127.x, localhost) without its own `localaddr` gets one, so a
 * feed meant for this machine is not open to the network.
 */
function loopbackUdp(url: string): string {
  const addr = loopbackAddr(hostPort(url).host);
  if (addr === undefined || /[?&]localaddr=/i.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}localaddr=${addr}`;
}

/** The IPv4 loopback address a host names (127.x.y.z, localhost), else undefined. */
function loopbackAddr(host: string): string | undefined {
  if (host.toLowerCase() === 'localhost') return '127.0.0.1';
  return /^127\.\d+\.\d+\.\d+$/.test(host) ? host : undefined;
}

const SDP_INPUT = [...SDP_INPUT_OPTIONS, ...PROBE_INPUT_OPTIONS];

/** ffmpeg input options per kind, between the common ones and the caller's. */
const KIND_INPUT_OPTIONS: Readonly<Record<LiveKind, (transport: 'tcp' | 'udp') => readonly string[]>> = {
  rtsp: (transport) => ['-rtsp_transport', transport, ...PROBE_INPUT_OPTIONS],
  rtp: () => SDP_INPUT,
  'sdp-file': () => SDP_INPUT,
  // A slow moment downstream must not end the stream: drop datagrams instead (we read fast anyway).
  udp: () => ['-f', 'mpegts', '-overrun_nonfatal', '1', ...PROBE_INPUT_OPTIONS],
  srt: () => PROBE_INPUT_OPTIONS,
  rtmp: () => PROBE_INPUT_OPTIONS,
  // The HLS demuxer probes each segment itself; a small outer probe gains nothing.
  hls: () => [],
  // multipart JPEGs carry no timestamps: stamp them with the arrival time.
  mjpeg: () => ['-f', 'mpjpeg', '-use_wallclock_as_timestamps', '1', ...PROBE_INPUT_OPTIONS],
  v4l2: () => ['-f', 'v4l2'],
};

function classify(url: string, httpFormat: HttpFormat): LiveKind {
  if (/^\/dev\/video\d+$/.test(url)) return 'v4l2';
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && /\.sdp$/i.test(url)) return 'sdp-file';
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1]?.toLowerCase();
  const kind = scheme === undefined ? undefined : SCHEMES[scheme];
  if (kind === undefined) {
    const expected = `a live URL (${LIVE_URL_SCHEMES.join(', ')}), a V4L2 device (/dev/videoN) or an .sdp file path`;
    throw new BadOptionError('url', expected, url);
  }
  if (httpFormat !== 'auto' && httpFormat !== 'hls' && httpFormat !== 'mjpeg') {
    throw new BadOptionError('httpFormat', '"auto", "hls" or "mjpeg"', httpFormat);
  }
  if (kind !== 'http') return kind;
  if (httpFormat !== 'auto') return httpFormat;
  const path = url.replace(/[?#].*$/, '');
  if (/\.m3u8$/i.test(path)) return 'hls';
  if (/mjpe?g/i.test(url)) return 'mjpeg';
  throw new BadOptionError('httpFormat', '"hls" or "mjpeg" (the URL says neither: no .m3u8, no "mjpeg" in it)', httpFormat);
}

function hostPort(url: string): { host: string; port: number } {
  // Not WHATWG URL: ffmpeg's forms such as udp://@:5600 are not valid there.
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d+))?/i.exec(url);
  const port = Number(m?.[2]);
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BadOptionError('url', 'a URL with a port 1-65535 (scheme://host:port)', url);
  }
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

/**
 * An SDP for H.264 over RTP with dynamic payload type 96 arriving on `port`, as a BlueROV (and
 * ffmpeg's rtp muxer) sends it. Parameter sets are expected in-band (they are, from both); for
 * anything else give the sender's own SDP through the `sdp` option or an .sdp file.
 */
export function h264RtpSdp(host: string, port: number): string {
  const family = host.includes(':') ? 'IP6' : 'IP4';
  return [
    'v=0',
    `o=- 0 0 IN ${family} ${host}`,
    's=stegostream',
    `c=IN ${family} ${host}`,
    't=0 0',
    `m=video ${port} RTP/AVP 96`,
    'a=rtpmap:96 H264/90000',
    'a=fmtp:96 packetization-mode=1',
    '',
  ].join('\n');
}

/** `rtsp://user:secret@host/` -> `rtsp://user:***@host/`; other strings unchanged. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

/** The password in `url`, if any, so it can be cut out of ffmpeg's messages too. */
export function urlSecret(url: string): string | undefined {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:([^/@]+)@/i.exec(url)?.[1];
}
