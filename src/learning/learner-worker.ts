/**
 * Worker-thread entry: runs the OnlineLearner off the main thread, so a training round (seconds
 * of Adam steps) never stalls inference or I/O. The pipeline talks to it through LearnerClient.
 */
import { parentPort } from 'node:worker_threads';
import { OnlineLearner } from './online-learner.js';
import type { LearnerReply, LearnerRequest } from './learner-protocol.js';

const port = parentPort;
if (!port) throw new Error('learner-worker.js must run in a worker thread');

let learner: OnlineLearner | undefined;

function reply(msg: LearnerReply): void {
  port?.postMessage(msg);
}

port.on('message', (msg: LearnerRequest) => {
  try {
    switch (msg.type) {
      case 'init':
        learner = new OnlineLearner(msg.options);
        reply({ type: 'ready', state: learner.state });
        return;
      case 'observe':
        learner?.observe(msg.tokens, msg.n);
        return;
      case 'round': {
        if (!learner) throw new Error('learner not initialised');
        const state = learner.runRound(msg.framesSeen, msg.steps);
        reply({ type: 'round', id: msg.id, state, report: learner.lastRound });
        return;
      }
      case 'rename':
        learner?.rename(msg.classId, msg.name);
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
