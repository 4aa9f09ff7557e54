import * as fs from 'node:fs';
import { isMainThread, parentPort } from 'node:worker_threads';
import { WorkerPool } from '../io/worker-pool';
import { LocatedError } from '../errors';
import type { ScanSource } from '../io/byte-source';
import type { Warning } from '../warnings';
import { scanTar, type TarScan } from './scan';
import { fromMovable, toMovable, type MovableTarIndex } from './tar-index-codec';

/*
 * Scanning a plain tar that sits in a local file, on a worker thread: the scan is CPU work (a
 * header decoded per member), so the layers of an image scan side by side on as many cores as
 * there are instead of one after another. The worker reads through the descriptor the main
 * thread already holds (threads share it), so it reads exactly the file that was opened and
 * checked, never a path that could have changed since. The index comes back as its own column
 * buffers, moved without copying, and the warnings and errors as they were, so a
 * scan in a worker is indistinguishable from one on the main thread.
 */

interface Job {
  fd: number;
  /** For messages only: the file is read through `fd`. */
  path: string;
  start: number;
  size: number;
  what: string;
}

type Reply =
  | { index: MovableTarIndex; warnings: string[]; endOffset: number; issues?: Warning[]; truncation?: string }
  | { error: { message: string; where?: string; detail?: string } };

/** Forward reads of `size` bytes at `start` of the descriptor, as FileSource.readSync does them. */
function rangeSource(job: Job): ScanSource {
  const readSync = (buf: Buffer, offset: number, length: number, position: number): number => {
    const want = Math.max(0, Math.min(length, job.size - position));
    let done = 0;
    while (done < want) {
      const n = fs.readSync(job.fd, buf, offset + done, want - done, job.start + position + done);
      if (n === 0) throw new Error(`${job.path}: unexpected end of file at byte ${job.start + position + done} (file changed?)`);
      done += n;
    }
    return done;
  };
  return { size: job.size, readSync, read: async (buf, offset, length, position) => readSync(buf, offset, length, position) };
}

async function runJob(job: Job): Promise<{ reply: Reply; transfer: ArrayBuffer[] }> {
  try {
    const scan = await scanTar(rangeSource(job), job.what, { file: { fd: job.fd, start: job.start, size: job.size } });
    const { movable, transfer } = toMovable(scan.index);
    const reply: Reply = { index: movable, warnings: scan.warnings, endOffset: scan.endOffset, issues: scan.issues, truncation: scan.truncation };
    return { reply, transfer };
  } catch (err) {
    const e = err as Error;
    const located = err instanceof LocatedError ? { where: err.where, detail: err.detail } : {};
    return { reply: { error: { message: e.message, ...located } }, transfer: [] };
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (job: Job) => {
    void runJob(job).then(({ reply, transfer }) => port.postMessage(reply, transfer));
  });
}

const pool = new WorkerPool(__filename);

/**
 * scanTar of `size` bytes at `start` of the open file `fd`, on a worker thread. `what` names the
 * tar in warnings and errors, exactly as scanTar would.
 */
export async function scanTarInWorker(file: { fd: number; path: string }, start: number, size: number, what: string): Promise<TarScan> {
  const reply = await pool.run<Reply>({ fd: file.fd, path: file.path, start, size, what } satisfies Job);
  if ('error' in reply) {
    const e = reply.error;
    throw e.where !== undefined && e.detail !== undefined ? new LocatedError(e.where, e.detail) : new Error(e.message);
  }
  const index = fromMovable(reply.index);
  return { index, warnings: reply.warnings, endOffset: reply.endOffset, ...(reply.issues && { issues: reply.issues }), ...(reply.truncation !== undefined && { truncation: reply.truncation }) };
}
