/**
 * The two ends of the index pass, shared by both codecs: the compressed input is read front to
 * back through a CompressedCursor, and the decompressed output goes to the tar scanner through a
 * ForwardQueue, which keeps only what the scanner has not yet passed.
 */
import type { ByteSource } from '../io/byte-source';
import { LocatedError } from '../errors';

/**
 * Output side of a forward decompressor: the producer pushes decompressed chunks in order, the
 * consumer reads at non-decreasing positions; chunks behind the consumer are dropped at once, so
 * jumping over a 1 GiB file costs CPU but no memory.
 */
export class ForwardQueue {
  private chunks: Buffer[] = [];
  private chunksStart = 0;
  private produced = 0;
  private eof = false;
  private lastEnd = 0;
  private busy = false;
  private closed = false;
  private discardBelow = 0;
  private failure: unknown;

  /** `produce` decompresses a bounded amount more, pushing chunks; false once the stream has ended. */
  constructor(
    private readonly what: string,
    private readonly produce: () => Promise<boolean>,
  ) {}

  /** Bytes produced so far; the total once `ended`. */
  get total(): number {
    return this.produced;
  }
  get ended(): boolean {
    return this.eof;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.produced += chunk.length;
    this.trim();
  }

  private trim(): void {
    while (this.chunks.length > 0 && this.chunksStart + this.chunks[0].length <= this.discardBelow) {
      this.chunksStart += this.chunks[0].length;
      this.chunks.shift();
    }
    if (this.chunks.length === 0) this.chunksStart = this.produced;
  }

  /** Runs the producer once; a failure sticks, so later calls repeat it instead of going on from a broken state. */
  private async step(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    try {
      if (!(await this.produce())) this.eof = true;
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new LocatedError(this.what, `forward reader used after finish()`);
    if (this.busy) throw new LocatedError(this.what, `forward reader does not allow overlapping reads`);
    if (!Number.isSafeInteger(position) || position < this.lastEnd) {
      throw new LocatedError(this.what, `forward reader: read at ${position} is behind the previous read's end ${this.lastEnd}`);
    }
    if (length <= 0) return 0;
    this.busy = true;
    try {
      this.discardBelow = position;
      this.trim();
      const end = position + length;
      while (this.produced < end && !this.eof) await this.step();
      const stop = Math.min(end, this.produced);
      let n = 0;
      let chunkPos = this.chunksStart;
      for (const c of this.chunks) {
        const cEnd = chunkPos + c.length;
        if (cEnd > position + n && chunkPos < stop) {
          const from = position + n - chunkPos;
          const to = Math.min(c.length, stop - chunkPos);
          c.copy(buf, offset + n, from, to);
          n += to - from;
        }
        chunkPos = cEnd;
        if (chunkPos >= stop) break;
      }
      this.lastEnd = position + n;
      return n;
    } finally {
      this.busy = false;
    }
  }

  /** Runs the producer to the end, dropping the output; later reads throw. */
  async drain(): Promise<void> {
    if (this.busy) throw new LocatedError(this.what, `finish() while a read is in progress`);
    if (this.closed) throw new LocatedError(this.what, `finish() called twice`);
    this.closed = true;
    this.discardBelow = Number.MAX_SAFE_INTEGER;
    this.trim();
    while (!this.eof) await this.step();
    this.chunks = [];
  }
}

/** Sequential reader of the compressed blob with a little lookahead for header parsing. */
export class CompressedCursor {
  /** Bytes held; `buf[off..]` not yet consumed. */
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  private bufStart = 0;
  private srcPos = 0;

  constructor(
    private readonly src: ByteSource,
    private readonly chunkBytes: number,
    private readonly onProgress?: (compressedDone: number) => void,
    start = 0,
  ) {
    this.bufStart = start;
    this.srcPos = start;
  }

  /** Absolute offset of the next unconsumed byte. */
  get abs(): number {
    return this.bufStart + this.off;
  }
  get avail(): number {
    return this.buf.length - this.off;
  }
  get size(): number {
    return this.src.size;
  }
  /** Nothing held and nothing left in the source. */
  get atEnd(): boolean {
    return this.avail === 0 && this.srcPos >= this.src.size;
  }

  /** Appends the next chunk of the source to what is held; false at the end of the source. */
  async fill(maxBytes = this.chunkBytes): Promise<boolean> {
    const want = Math.min(maxBytes, this.src.size - this.srcPos);
    if (want <= 0) return false;
    let got: Buffer;
    if (this.src.readView) {
      got = await this.src.readView(this.srcPos, want);
    } else {
      const chunk = Buffer.allocUnsafe(want);
      got = chunk.subarray(0, await this.src.read(chunk, 0, want, this.srcPos));
    }
    const n = got.length;
    if (n <= 0) throw new Error(`compressed source ended early at byte ${this.srcPos} of ${this.src.size}`);
    if (this.avail > 0) {
      const tail = this.buf.subarray(this.off);
      this.bufStart += this.off;
      this.buf = Buffer.concat([tail, got]);
    } else {
      this.bufStart = this.srcPos;
      this.buf = got;
    }
    this.off = 0;
    this.srcPos += n;
    this.onProgress?.(this.srcPos);
    return true;
  }

  /** Makes at least `n` unconsumed bytes available if the source has them. */
  async ensure(n: number): Promise<boolean> {
    while (this.avail < n) {
      if (!(await this.fill(Math.max(this.chunkBytes, n - this.avail)))) return false;
    }
    return true;
  }

  /** Consumes `n` bytes, which may run past what is held (they are skipped in the source). */
  skip(n: number): void {
    const held = this.avail;
    if (n <= held) {
      this.off += n;
      return;
    }
    this.bufStart = this.srcPos + (n - held);
    this.srcPos = this.bufStart;
    this.buf = Buffer.alloc(0);
    this.off = 0;
  }
}

/**
 * What every codec's index pass does the same way: the tar scanner reads the uncompressed
 * stream from a ForwardQueue that `produce` (the codec's decompression step) fills, reading the
 * compressed bytes through a CompressedCursor; the size is known once the stream has ended.
 */
export abstract class ForwardPass {
  protected readonly cur: CompressedCursor;
  protected readonly q: ForwardQueue;
  private finished = false;

  constructor(
    private readonly what: string,
    src: ByteSource,
    inBytes: number,
    onProgress?: (compressedDone: number) => void,
  ) {
    this.cur = new CompressedCursor(src, inBytes, onProgress);
    this.q = new ForwardQueue(what, () => this.produce());
  }

  /** Decompresses a bounded amount more into `q`; false once the stream has ended. */
  protected abstract produce(): Promise<boolean>;

  /** Uncompressed size, known only once the stream has been decompressed to its end. */
  get size(): number | undefined {
    return this.q.ended ? this.q.total : undefined;
  }

  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.q.read(buf, offset, length, position);
  }

  /** Ends the pass for good; finishing after this throws. */
  protected stop(): void {
    this.finished = true;
  }

  /** The first step of `finish()`, once only: decompresses the rest, checking it to its end. */
  protected async drain(): Promise<void> {
    if (this.finished) throw new LocatedError(this.what, `finish() called twice`);
    this.finished = true;
    await this.q.drain();
  }
}
