/**
 * Worker-thread entry of ort-gemm.ts: runs the learner's big matrix products as ONNX Runtime
 * `Gemm` nodes (MLAS: 4-10x the WebAssembly kernel at ViT widths, on one core), and the STEGO
 * head's whole forward and backward passes as two small graphs, for a learner thread that waits
 * for each one synchronously. Operands and results travel through one SharedArrayBuffer; the
 * state cell says when a job is done. A forward pass's inputs and hidden activations stay here
 * for its backward pass, so the step's biggest arrays cross threads once.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { DT, OnnxGraph } from '../internal/onnx-graph.js';
import {
  GEMM_STATE,
  HEAD_KEPT_PASSES,
  type GemmJob,
  type GemmVariant,
  type HeadBackwardJob,
  type HeadForwardJob,
  type OrtJob,
} from './ort-gemm-protocol.js';

const port = parentPort;
if (!port) throw new Error('ort-gemm-worker.js must run in a worker thread');

const { control, nice } = workerData as { control: SharedArrayBuffer; nice: number };
const state = new Int32Array(control);

try {
  // The learner thread runs at this nice value; the products it hands over here should too.
  setPriority(nice);
} catch {
  // Not permitted here: the products run at the process's priority.
}

/** out = op(A)·op(B) + C as one Gemm node; every dimension dynamic. */
function gemmModel(variant: GemmVariant): Uint8Array {
  const g = new OnnxGraph(`gemm_${variant}`);
  const a = g.input('a', DT.FLOAT, ['ar', 'ac']);
  const b = g.input('b', DT.FLOAT, ['br', 'bc']);
  const c = g.input('c', DT.FLOAT, ['n', 'm']);
  g.op1(
    'Gemm',
    [a, b, c],
    { alpha: { float: 1 }, beta: { float: 1 }, transA: variant === 'tn' ? 1 : 0, transB: variant === 'nt' ? 1 : 0 },
    'y',
  );
  g.output('y', DT.FLOAT, ['n', 'm']);
  return g.toBytes({});
}

/** code = x·linW + linB + relu(x·mlp1W + mlp1B)·mlp2W + mlp2B; also relu(hidden) for the backward pass. */
function headForwardModel(): Uint8Array {
  const g = new OnnxGraph('head_forward');
  const x = g.input('x', DT.FLOAT, ['n', 'C']);
  const [w1, b1, wl, bl, w2, b2] = (['mlp1W', 'mlp1B', 'linW', 'linB', 'mlp2W', 'mlp2B'] as const).map((name) =>
    g.input(name, DT.FLOAT, name.endsWith('B') ? [name === 'mlp1B' ? 'C' : 'D'] : ['C', name === 'mlp1W' ? 'C' : 'D']),
  ) as [string, string, string, string, string, string];
  const relu = g.op1('Relu', [g.op1('Gemm', [x, w1, b1])], {}, 'relu');
  const lin = g.op1('Gemm', [x, wl, bl]);
  g.op1('Add', [lin, g.op1('Gemm', [relu, w2, b2])], {}, 'code');
  g.output('code', DT.FLOAT, ['n', 'D']);
  g.output('relu', DT.FLOAT, ['n', 'C']);
  return g.toBytes({});
}

/** The head's gradients from dL/dcode, x and relu(hidden) (stego-head.ts headBackward, as a graph). */
function headBackwardModel(): Uint8Array {
  const g = new OnnxGraph('head_backward');
  const x = g.input('x', DT.FLOAT, ['n', 'C']);
  const relu = g.input('relu', DT.FLOAT, ['n', 'C']);
  const dCode = g.input('dCode', DT.FLOAT, ['n', 'D']);
  const w2 = g.input('mlp2W', DT.FLOAT, ['C', 'D']);
  const rows = g.constI64([0]);
  g.op1('Gemm', [x, dCode], { transA: 1 }, 'gLinW');
  g.op1('Gemm', [relu, dCode], { transA: 1 }, 'gMlp2W');
  g.op1('ReduceSum', [dCode, rows], { keepdims: 0 }, 'gCodeB');
  // dHidden = (dCode·mlp2Wᵀ) ⊙ [hidden > 0]; hidden > 0 exactly where relu(hidden) > 0.
  const dRelu = g.op1('Gemm', [dCode, w2], { transB: 1 });
  const zero = g.constF([0], []);
  const dHidden = g.op1('Where', [g.op1('Greater', [relu, zero]), dRelu, zero]);
  g.op1('ReduceSum', [dHidden, rows], { keepdims: 0 }, 'gMlp1B');
  g.op1('Gemm', [x, dHidden], { transA: 1 }, 'gMlp1W');
  for (const [name, dims] of [
    ['gLinW', ['C', 'D']],
    ['gMlp2W', ['C', 'D']],
    ['gCodeB', ['D']],
    ['gMlp1B', ['C']],
    ['gMlp1W', ['C', 'C']],
  ] as const) {
    g.output(name, DT.FLOAT, dims);
  }
  return g.toBytes({});
}

type Sessions = Record<GemmVariant, ort.InferenceSession> & { forward: ort.InferenceSession; backward: ort.InferenceSession };
let ready: Sessions | undefined;
/** Forward passes kept for their backward pass, oldest first. */
const kept = new Map<number, { x: ort.Tensor; relu: ort.Tensor }>();

