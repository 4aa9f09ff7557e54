import * as fs from 'node:fs';
import { isMainThread, parentPort, type Worker } from 'node:worker_threads';
import { WorkerPool } from '../io/worker-pool';
import { LocatedError } from '../errors';
import type { ZstdSpillOptions } from '../compress/types';
import type { ByteSource } from '../io/byte-source';
import { fromMovable, toMovable, type MovableTarIndex } from '../tar/tar-index-codec';
import type { Warning } from '../warnings';
import { codecs, compressedPass, type CompressedPassResult } from './compressed-pass';

/*
 * The forward pass over a compressed layer (inflate with checkpoints or zstd frames, tar scan,
 * digest: compressed-pass.ts) on a worker thread, so that the layers of an image pass side by
 * side on as many cores as there are, and the indexer's thread keeps only the cheap part: the
 * network, for a registry blob. The pass is seconds of CPU per layer, so a worker's start (a Node
 * environment, a cold JIT) is small beside it, unlike for a plain tar's header scan.
 *
 * Where the stored bytes come from:
 *  - a local file (a layer in an archive or layout): the worker reads through the descriptor the
 *    indexer's thread holds, as scan-workers.ts does; the file's stamp is checked once the pass
 *    is over, so a file changed meanwhile fails as a read of it would;
 *  - anything else (a registry blob): the indexer's thread reads it, in the order the pass asks,
 *    and moves each chunk to the worker (no copy); the worker asks for the next chunks before it
 *    needs them, so the fetch of one overlaps the inflate of the one before.
 * What comes back is what a pass here gives: the tar index as its own column buffers (moved, not
 * copied) and the seek index in its on-disk encoding, warnings and issues as they were,
 * progress as it goes, and a failure as the same one-line error (a failure of the source itself
 * is rethrown as the very error object the source threw).
 */

interface Job {
  kind: 'gzip' | 'zstd';
  size: number;
  what: string;
  hash: boolean;
  spill?: ZstdSpillOptions;
  /** Read the stored bytes through this descriptor; absent: ask for them (ReadRequest). */
  file?: { fd: number; path: string; start: number };
}

/** Worker -> indexer thread. */
type FromWorker =
  | { t: 'read'; seq: number; position: number; length: number }
  | { t: 'progress'; done: number }
  | { t: 'done'; index: MovableTarIndex; seek: Uint8Array; warnings: string[]; endOffset: number; issues?: Warning[]; truncation?: string; digest?: string }
  | { t: 'error'; message: string; where?: string; detail?: string; sourceError?: boolean };

/** Indexer thread -> worker. */
type ToWorker = { t: 'job'; job: Job } | { t: 'data'; seq: number; bytes?: ArrayBuffer; n?: number; error?: string };

// ---- the worker's side -----------------------------------------------------------------------

/** Chunks asked for ahead of the pass's reads (each is one read of the pass, about 1 MiB). */
const READ_AHEAD = 3;

/**
 * Numbers the chunk requests of every job of this worker: a prefetched chunk may still arrive
 * after its job ended, and must not be taken for one of the next job's.
 */
let lastSeq = 0;

/** A source error that crossed from the indexer's thread: the original is rethrown there. */
class SourceError extends Error {}

/** The stored bytes, asked of the indexer's thread chunk by chunk, sequential reads prefetched. */
class RemoteSource implements ByteSource {
  private readonly waiting = new Map<number, (m: Extract<ToWorker, { t: 'data' }>) => void>();
  private readonly ahead = new Map<string, Promise<Buffer>>();

  constructor(
    readonly size: number,
    private readonly port: NonNullable<typeof parentPort>,
  ) {}

  onData(m: Extract<ToWorker, { t: 'data' }>): void {
    const w = this.waiting.get(m.seq);
    this.waiting.delete(m.seq);
    w?.(m);
  }

  private ask(position: number, length: number): Promise<Buffer> {
    const seq = ++lastSeq;
    const p = new Promise<Buffer>((resolve, reject) => {
      this.waiting.set(seq, (m) => (m.error !== undefined ? reject(new SourceError(m.error)) : resolve(Buffer.from(m.bytes!, 0, m.n!))));
    });
    p.catch(() => undefined);
    this.port.postMessage({ t: 'read', seq, position, length } satisfies FromWorker);
    return p;
  }

  private take(position: number, length: number): Promise<Buffer> {
    const key = `${position}:${length}`;
    const p = this.ahead.get(key) ?? this.ask(position, length);
    this.ahead.delete(key);
    return p;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.size - position));
    if (want === 0) return 0;
    // Reads a stale prefetch would no longer match are simply never taken (their chunks dropped).
    const got = this.take(position, want);
    for (let k = 1, at = position + want; k <= READ_AHEAD && at < this.size; k++, at += want) {
      const n = Math.min(want, this.size - at);
      const key = `${at}:${n}`;
      if (!this.ahead.has(key)) this.ahead.set(key, this.ask(at, n));
    }
    for (const key of this.ahead.keys()) if (Number(key.split(':')[0]) < position) this.ahead.delete(key);
    const bytes = await got;
    bytes.copy(buf, offset);
    return bytes.length;
  }
}

