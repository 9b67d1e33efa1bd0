/**
 * Worker-thread entry owning the ONNX Runtime sessions (backbone and segmentation). onnxruntime-node
 * runs a session synchronously on the calling thread, so on the main thread every batch would
 * stall ffmpeg reading, WebSocket heartbeats and HTTP; here it stalls nothing but this worker.
 */
import { parentPort } from 'node:worker_threads';
import { Backbone } from './backbone.js';
import { Segmenter, type SegmentationHead } from './segmenter.js';
import type { Embedding, Frame } from '../types.js';
import type { InferenceReply, InferenceRequest, WireEmbedded, WireHead } from './inference-protocol.js';
import { StegoError } from '../errors.js';
import { DEFAULT_REFINE } from './refine-options.js';

const port = parentPort;
if (!port) throw new Error('inference-worker.js must run in a worker thread');

let backbone: Backbone | undefined;
let segmenter: Segmenter | undefined;
let head: (SegmentationHead & { version: number }) | undefined;

function send(msg: InferenceReply, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(msg, transfer);
}

/** Embeddings from backbone outputs computed before, in the shape `Backbone.embed` gives. */
function fromWire(frames: readonly Frame[], e: WireEmbedded): Embedding[] {
  const n = e.gridH * e.gridW;
  const C = e.dim;
  return frames.map((frame, b) => ({
    frame,
    gridH: e.gridH,
    gridW: e.gridW,
    dim: C,
    patchTokens: e.tokens.subarray(b * n * C, (b + 1) * n * C),
    clsToken: e.cls.subarray(b * C, (b + 1) * C),
    ...(e.keys ? { keys: e.keys.subarray(b * n * C, (b + 1) * n * C) } : {}),
  }));
}

function updateHead(h: WireHead): SegmentationHead {
  if (!head || head.version !== h.version || h.centroids) {
    if (h.centroids === undefined || h.weights === undefined) throw new Error(`head version ${h.version} was not sent`);
    head = { version: h.version, weights: h.weights, centroids: h.centroids, k: h.k };
  }
  return head;
}

port.on('message', (msg: InferenceRequest) => {
  void (async () => {
    try {
      if (msg.type === 'init') {
        backbone = await Backbone.load(msg.spec, msg.options);
        // undefined: the default refinement; null: none (plain bilinear maps).
        const { refine } = msg.options;
        segmenter = await Segmenter.create(msg.options.threads, refine === null ? undefined : (refine ?? DEFAULT_REFINE));
        send({ type: 'ready', info: backbone.info });
        return;
      }
      if (!backbone || !segmenter) throw new Error('inference worker not initialised');
      const frames: Frame[] = msg.frames.map((f, i) => ({
        streamId: '',
        seq: i,
        pts: 0,
        width: f.width,
        height: f.height,
        rgb: Buffer.from(f.rgb.buffer, f.rgb.byteOffset, f.rgb.byteLength),
        capturedAt: 0,
      }));
      const t0 = performance.now();
      const embeddings = msg.embedded ? fromWire(frames, msg.embedded) : await backbone.embed(frames);
      const t1 = performance.now();
      let labels: Uint8Array | undefined;
      if (msg.head && frames[0]) {
        const maps = await segmenter.segment(
          embeddings,
          updateHead(msg.head),
          frames[0].height,
          frames[0].width,
          msg.frames.map((f) => f.rgb),
        );
        labels = new Uint8Array(maps.reduce((a, m) => a + m.length, 0));
        let off = 0;
        for (const m of maps) {
          labels.set(m, off);
          off += m.length;
        }
      }
      const t2 = performance.now();
      const first = embeddings[0];
      if (!first) throw new Error('empty batch');
      const B = embeddings.length;
      const n = first.gridH * first.gridW;
      // One contiguous copy per output, transferred (not cloned) back.
      const tokens = new Float32Array(B * n * first.dim);
      const cls = new Float32Array(B * first.dim);
      const keys = first.keys ? new Float32Array(B * n * first.dim) : undefined;
      embeddings.forEach((e, i) => {
        tokens.set(e.patchTokens, i * n * e.dim);
        cls.set(e.clsToken, i * e.dim);
        if (keys && e.keys) keys.set(e.keys, i * n * e.dim);
      });
      const transfer = [tokens.buffer, cls.buffer, ...(keys ? [keys.buffer] : []), ...(labels ? [labels.buffer as ArrayBuffer] : [])];
      send(
        {
          type: 'result',
          id: msg.id,
          gridH: first.gridH,
          gridW: first.gridW,
          dim: first.dim,
          tokens,
          cls,
          ...(keys ? { keys } : {}),
          ...(labels ? { labels } : {}),
          backboneMs: t1 - t0,
          segmentMs: t2 - t1,
        },
        transfer,
      );
    } catch (err) {
      const e = err as Error;
      send({
        type: 'error',
        ...(msg.type === 'infer' ? { id: msg.id } : {}),
        message: e.message,
        ...(e instanceof StegoError ? { code: e.code, details: { ...e.details } } : {}),
      });
    }
  })();
});