async function createSessions(): Promise<Sessions> {
  // One intra-op thread: a background round keeps to its CPU share by pausing its thread
  // between steps (duty-cycle.ts), which only bounds its use if each step uses one core. (Two
  // threads for rounds that run flat out measured no faster: the step's JS part dominates then.)
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  const [nn, tn, nt, forward, backward] = await Promise.all(
    [...(['nn', 'tn', 'nt'] as const).map(gemmModel), headForwardModel(), headBackwardModel()].map((m) =>
      ort.InferenceSession.create(m, options),
    ),
  );
  return { nn: nn!, tn: tn!, nt: nt!, forward: forward!, backward: backward! };
}

function sessionsReady(): Sessions {
  if (!ready) throw new Error('ONNX Runtime sessions are not ready');
  return ready;
}

async function start(): Promise<void> {
  ready = await createSessions();
  Atomics.store(state, 0, GEMM_STATE.idle);
  Atomics.notify(state, 0);
}

/** Copies `len` values out of shared memory at `offset` into a tensor (the binding takes no shared arrays). */
function tensorAt(f: Float32Array, offset: number, dims: number[]): ort.Tensor {
  const len = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float32', f.slice(offset, offset + len), dims);
}

async function forward(job: HeadForwardJob): Promise<number> {
  const sessions = sessionsReady();
  const { n, C, D } = job;
  const f = new Float32Array(job.data);
  const feeds: Record<string, ort.Tensor> = {};
  let o = 0;
  for (const [name, dims] of [
    ['x', [n, C]],
    ['mlp1W', [C, C]],
    ['mlp1B', [C]],
    ['linW', [C, D]],
    ['linB', [D]],
    ['mlp2W', [C, D]],
    ['mlp2B', [D]],
  ] as const) {
    feeds[name] = tensorAt(f, o, [...dims]);
    o += dims.reduce((a, b) => a * b, 1);
  }
  const out = await sessions.forward.run(feeds);
  f.set((out['code'] as ort.Tensor).data as Float32Array, 0);
  if (job.keep) {
    kept.set(job.id, { x: feeds['x'] as ort.Tensor, relu: out['relu'] as ort.Tensor });
    // A forward pass nobody took back (a loss evaluated without gradients) is dropped eventually.
    for (const id of kept.keys()) {
      if (kept.size <= HEAD_KEPT_PASSES) break;
      kept.delete(id);
    }
  }
  return GEMM_STATE.done;
}

async function backward(job: HeadBackwardJob): Promise<number> {
  const sessions = sessionsReady();
  const pass = kept.get(job.id);
  if (!pass) return GEMM_STATE.missing;
  kept.delete(job.id);
  const { n, C, D } = job;
  const f = new Float32Array(job.data);
  const out = await sessions.backward.run({
    x: pass.x,
    relu: pass.relu,
    dCode: tensorAt(f, 0, [n, D]),
    mlp2W: tensorAt(f, n * D, [C, D]),
  });
  let o = 0;
  for (const name of ['gLinW', 'gMlp2W', 'gCodeB', 'gMlp1B', 'gMlp1W']) {
    const data = (out[name] as ort.Tensor).data as Float32Array;
    f.set(data, o);
    o += data.length;
  }
  return GEMM_STATE.done;
}

async function product(job: GemmJob): Promise<number> {
  const sessions = sessionsReady();
  const { variant, n, k, m, data } = job;
  const [ar, ac] = variant === 'tn' ? [k, n] : [n, k];
  const [br, bc] = variant === 'nt' ? [m, k] : [k, m];
  const f = new Float32Array(data);
  // Copies out of shared memory: ONNX Runtime's Node binding takes ordinary typed arrays.
  const a = f.slice(0, ar * ac);
  const b = f.slice(ar * ac, ar * ac + br * bc);
  const outOffset = ar * ac + br * bc;
  const c = f.slice(outOffset, outOffset + n * m);
  const feeds = {
    a: new ort.Tensor('float32', a, [ar, ac]),
    b: new ort.Tensor('float32', b, [br, bc]),
    c: new ort.Tensor('float32', c, [n, m]),
  };
  const out = await sessions[variant].run(feeds);
  f.set((out['y'] as ort.Tensor).data as Float32Array, outOffset);
  return GEMM_STATE.done;
}

function run(job: OrtJob): Promise<number> {
  if (job.kind === 'forward') return forward(job);
  if (job.kind === 'backward') return backward(job);
  return product(job);
}

port.on('message', (job: OrtJob) => {
  run(job).then(
    (done) => {
      Atomics.store(state, 0, done);
      Atomics.notify(state, 0);
    },
    (err: unknown) => {
      port.postMessage({ type: 'error', message: (err as Error).message });
      Atomics.store(state, 0, GEMM_STATE.failed);
      Atomics.notify(state, 0);
    },
  );
});

start().catch((err: unknown) => {
  port.postMessage({ type: 'error', message: (err as Error).message });
  Atomics.store(state, 0, GEMM_STATE.failed);
  Atomics.notify(state, 0);
});
