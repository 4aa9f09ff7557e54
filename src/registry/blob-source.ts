import type { ByteSource } from '../io/byte-source';
import type { BlockStore } from './block-store';
import type { RegistryClient } from './client';

/*
 * A blob in a registry as a ByteSource, read lazily:
 *  - random reads (tar headers of an uncompressed layer, a gzip span from its checkpoint, a zstd
 *    frame, a file's bytes) fetch only the blocks they touch that are not kept yet, each run of
 *    missing blocks as one bounded Range request; blocks come from and go to the block store, so
 *    a second read, or a remount, finds them without the network. Reads that follow each other
 *    fetch further ahead each time (up to MAX_AHEAD), so `cat` of a large file is a few large
 *    requests rather than many small ones.
 *  - `sequentialReader()` is for the one front-to-back pass that indexes a compressed layer: it
 *    streams the blob in bounded windows, two fetched ahead of the reader, and keeps nothing (the
 *    pass needs every byte once; keeping them would fill the cache with a copy of the blob).
 * Every read has a deadline (the registry timeout, retries included): a registry that stops
 * answering makes the read fail, never hang; the next read tries again.
 */

const MAX_AHEAD = 2 * 1024 * 1024;
/** Largest single Range request. */
const MAX_REQUEST = 8 * 1024 * 1024;
const STREAM_WINDOW = 4 * 1024 * 1024;
/**
 * Windows fetched ahead of the streaming reader: two, so that a window's request latency and a
 * slow moment of the registry hide behind the inflate of the one before (bench/registry.ts).
 */
const STREAM_AHEAD = 2;

export class RemoteBlobSource implements ByteSource {
  private readonly hex: string;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  private lastEnd = -1;
  private ahead = 0;
  private readonly storing = new Set<Promise<void>>();
  /** Bytes fetched from the registry by this source, for tests and notes. */
  fetched = 0;

  constructor(
    private readonly client: RegistryClient,
    readonly digest: string,
    readonly size: number,
    private readonly store: BlockStore,
    private readonly timeoutMs: number,
  ) {
    this.hex = digest.replace(/^sha256:/, '');
  }