/** Forward reads of the descriptor, as FileSource.readSync does them (this thread does nothing else). */
function fileSource(job: Job, file: NonNullable<Job['file']>): ByteSource {
  const readSync = (buf: Buffer, offset: number, length: number, position: number): number => {
    const want = Math.max(0, Math.min(length, job.size - position));
    let done = 0;
    while (done < want) {
      const n = fs.readSync(file.fd, buf, offset + done, want - done, file.start + position + done);
      if (n === 0) throw new Error(`${file.path}: unexpected end of file at byte ${file.start + position + done} (file changed?)`);
      done += n;
    }
    return done;
  };
  return { size: job.size, read: async (buf, offset, length, position) => readSync(buf, offset, length, position) };
}

/** A buffer of its own, whole, so that it can be moved rather than copied. */
const own = (b: Uint8Array): Uint8Array => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b));

async function runJob(job: Job, port: NonNullable<typeof parentPort>, remote: RemoteSource | undefined): Promise<void> {
  try {
    const src = job.file ? fileSource(job, job.file) : remote!;
    const r = await compressedPass(src, job.kind, job.what, {
      hash: job.hash,
      spill: job.spill,
      onProgress: (done) => port.postMessage({ t: 'progress', done } satisfies FromWorker),
    });
    const { movable: index, transfer } = toMovable(r.scan.index);
    const seek = own(codecs().encodeSeekIndex(r.seek));
    const { warnings, endOffset, issues, truncation } = r.scan;
    port.postMessage({ t: 'done', index, seek, warnings, endOffset, issues, truncation, digest: r.digest } satisfies FromWorker, [...transfer, seek.buffer as ArrayBuffer]);
  } catch (err) {
    const e = err as Error;
    const located = err instanceof LocatedError ? { where: err.where, detail: err.detail } : {};
    port.postMessage({ t: 'error', message: e.message, ...located, ...(err instanceof SourceError && { sourceError: true }) } satisfies FromWorker);
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  let remote: RemoteSource | undefined;
  port.on('message', (m: ToWorker) => {
    if (m.t === 'data') return remote?.onData(m);
    remote = m.job.file ? undefined : new RemoteSource(m.job.size, port);
    void runJob(m.job, port, remote);
  });
}

// ---- the indexer's side ----------------------------------------------------------------------

const pool = new WorkerPool(__filename);

export interface PassInWorkerOptions {
  /** The stored bytes sit in this open file at `start` (read there by the worker). */
  file?: { fd: number; path: string; start: number };
  hash: boolean;
  spill?: ZstdSpillOptions;
  onProgress?: (compressedDone: number) => void;
}

/**
 * compressedPass over `stored` (`input` is what to read it through when the worker cannot read
 * the file itself), on a worker thread; resolves or fails as compressedPass would.
 */
export async function compressedPassInWorker(
  stored: ByteSource,
  input: ByteSource,
  kind: 'gzip' | 'zstd',
  what: string,
  opts: PassInWorkerOptions,
): Promise<CompressedPassResult> {
  /** What the source threw, by message: the worker's failure names it, the original is rethrown. */
  let sourceFailure: unknown;
  const serve = (worker: Worker, seq: number, position: number, length: number) => {
    const bytes = new ArrayBuffer(length);
    input.read(Buffer.from(bytes), 0, length, position).then(
      (n) => worker.postMessage({ t: 'data', seq, bytes, n } satisfies ToWorker, [bytes]),
      (err: unknown) => {
        sourceFailure ??= err;
        worker.postMessage({ t: 'data', seq, error: (err as Error).message } satisfies ToWorker);
      },
    );
  };
  const job: Job = { kind, size: stored.size, what, hash: opts.hash, spill: opts.spill, file: opts.file };
  const reply = await pool.run<FromWorker, Extract<FromWorker, { t: 'done' | 'error' }>>(
    { t: 'job', job } satisfies ToWorker,
    (m): m is Extract<FromWorker, { t: 'done' | 'error' }> => m.t === 'done' || m.t === 'error',
    (m, worker) => {
      if (m.t === 'read') serve(worker, m.seq, m.position, m.length);
      else if (m.t === 'progress') opts.onProgress?.(m.done);
    },
  );
  if (reply.t === 'error') {
    if (reply.sourceError && sourceFailure !== undefined && (sourceFailure as Error).message === reply.message) throw sourceFailure;
    throw reply.where !== undefined && reply.detail !== undefined ? new LocatedError(reply.where, reply.detail) : new Error(reply.message);
  }
  const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  const scan = {
    index: fromMovable(reply.index),
    warnings: reply.warnings,
    endOffset: reply.endOffset,
    ...(reply.issues && { issues: reply.issues }),
    ...(reply.truncation !== undefined && { truncation: reply.truncation }),
  };
  return { scan, seek: codecs().decodeSeekIndex(buf(reply.seek)), ...(reply.digest !== undefined && { digest: reply.digest }) };
}
