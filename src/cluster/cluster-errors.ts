/** Failures of the cluster roles (codes in ../errors.ts). */
import { StegoError } from '../errors.js';

/** Another trainer holds the lease and renews it. */
export class TrainerLeaseHeldError extends StegoError {
  constructor(holder: string, host: string, pid: number, since: number) {
    super(
      'E_CLUSTER',
      `Another trainer ("${holder}", pid ${pid} on ${host}, since ${new Date(since).toISOString()}) holds the trainer lease and is alive: only one trainer may write heads. Stop it first, or run this one with --standby to take over when it stops.`,
      { details: { holder, host, pid, since } },
    );
  }
}

/** This trainer's lease was taken over (it was paused longer than the TTL, or partitioned). */
export class TrainerLeaseLostError extends StegoError {
  constructor(newHolder: string, cause?: unknown) {
    super(
      'E_CLUSTER',
      `This trainer lost its lease (now held by "${newHolder}"): it stopped writing heads. It was cut off or paused for longer than the lease TTL; restart it with --standby to wait for the lease again.`,
      { cause, details: { newHolder } },
    );
  }
}

/** Nothing came back from the cluster for too long (no workers running?). */
export class ClusterStalledError extends StegoError {
  constructor(waitedMs: number, missing: string) {
    super(
      'E_CLUSTER',
      `No results for ${Math.round(waitedMs / 1000)} s while waiting for ${missing}: are workers and a trainer running on this NATS server and prefix? (stegostream worker --nats URL; stegostream trainer --nats URL)`,
      { details: { waitedMs, missing } },
    );
  }
}

/** `process --cluster` finished but some results are not in its outputs (never came back, or an output failed). */
export class ClusterIncompleteError extends StegoError {
  constructor(notWritten: number, frames: number, reasons: readonly string[]) {
    super(
      'E_CLUSTER',
      `${notWritten} result(s) of this run were not written (${frames} frame(s) were): ${reasons.join('; ') || 'they never came back from the cluster'}.`,
      { details: { notWritten, frames, reasons } },
    );
  }
}