  private blockLength(block: number): number {
    const bs = this.store.blockSize;
    return Math.min(bs, this.size - block * bs);
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.size - position));
    if (want === 0) return 0;
    const deadline = Date.now() + this.timeoutMs;
    const bs = this.store.blockSize;
    const first = Math.floor(position / bs);
    const last = Math.floor((position + want - 1) / bs);
    this.ahead = position === this.lastEnd ? Math.min(MAX_AHEAD, Math.max(bs, this.ahead * 2)) : 0;
    this.lastEnd = position + want;
    const lastBlock = Math.floor((this.size - 1) / bs);
    const aheadTo = Math.min(lastBlock, last + Math.ceil(this.ahead / bs));
    const blocks = await this.blocks(first, last, aheadTo, deadline);
    let done = 0;
    for (let i = first; i <= last; i++) {
      const b = blocks[i - first];
      const from = i === first ? position - i * bs : 0;
      const n = Math.min(b.length - from, want - done);
      b.copy(buf, offset + done, from, from + n);
      done += n;
    }
    return done;
  }

  /** Blocks first..last (needed), fetching missing ones, and up to aheadTo with them. */
  private async blocks(first: number, last: number, aheadTo: number, deadline: number): Promise<Buffer[]> {
    const started = new Map<number, Promise<Buffer>>();
    const needed: Array<Promise<Buffer> | number> = [];
    let runStart = -1;
    const startRun = (end: number) => {
      this.fetchRun(runStart, end, deadline).forEach((p, k) => started.set(runStart + k, p));
      runStart = -1;
    };
    for (let i = first; i <= aheadTo; i++) {
      // Past the needed blocks, read ahead only by extending a fetch that is happening anyway.
      if (i > last && runStart < 0) break;
      const pending = this.inflight.get(i);
      const kept = pending ? undefined : await this.store.get(this.hex, i, this.blockLength(i));
      if (pending || kept) {
        if (runStart >= 0) startRun(i - 1);
        if (i <= last) needed.push(pending ?? Promise.resolve(kept!));
        continue;
      }
      if (runStart < 0) runStart = i;
      if (i <= last) needed.push(i);
      if ((i - runStart + 1) * this.store.blockSize >= MAX_REQUEST) startRun(i);
    }
    if (runStart >= 0) startRun(aheadTo);
    return Promise.all(needed.map((n) => (typeof n === 'number' ? started.get(n)! : n)));
  }

  /** One Range request for blocks a..b; each block's promise is findable in `inflight` meanwhile. */
  private fetchRun(a: number, b: number, deadline: number): Array<Promise<Buffer>> {
    const bs = this.store.blockSize;
    const start = a * bs;
    const end = Math.min(this.size, (b + 1) * bs);
    let stored: Promise<void> = Promise.resolve();
    const run = this.client.blobRange(this.digest, this.size, start, end, deadline).then((bytes) => {
      this.fetched += bytes.length;
      const parts: Buffer[] = [];
      for (let i = a; i <= b; i++) parts.push(Buffer.from(bytes.subarray((i - a) * bs, Math.min(bytes.length, (i - a + 1) * bs))));
      // Kept in the background (the reader has its bytes now); the blocks stay findable in
      // `inflight` until they are in the store, so no read fetches them twice meanwhile.
      stored = (async () => {
        for (const [k, part] of parts.entries()) await this.store.put(this.hex, a + k, part);
      })().catch(() => undefined);
      this.storing.add(stored);
      void stored.then(() => this.storing.delete(stored));
      return parts;
    });
    const out: Array<Promise<Buffer>> = [];
    for (let i = a; i <= b; i++) {
      const p = run.then((parts) => parts[i - a]);
      p.catch(() => undefined);
      out.push(p);
      this.inflight.set(i, p);
      const drop = () => {
        if (this.inflight.get(i) === p) this.inflight.delete(i);
      };
      run.then(() => stored).then(drop, drop);
    }
    return out;
  }

  /** Resolves once every block fetched so far is in the store (before the store closes). */
  async settled(): Promise<void> {
    while (this.storing.size) await Promise.all([...this.storing]);
  }

  /** A forward reader for one front-to-back pass: streamed in bounded windows, nothing kept. */
  sequentialReader(): ByteSource {
    return new StreamingReader(this);
  }

  /** One window for the streaming reader. */
  fetchWindow(start: number, end: number): Promise<Buffer> {
    return this.client.blobRange(this.digest, this.size, start, end, Date.now() + this.timeoutMs).then((b) => {
      this.fetched += b.length;
      return b;
    });
  }
}

class StreamingReader implements ByteSource {
  private readonly windows = new Map<number, Promise<Buffer>>();

  constructor(private readonly blob: RemoteBlobSource) {}

  get size(): number {
    return this.blob.size;
  }

  private window(w: number): Promise<Buffer> {
    let p = this.windows.get(w);
    if (!p) {
      const start = w * STREAM_WINDOW;
      p = this.blob.fetchWindow(start, Math.min(this.size, start + STREAM_WINDOW));
      p.catch(() => undefined);
      this.windows.set(w, p);
    }
    return p;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    let done = 0;
    while (done < length) {
      const view = await this.readView(position + done, length - done);
      if (view.length === 0) break;
      view.copy(buf, offset + done);
      done += view.length;
    }
    return done;
  }

  async readView(position: number, length: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(length, this.size - position));
    if (want === 0) return Buffer.alloc(0);
    const w = Math.floor(position / STREAM_WINDOW);
    // Windows behind the reader are done with; the ones after this are fetched meanwhile.
    for (const k of this.windows.keys()) if (k < w) this.windows.delete(k);
    for (let k = w + 1; k <= w + STREAM_AHEAD && k * STREAM_WINDOW < this.size; k++) void this.window(k);
    let bytes: Buffer;
    try {
      bytes = await this.window(w);
    } catch (err) {
      this.windows.delete(w); // a later read tries again
      throw err;
    }
    const from = position - w * STREAM_WINDOW;
    return bytes.subarray(from, from + Math.min(want, bytes.length - from));
  }
}
