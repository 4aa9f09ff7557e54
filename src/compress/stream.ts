/**
 * Random access into compressed layers: the common types, the factory functions, and the small
 * pieces both formats share (the forward output queue, the compressed-input cursor, CRC-32).
 *
 * Life of a compressed layer:
 *   1. `createSeekIndexBuilder(kind, blob)` gives a forward-only reader over the *uncompressed*
 *      stream. The tar indexer reads it front to back (headers, jumping over file data); the
 *      builder decompresses as it goes and records checkpoints (gzip) or frame boundaries (zstd).
 *   2. `builder.finish()` decompresses whatever the caller did not need (to learn the size and
 *      complete the index) and resolves to a plain-data `SeekIndex`.
 *   3. `encodeSeekIndex` / `decodeSeekIndex` persist it (compact binary, CRC-protected).
 *   4. `openRandomAccess(kind, blob, index)` is a `ByteSource` over the uncompressed layer whose
 *      cold reads decompress at most one span (gzip) / one frame or chunk (zstd); see the
 *      comments at the top of gzip-seek.ts and zstd-seek.ts for the details and limits.
 *
 * Import note: gzip-seek.ts and zstd-seek.ts import values from this file and this file imports
 * them; that cycle is safe only because none of them touches the other's values while loading
 * (no `extends` across files, no top-level calls). Keep it that way.
 */
import * as zlib from 'node:zlib';
import { LRUCache } from 'lru-cache';
import type { ByteSource } from '../io/byte-source';
import {
  GzipRandomAccess,
  GzipSeekIndexBuilder,
  decodeGzipIndexBody,
  encodeGzipIndexBody,
  type GzipSeekIndex,
} from './gzip-seek';
import {
  ZstdRandomAccess,
  ZstdSeekIndexBuilder,
  decodeZstdIndexBody,
  encodeZstdIndexBody,
  type ZstdSeekIndex,
  type ZstdSpillOptions,
} from './zstd-seek';

export type { GzipCheckpoint, GzipSeekIndex } from './gzip-seek';
export type { ZstdFrame, ZstdSeekIndex, ZstdSpillOptions } from './zstd-seek';

export type CompressionKind = 'gzip' | 'zstd';

/** A reader over the uncompressed stream that only moves forward. */
export interface ForwardReader {
  /**
   * Reads up to `length` bytes at `position` into `buf[offset..]`; resolves to the count, short
   * only at the end of the stream. `position` must be >= the end of the previous read (else it
   * throws); bytes skipped over are decompressed and dropped. Reads must not overlap in time.
   */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
}

export interface SeekIndexBuilder extends ForwardReader {
  /** Uncompressed size, known only once the stream has been decompressed to its end. */
  readonly size: number | undefined;
  /** Decompresses the rest, checks the stream to its end, and returns the index. Call once. */
  finish(): Promise<SeekIndex>;
  /** Gives up without finishing (e.g. the tar scan failed): drops a half-written spill file. */
  abort(): Promise<void>;
}

export type SeekIndex = GzipSeekIndex | ZstdSeekIndex;

/** Decompressed spans, shared by readers: key = `${cacheKey}:${span}`, size in bytes. */
export type SpanCache = LRUCache<string, Buffer>;

export function createSpanCache(maxBytes: number): SpanCache {
  return new LRUCache<string, Buffer>({
    maxSize: Math.max(1, Math.floor(maxBytes)),
    sizeCalculation: (b) => Math.max(1, b.length),
  });
}

/**
 * A decompressed piece from the shared cache, or produced once however many readers ask for it
 * at the same time (concurrent FUSE reads of one span must not inflate it twice).
 */
export class PieceCache {
  private readonly inflight = new Map<string, Promise<Buffer>>();

  constructor(private readonly cache: SpanCache) {}

  get(key: string, produce: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(key);
    if (!p) {
      p = produce().then(
        (data) => {
          this.inflight.delete(key);
          this.cache.set(key, data);
          return data;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          throw err;
        },
      );
      this.inflight.set(key, p);
    }
    return p;
  }
}

/**
 * Default distance between gzip checkpoints. bench/compress-spans.ts (256 MiB payload, spans of
 * 1/2/4/8/16 MiB): cold 4 KiB reads take ~3-4 ms per MiB of span, the index ~4 MiB of window
 * per GiB at 4 MiB spans and proportionally more for shorter ones. 2 MiB halves cold latency
 * against 4 MiB (median ~6.5 ms vs ~18 ms) for ~8 MiB of index per GiB.
 */
