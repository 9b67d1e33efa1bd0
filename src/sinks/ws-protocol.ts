/**
 * The WebSocket protocol of `/ws` (DESIGN.md "Contracts"): client message parsing, server message
 * types, and the binary image framing. Shared by the hub, the tests and (re-implemented in plain
 * JS) the viewer page.
 *
 * Binary image message, one per WebSocket binary message:
 *
 *   offset 0      uint32 big-endian  n = byte length of the JSON header
 *   offset 4      n bytes            UTF-8 JSON ImageHeader {channel, stream, seq, pts, headVersion, width, height, mime}
 *   offset 4 + n  the rest           the image bytes (JPEG for `frames` and `raw`, PNG for `masks`)
 */
import { z } from 'zod';
import type { ServiceEvent } from './sink.js';
import type { ControlReply } from './control.js';
import type { ClassInfo, FrameStats, WindowSummary } from '../types.js';

export const CHANNELS = ['stats', 'frames', 'masks', 'raw', 'classes', 'events', 'summary'] as const;
export type Channel = (typeof CHANNELS)[number];
/** `frames`: overlay JPEG; `masks`: label-map PNG; `raw`: the picture without overlay, JPEG. */
export type ImageChannel = 'frames' | 'masks' | 'raw';

/** Subscribing to this stream name means every stream, including ones that appear later. */
export const ALL_STREAMS = '*';

/**
 * Channels a `subscribe` without `channels` gets (masks are opt-in: the pipeline encodes them only
 * on demand; summaries are opt-in: a client that wants them usually wants nothing else).
 */
export const DEFAULT_CHANNELS: readonly Channel[] = ['stats', 'frames', 'classes', 'events'];

/** Wire error codes of `{"type":"error"}` replies, besides the control codes (`E_CONTROL`, `E_INTERNAL`). */
export type WsErrorCode = 'E_BAD_JSON' | 'E_BAD_MESSAGE' | 'E_UNKNOWN_TYPE';

export interface ImageHeader {
  readonly channel: ImageChannel;
  readonly stream: string;
  readonly seq: number;
  readonly pts: number;
  readonly headVersion: number;
  readonly width: number;
  readonly height: number;
  readonly mime: 'image/jpeg' | 'image/png';
}

// ---- client -> server ----------------------------------------------------------------------

const subscribeSchema = z.strictObject({
  type: z.literal('subscribe'),
  id: z.union([z.string().max(128), z.number()]).optional(),
  streams: z.array(z.string().min(1).max(256)).max(1024).default([ALL_STREAMS]),
  channels: z
    .array(z.enum(CHANNELS))
    .max(CHANNELS.length * 2)
    .default([...DEFAULT_CHANNELS]),
});

const controlSchema = z.looseObject({
  type: z.literal('control'),
  /** Echoed in the reply so a client can match replies to requests. */
  id: z.union([z.string().max(128), z.number()]).optional(),
  verb: z.string().max(64),
});

/** The summaries the service keeps (the last hour), for a chart that starts with the past. */
const historySchema = z.strictObject({
  type: z.literal('history'),
  id: z.union([z.string().max(128), z.number()]).optional(),
  stream: z.string().min(1).max(256),
  window: z.enum(['1s', '10s', '60s']).default('1s'),
  /** How far back, seconds (at most the hour kept). */
  seconds: z.number().int().min(1).max(3600).default(3600),
});

export type SubscribeMessage = z.infer<typeof subscribeSchema>;
export type HistoryMessage = z.infer<typeof historySchema>;
export type ControlMessage = z.infer<typeof controlSchema>;
export type ClientMessage = SubscribeMessage | ControlMessage | HistoryMessage | { readonly type: 'ping' };

export type ParseResult =
  | { readonly ok: true; readonly message: ClientMessage }
  | { readonly ok: false; readonly code: WsErrorCode; readonly message: string; readonly id?: string | number };

/** Parses one text message from a client; never throws. */
export function parseClientMessage(text: string): ParseResult {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { ok: false, code: 'E_BAD_JSON', message: `Message is not valid JSON: ${(err as Error).message}` };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, code: 'E_BAD_MESSAGE', message: `Expected a JSON object with a "type" field but received ${JSON.stringify(data)}` };
  }
  const type = (data as { type?: unknown }).type;
  const rawId = (data as { id?: unknown }).id;
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? { id: rawId } : {};
  const schema =
    type === 'subscribe'
      ? subscribeSchema
      : type === 'control'
        ? controlSchema
        : type === 'history'
          ? historySchema
          : type === 'ping'
            ? undefined
            : null;
  if (schema === null) {
    return {
      ok: false,
      code: 'E_UNKNOWN_TYPE',
      message: `Unknown message type ${JSON.stringify(type)}. Expected "subscribe", "control", "history" or "ping".`,
      ...id,
    };
  }
  if (schema === undefined) return { ok: true, message: { type: 'ping' } };
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, message: parsed.data };
  const problems = parsed.error.issues.map((i) => `${formatPath(String(type), i.path)}: ${i.message}`);
  return { ok: false, code: 'E_BAD_MESSAGE', message: problems.join('; '), ...id };
}

function formatPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : `${acc}.${String(k)}`), root);
}

// ---- server -> client (text) ---------------------------------------------------------------

export type ServerMessage =
  | { readonly type: 'hello'; readonly protocol: 1; readonly streams: readonly string[]; readonly channels: readonly Channel[] }
  | { readonly type: 'subscribed'; readonly streams: readonly string[]; readonly channels: readonly Channel[] }
  | ({ readonly type: 'stats' } & FrameStats)
  | ({ readonly type: 'summary' } & WindowSummary)
  | {
      readonly type: 'history';
      readonly id?: string | number;
      readonly stream: string;
      readonly window: WindowSummary['window'];
      /** Oldest first. */
      readonly summaries: readonly WindowSummary[];
    }
  | { readonly type: 'classes'; readonly stream: string; readonly headVersion: number; readonly classes: readonly ClassInfo[] }
  | { readonly type: 'event'; readonly event: ServiceEvent }
  | ({ readonly type: 'control-result'; readonly id?: string | number } & Extract<ControlReply, { ok: true }>)
  | { readonly type: 'error'; readonly code: string; readonly message: string; readonly id?: string | number }
  | { readonly type: 'pong' };

// ---- binary framing ------------------------------------------------------------------------

/** Builds one binary image message (see the module comment for the layout). */
export function encodeImageMessage(header: ImageHeader, bytes: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length + bytes.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  out.set(bytes, 4 + json.length);
  return out;
}

/** Splits a binary image message; throws RangeError when the header length does not fit. */
export function decodeImageMessage(message: Uint8Array): { header: ImageHeader; bytes: Buffer } {
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (buf.length < 4) throw new RangeError(`Image message is ${buf.length} bytes, shorter than its 4-byte header length`);
  const n = buf.readUInt32BE(0);
  if (4 + n > buf.length) throw new RangeError(`Image message header length ${n} exceeds the message (${buf.length} bytes)`);
  const header = JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as ImageHeader;
  return { header, bytes: buf.subarray(4 + n) };
}
