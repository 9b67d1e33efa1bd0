import { headers, type MsgHdrs } from 'nats';
import type { ImageMeta } from '../types.js';

/**
 * NATS headers of an image message (`.frames` JPEG, `.masks` PNG), the same for the NATS sink and
 * the cluster worker's results (README "NATS subjects"). Header values cannot hold line breaks.
 */
export function imageHeaders(stream: string, meta: ImageMeta, mime: string): MsgHdrs {
  const h = headers();
  h.set('stream', stream.replace(/[\r\n]/g, ' '));
  h.set('seq', String(meta.seq));
  h.set('pts', String(meta.pts));
  h.set('head-version', String(meta.headVersion));
  h.set('width', String(meta.width));
  h.set('height', String(meta.height));
  h.set('content-type', mime);
  return h;
}
