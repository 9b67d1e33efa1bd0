/**
 * Worker-thread entry owning ONNX Runtime sessions: the backbone (role `backbone`) or the head,
 * probe and refinement (role `segmentation`). onnxruntime-node runs a session synchronously on the
 * calling thread, so on the main thread every batch would stall ffmpeg reading, WebSocket
 * heartbeats and HTTP; here it stalls nothing but this worker. Two workers, not one, so that a
 * batch's segmentation runs while the next batch is in the backbone.
 */
import { parentPort } from 'node:worker_threads';
import { Backbone } from './backbone.js';
import { Segmenter, type SegmentationHead } from './segmenter.js';
import type { Frame } from '../types.js';
import type { InferenceReply, InferenceRequest, WireHead } from './inference-protocol.js';
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

function updateHead(h: WireHead): SegmentationHead {
  if (!head || head.version !== h.version || h.centroids) {
    if (h.centroids === undefined || h.weights === undefined) throw new Error(`head version ${h.version} was not sent`);
    head = { version: h.version, weights: h.weights, centroids: h.centroids, k: h.k };
  }
  return head;
}

async function init(msg: Extract<InferenceRequest, { type: 'init' }>): Promise<void> {
  if (msg.role === 'backbone') {
    backbone = await Backbone.load(msg.spec, msg.options);
    send({ type: 'ready', info: backbone.info });
    return;
  }
  // undefined: the default refinement; null: none (plain bilinear maps).
  const { refine } = msg.options;
  segmenter = await Segmenter.create(msg.options.segmentThreads, refine === null ? undefined : (refine ?? DEFAULT_REFINE));
  send({ type: 'ready', refines: segmenter.refine !== undefined });
}

async function embed(msg: Extract<InferenceRequest, { type: 'embed' }>): Promise<void> {
  if (!backbone) throw new Error('not the backbone thread, or not initialised');
  const { width, height, pixels } = msg;
  const bytes = width * height * 3;
  // Views of the one buffer: the frames are not copied again on this side either.
  const frames: Frame[] = Array.from({ length: pixels.length / bytes }, (_, i) => ({
    streamId: '',
    seq: i,
    pts: 0,
    width,
    height,
    rgb: Buffer.from(pixels.buffer, pixels.byteOffset + i * bytes, bytes),
    capturedAt: 0,
  }));
  const embeddings = await backbone.embed(frames);
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
  const { gridH, gridW, dim } = first;
  send({ type: 'embedded', id: msg.id, gridH, gridW, dim, tokens, cls, ...(keys ? { keys } : {}), pixels }, [
    tokens.buffer,
    cls.buffer,
    ...(keys ? [keys.buffer] : []),
    pixels.buffer as ArrayBuffer,
  ]);
}

async function segment(msg: Extract<InferenceRequest, { type: 'segment' }>): Promise<void> {
  if (!segmenter) throw new Error('not the segmentation thread, or not initialised');
  const { embedded: e, width, height } = msg;
  const B = e.tokens.length / (e.gridH * e.gridW * e.dim);
  const out = await segmenter.segmentTokens({ ...e, batch: B }, updateHead(msg.head), height, width, msg.pixels);
  // A copy of ONNX Runtime's output (its buffer is not ours to transfer), moved back.
  const labels = out.slice();
  send({ type: 'labels', id: msg.id, labels }, [labels.buffer]);
}

port.on('message', (msg: InferenceRequest) => {
  void (async () => {
    try {
      if (msg.type === 'init') await init(msg);
      else if (msg.type === 'embed') await embed(msg);
      else await segment(msg);
    } catch (err) {
      const e = err as Error;
      send({
        type: 'error',
        ...(msg.type !== 'init' ? { id: msg.id } : {}),
        message: e.message,
        ...(e instanceof StegoError ? { code: e.code, details: { ...e.details } } : {}),
      });
    }
  })();
});
