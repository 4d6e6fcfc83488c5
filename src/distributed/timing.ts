/**
 * How fast a dead worker's job is noticed and how often it may be retried. BullMQ renews a job's
 * lock every lockMs/2 while its worker lives (the pool runs candidates in child processes, so the
 * worker's event loop stays free to renew); a worker killed mid-evaluation stops renewing, and
 * within lockMs + stalledIntervalMs the job is back in the queue. These bound the detection delay,
 * not the evaluation: a slow evaluation keeps its lock as long as its worker lives, and the
 * evaluation timeout (evaluator.timeout_s) is enforced by the worker's own pool.
 */
export interface BrokerTiming {
  lockMs: number;
  stalledIntervalMs: number;
  /** Workers a job may take down before it is an invalid verdict. */
  maxTries: number;
}

export const DEFAULT_TIMING: BrokerTiming = { lockMs: 30_000, stalledIntervalMs: 30_000, maxTries: 2 };
