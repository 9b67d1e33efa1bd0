/**
 * A UDP relay between an RTP sender and a receiver on 127.0.0.1 that can cut the feed (a tether
 * outage: the sender's timeline goes on, its packets are lost) and tells when the first keyframe
 * packet went through after each cut, so a test can measure recovery from the first decodable
 * frame rather than from the end of the outage.
 */
import { once } from 'node:events';
import { createSocket, type Socket } from 'node:dgram';

/** H.264 over RTP (RFC 6184): does this packet start a keyframe (SPS, or an IDR slice)? */
export function startsH264Keyframe(packet: Buffer): boolean {
  if (packet.length < 14) return false;
  const csrc = packet[0]! & 0x0f;
  const ext = (packet[0]! & 0x10) !== 0;
  let at = 12 + 4 * csrc;
  if (ext) at += 4 + 4 * packet.readUInt16BE(at + 2);
  const nal = packet[at]! & 0x1f;
  if (nal === 7 || nal === 5) return true;
  // STAP-A: the first aggregated NAL (after its 2-byte size); FU-A: the start fragment's type.
  if (nal === 24) return ((packet[at + 3] ?? 0) & 0x1f) === 7 || ((packet[at + 3] ?? 0) & 0x1f) === 5;
  if (nal === 28) return ((packet[at + 1] ?? 0) & 0x80) !== 0 && ((packet[at + 1] ?? 0) & 0x1f) === 5;
  return false;
}

export class RtpRelay {
  private socket: Socket | undefined;
  private passing = true;
  /** Arrival time of the first keyframe packet forwarded since the last `resume()` (or start). */
  firstKeyframeAt: number | undefined;
  /** Arrival time of the first packet forwarded since the last `resume()` (or start). */
  firstPacketAt: number | undefined;
  forwarded = 0;

  private constructor(
    readonly listenPort: number,
    readonly targetPort: number,
  ) {}

  /** Listens on 127.0.0.1:`listenPort` and forwards to 127.0.0.1:`targetPort`. */
  static async start(listenPort: number, targetPort: number): Promise<RtpRelay> {
    const relay = new RtpRelay(listenPort, targetPort);
    const s = createSocket('udp4');
    relay.socket = s;
    s.on('message', (msg) => {
      if (!relay.passing) return;
      relay.firstPacketAt ??= Date.now();
      if (relay.firstKeyframeAt === undefined && startsH264Keyframe(msg)) relay.firstKeyframeAt = Date.now();
      relay.forwarded++;
      s.send(msg, targetPort, '127.0.0.1');
    });
    s.bind(listenPort, '127.0.0.1');
    await once(s, 'listening');
    return relay;
  }

  /** Drops every packet from now on (the sender does not notice). */
  cut(): void {
    this.passing = false;
  }

  /** Forwards again; `firstKeyframeAt` is measured afresh. */
  resume(): void {
    this.firstKeyframeAt = undefined;
    this.firstPacketAt = undefined;
    this.passing = true;
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
