/**
 * Worker-thread entry: runs the OnlineLearner off the main thread, so a training round (seconds
 * of Adam steps) never stalls inference or I/O. The pipeline talks to it through LearnerClient.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { DutyCycle, machineCpuClock } from './duty-cycle.js';
import { OnlineLearner } from './online-learner.js';
import type { LearnerReply, LearnerRequest } from './learner-protocol.js';
import { OrtGemm } from './ort-gemm.js';
import { useOrtGemm } from './gemm.js';
import { ORT_GEMM_MIN_SIDE } from './ort-gemm-protocol.js';

/**
 * Nice value of this thread. A round is seconds of Adam steps; on a machine whose cores decoding
 * and inference already keep busy, it would take a whole core from them (learning on / off fell
 * to 0.78 in the bench with rounds every 60 frames). Background rounds keep to their CPU share
 * (duty-cycle.ts), which bounds how much they take; the nice value makes what they take come
 * from idle time first. On Linux the nice value is per thread (setpriority on pid 0 from a
 * worker affects that worker's thread only).
 */
const LEARNER_NICE = 10;

/** Lowers this thread's priority (`train.niced`, default on); returns the nice value it runs at. */
function nice(on: boolean): number {
  if (!on) return 0;
  try {
    setPriority(LEARNER_NICE);
    return LEARNER_NICE;
  } catch {
    // Not permitted or not supported here: the learner runs at the process's priority.
    return 0;
  }
}

const port = parentPort;
if (!port) throw new Error('learner-worker.js must run in a worker thread');

let learner: OnlineLearner | undefined;

function reply(msg: LearnerReply): void {
  port?.postMessage(msg);
}

const cpuClock = machineCpuClock();

port.on('message', (msg: LearnerRequest) => {
  try {
    switch (msg.type) {
      case 'init': {
        const niceness = nice(msg.options.train.niced ?? true);
        // Features as wide as a ViT's: the round's big products run in ONNX Runtime (ort-gemm.ts).
        // STEGOSTREAM_LEARNER_GEMM=wasm keeps them here (to compare the two).
        if (msg.options.dim >= ORT_GEMM_MIN_SIDE && process.env['STEGOSTREAM_LEARNER_GEMM'] !== 'wasm') {
          useOrtGemm(new OrtGemm(niceness));
        }
        learner = new OnlineLearner(msg.options);
        reply({ type: 'ready', state: learner.state });
        return;
      }
      case 'observe':
        learner?.observe(msg.tokens, msg.n);
        return;
      case 'round': {
        if (!learner) throw new Error('learner not initialised');
        const duty =
          msg.cpuShare !== undefined && msg.cpuShare < 1
            ? new DutyCycle(msg.cpuShare, msg.hurry, msg.adaptive ? { clock: cpuClock, cores: availableParallelism() } : undefined)
            : undefined;
        const state = learner.runRound(msg.framesSeen, msg.steps, duty ? () => duty.tick() : undefined, msg.renumber ?? false);
        const report = learner.lastRound;
        reply({
          type: 'round',
          id: msg.id,
          state,
          report: report && duty ? { ...report, idleMs: duty.idleMs, cpuShare: duty.currentShare } : report,
        });
        return;
      }
      case 'rename':
        // Checked by the client against the classes it knew; a round that merged classes since
        // may have removed this id (k 'auto'), and then the rename has nothing to name.
        if (learner && msg.classId < learner.state.k) learner.rename(msg.classId, msg.name);
        return;
      case 'pause':
        learner?.pause();
        return;
      case 'resume':
        learner?.resume();
        return;
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    reply({ type: 'error', ...('id' in msg ? { id: msg.id } : {}), message: e.message, ...(e.code ? { code: e.code } : {}) });
  }
});
