import * as os from 'node:os';
import { Worker } from 'node:worker_threads';

/** Idle workers are ended after this long: a mount indexes once, then never again. */
const IDLE_MS = 500;

export interface PoolSlot {
  worker: Worker;
  busy: boolean;
  idle?: NodeJS.Timeout;
}

/**
 * Worker threads running one script, at most one per core, handed out one job at a time.
 * Started on demand and ended when idle; an idle worker never keeps the process alive.
 */
export class WorkerPool {
  private readonly slots: PoolSlot[] = [];
  private readonly waiting: Array<(slot: PoolSlot) => void> = [];

  constructor(private readonly script: string) {}

  acquire(): Promise<PoolSlot> {
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      clearTimeout(free.idle);
      free.busy = true;
      return Promise.resolve(free);
    }
    if (this.slots.length < os.availableParallelism()) {
      const slot: PoolSlot = { worker: new Worker(this.script), busy: true };
      // An idle worker must not keep the process alive; a busy one is awaited anyway.
      slot.worker.unref();
      this.slots.push(slot);
      return Promise.resolve(slot);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The job on `slot` is over: the slot goes to a waiting job, or idles until it is ended. */
  release(slot: PoolSlot): void {
    const next = this.waiting.shift();
    if (next) return next(slot);
    slot.busy = false;
    slot.idle = setTimeout(() => {
      this.slots.splice(this.slots.indexOf(slot), 1);
      void slot.worker.terminate();
    }, IDLE_MS);
    slot.idle.unref();
  }

  /** The worker on `slot` died: it is not reused, and a job waiting for a slot gets a new worker. */
  discard(slot: PoolSlot): void {
    this.slots.splice(this.slots.indexOf(slot), 1);
    const next = this.waiting.shift();
    if (next) void this.acquire().then(next);
  }

  /**
   * Runs one job on a worker: posts `job` and resolves with the first message `isReply` accepts
   * (by default the first message); messages before it (a worker asking for bytes, progress) go
   * to `onOther` with the worker to answer on. A worker that dies fails the job and is dropped.
   */
  async run<M, R extends M = M>(
    job: unknown,
    isReply: (m: M) => m is R = (m: M): m is R => true,
    onOther: (m: M, worker: Worker) => void = () => {},
  ): Promise<R> {
    const slot = await this.acquire();
    let died = false;
    try {
      return await new Promise<R>((resolve, reject) => {
        const onError = (err: Error) => {
          cleanup();
          died = true;
          this.discard(slot);
          reject(err);
        };
        const onMessage = (m: M) => {
          if (!isReply(m)) return onOther(m, slot.worker);
          cleanup();
          resolve(m);
        };
        const cleanup = () => {
          slot.worker.off('error', onError);
          slot.worker.off('message', onMessage);
        };
        slot.worker.on('error', onError);
        slot.worker.on('message', onMessage);
        // Busy, the worker keeps the process alive; idle, it must not (see acquire).
        slot.worker.ref();
        slot.worker.postMessage(job);
      });
    } finally {
      slot.worker.unref();
      if (!died) this.release(slot);
    }
  }
}
