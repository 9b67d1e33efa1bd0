import { Worker } from 'node:worker_threads';
import { workerUrl } from '../internal/worker-url.js';
import { StegoError, type ErrorCode } from '../errors.js';
import type { InferenceOptions, InferenceReply, InferenceRequest, InferenceRole } from './inference-protocol.js';

type Ready = Extract<InferenceReply, { type: 'ready' }>;
/** A request without its id (the thread numbers them). */
type Call = InferenceRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type Answer = Extract<InferenceReply, { type: 'embedded' | 'labels' }>;

/**
 * One inference worker thread (inference-worker.ts) in one role: requests numbered, replies
 * matched back to them. An error reply rejects its call with the worker's error code kept
 * (ModelContractError, ...); a crashed or exited worker rejects every call, then and after.
 */
export class InferenceThread {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Answer) => void; reject: (e: Error) => void }>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly ready: Ready,
  ) {
    worker.on('message', (msg: InferenceReply) => {
      if (msg.type === 'ready') return;
      if (msg.type === 'error' && msg.id === undefined) return this.fail(rebuild(msg));
      const id = msg.id as number;
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (msg.type === 'error') p?.reject(rebuild(msg));
      else p?.resolve(msg);
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`inference worker exited with code ${code}`));
    });
  }

  /** Starts a worker in `role` and waits until its sessions are loaded (rejects with its load error). */
  static async start(role: InferenceRole, spec: string, options: InferenceOptions): Promise<InferenceThread> {
    const worker = new Worker(workerUrl(import.meta.url, 'inference-worker.js', 'backbone'));
    const ready = await new Promise<Ready>((resolve, reject) => {
      const onMsg = (msg: InferenceReply): void => {
        worker.off('message', onMsg);
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'error') reject(rebuild(msg));
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
      worker.postMessage({ type: 'init', role, spec, options } satisfies InferenceRequest);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new InferenceThread(worker, ready);
  }

  /** Sends one request; `transfer`: buffers moved (not cloned) to the worker. */
  call<T extends Answer['type']>(request: Call, transfer: ArrayBuffer[] = []): Promise<Extract<Answer, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('inference client is closed'));
    const id = this.nextId++;
    const call = new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } as InferenceRequest, transfer);
    });
    this.inFlight.add(call);
    void call.then(
      () => this.inFlight.delete(call),
      () => this.inFlight.delete(call),
    );
    return call as Promise<Extract<Answer, { type: T }>>;
  }

  /**
   * Waits for the calls in flight, then stops the worker. Terminating a worker while ONNX Runtime
   * runs in it aborts the whole process (a native exception), so never before. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.inFlight);
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

function rebuild(msg: { message: string; code?: string; details?: Record<string, unknown> }): Error {
  if (!msg.code) return new Error(msg.message);
  return new StegoError(msg.code as ErrorCode, msg.message, { details: msg.details ?? {} });
}