export const DEFAULT_SPAN_BYTES = 2 * 1024 * 1024;

/** Default decode unit inside large zstd frames; frames up to twice this are decoded whole. */
export const DEFAULT_ZSTD_CHUNK_BYTES = 4 * 1024 * 1024;

export interface SeekIndexBuilderOptions {
  /** gzip: uncompressed bytes between checkpoints (default 2 MiB). zstd: unused by the index. */
  spanBytes?: number;
  /** Called after each chunk of compressed input is read, with the compressed bytes read so far. */
  onProgress?: (compressedDone: number) => void;
  /**
   * zstd only: write the decompressed stream to this file during the pass (the pass is
   * decompressing it anyway), so `openRandomAccess(..., { spill: { path } })` can pread it
   * instead of re-decompressing single huge frames. Dropped again if every frame turns out to
   * be small (frame access is then cheap) or the stream exceeds `maxBytes`.
   */
  spill?: ZstdSpillOptions;
}

export interface RandomAccessOptions {
  /** Shared LRU of decompressed spans. Without one, each reader keeps a private one of a few spans. */
  cache?: SpanCache;
  /** Stable name of the layer for `cache` keys (e.g. the blob digest); default: unique per reader. */
  cacheKey?: string;
  /** zstd: decompressed bytes per cached chunk inside a large frame (default 4 MiB; frames up to 2x are decoded whole). */
  chunkBytes?: number;
  /** zstd: spill file for streams with frames too large to re-decompress per miss; see zstd-seek.ts. */
  spill?: ZstdSpillOptions;
  /** Told about problems that were worked around (e.g. a spill file that could not be written). */
  onWarning?: (message: string) => void;
  /** gzip: start inflating the next span when a read reaches the second half of one (sequential readers). */
  readAhead?: boolean;
}

export function createSeekIndexBuilder(
  kind: CompressionKind,
  compressed: ByteSource,
  opts: SeekIndexBuilderOptions = {},
): SeekIndexBuilder {
  switch (kind) {
    case 'gzip':
      return new GzipSeekIndexBuilder(compressed, opts);
    case 'zstd':
      return new ZstdSeekIndexBuilder(compressed, opts);
    default:
      throw new Error(`createSeekIndexBuilder: unsupported compression ${String(kind)}`);
  }
}

/** The uncompressed layer; `close()` releases a spill file handle (a no-op for gzip). */
export interface RandomAccessSource extends ByteSource {
  close(): Promise<void>;
}

export function openRandomAccess(
  kind: CompressionKind,
  compressed: ByteSource,
  index: SeekIndex,
  opts: RandomAccessOptions = {},
): RandomAccessSource {
  if (index.kind !== kind) throw new Error(`openRandomAccess: index is for ${index.kind}, not ${kind}`);
  if (compressed.size !== index.compressedSize) {
    throw new Error(
      `openRandomAccess: compressed source is ${compressed.size} bytes but the ${kind} index was built for ` +
        `${index.compressedSize} bytes (stale index or wrong blob)`,
    );
  }
  return index.kind === 'gzip'
    ? new GzipRandomAccess(compressed, index, opts)
    : new ZstdRandomAccess(compressed, index, opts);
}

// ---------------------------------------------------------------------------------------------
// Index serialization: 'OCSI' magic, format version, kind, body, CRC-32 of everything before it.

const INDEX_MAGIC = 0x4f435349; // 'OCSI'
const INDEX_VERSION = 1;
const KIND_CODE = { gzip: 1, zstd: 2 } as const;

export function encodeSeekIndex(idx: SeekIndex): Buffer {
  const w = new ByteWriter();
  w.u32(INDEX_MAGIC);
  w.u8(INDEX_VERSION);
  w.u8(KIND_CODE[idx.kind]);
  if (idx.kind === 'gzip') encodeGzipIndexBody(idx, w);
  else encodeZstdIndexBody(idx, w);
  const body = w.finish();
  const out = Buffer.allocUnsafe(body.length + 4);
  body.copy(out);
  out.writeUInt32LE(crc32(body), body.length);
  return out;
}

export function decodeSeekIndex(buf: Buffer): SeekIndex {
  if (buf.length < 10) throw new Error(`seek index: too short (${buf.length} bytes)`);
  const body = buf.subarray(0, buf.length - 4);
  if (crc32(body) !== buf.readUInt32LE(buf.length - 4)) throw new Error('seek index: checksum mismatch (corrupt or truncated)');
  const r = new ByteReader(body);
  if (r.u32() !== INDEX_MAGIC) throw new Error('seek index: bad magic');
  const version = r.u8();
  if (version !== INDEX_VERSION) throw new Error(`seek index: unsupported version ${version}`);
  const kind = r.u8();
  let idx: SeekIndex;
  if (kind === KIND_CODE.gzip) idx = decodeGzipIndexBody(r);
  else if (kind === KIND_CODE.zstd) idx = decodeZstdIndexBody(r);
  else throw new Error(`seek index: unknown kind ${kind}`);
  if (!r.done()) throw new Error('seek index: trailing bytes');
  return idx;
}

/** Little-endian growable writer; integers up to 2^48 for offsets. */
export class ByteWriter {
  private buf = Buffer.allocUnsafe(4096);
  private len = 0;
  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.need(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.need(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.need(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
  }
  u48(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0 || v >= 2 ** 48) throw new Error(`seek index: value out of range: ${v}`);
    this.need(6);
    this.buf.writeUIntLE(v, this.len, 6);
    this.len += 6;
  }
  bytes(b: Buffer): void {
    this.need(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

export class ByteReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  private take(n: number): number {
    if (this.pos + n > this.buf.length) throw new Error('seek index: truncated');
    const p = this.pos;
    this.pos += n;
    return p;
  }
  u8(): number {
    return this.buf[this.take(1)];
  }
  u16(): number {
    return this.buf.readUInt16LE(this.take(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  u48(): number {
    return this.buf.readUIntLE(this.take(6), 6);
  }
  bytes(n: number): Buffer {
    const p = this.take(n);
    return Buffer.from(this.buf.subarray(p, p + n)); // own copy: the index outlives the file buffer
  }
  done(): boolean {
    return this.pos === this.buf.length;
  }
}

// ---------------------------------------------------------------------------------------------
// CRC-32 (gzip's). Node >= 20.15 has a native zlib.crc32; older 20.x get a table version.

type Crc32Fn = (data: Uint8Array, value?: number) => number;
const nativeCrc32 = (zlib as unknown as { crc32?: Crc32Fn }).crc32;
let crcTable: Uint32Array | undefined;

export function crc32(data: Uint8Array, value = 0): number {
  if (nativeCrc32) return nativeCrc32(data, value) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// crc32_combine, as in zlib 1.2.12+: CRC of A||B from crc(A), crc(B), len(B).
const POLY = 0xedb88320;
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}
let x2nTable: number[] | undefined;
function x2nmodp(n: number, k: number): number {
  if (!x2nTable) {
    x2nTable = [];
    let p = 0x40000000; // x^1
    x2nTable.push(p);
    for (let i = 1; i < 32; i++) x2nTable.push((p = multmodp(p, p)));
  }
  let p = 0x80000000; // x^0 == 1
  while (n > 0) {
    if (n % 2 === 1) p = multmodp(x2nTable[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  return (multmodp(x2nmodp(len2, 3), crc1) ^ crc2) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Shared machinery for the forward pass.

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
    if (this.closed) throw new Error(`${this.what}: forward reader used after finish()`);
    if (this.busy) throw new Error(`${this.what}: forward reader does not allow overlapping reads`);
    if (!Number.isSafeInteger(position) || position < this.lastEnd) {
      throw new Error(`${this.what}: forward reader: read at ${position} is behind the previous read's end ${this.lastEnd}`);
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
    if (this.busy) throw new Error(`${this.what}: finish() while a read is in progress`);
    if (this.closed) throw new Error(`${this.what}: finish() called twice`);
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
    const chunk = Buffer.allocUnsafe(want);
    const n = await this.src.read(chunk, 0, want, this.srcPos);
    if (n <= 0) throw new Error(`compressed source ended early at byte ${this.srcPos} of ${this.src.size}`);
    const got = chunk.subarray(0, n);
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

/** Lets other callbacks run between long stretches of synchronous decompression. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Binary search: index of the last element whose key is <= x (elements sorted by key, first key <= x). */
export function lastAtOrBefore<T>(items: readonly T[], x: number, key: (t: T) => number): number {
  let lo = 0;
  let hi = items.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (key(items[mid]) <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
