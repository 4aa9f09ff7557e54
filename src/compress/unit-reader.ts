/**
 * The read loop both random-access readers share. A compressed stream with a seek index is a row
 * of units that decode independently of each other, each from its own seek point: gzip spans
 * between checkpoints, zstd frames or fixed-size chunks of a large frame. A read maps the
 * requested range onto the units it covers and copies each unit's slice out of its decoded bytes,
 * which come from the piece cache (decoded once however many reads want them). A codec supplies
 * only where its units are and how to decode one (the shape of stargz-snapshotter's `ReadAt` over
 * chunk entries).
 */
import { PieceCache, createSpanCache, type SpanCache } from './piece-cache';

/** One independently decodable stretch of the uncompressed stream. */
export interface Unit {
  /** Names the unit within its stream, for the piece cache (a span number, `frame:chunk`). */
  readonly id: string;
  /** Uncompressed offset of its first byte. */
  readonly start: number;
  /** Uncompressed length; its decoded bytes are exactly this long. */
  readonly length: number;
}

/** What a codec tells the loop. */
export interface UnitCodec<U extends Unit> {
  /** Codec name for messages and default cache keys ('gzip', 'zstd'). */
  readonly name: string;
  /** Uncompressed size of the whole stream. */
  readonly size: number;
  /** The unit holding uncompressed offset `pos`, 0 <= pos < size. */
  unitAt(pos: number): U;
  /** Decompresses one unit (checking it against the index); resolves to `unit.length` bytes. */
  decode(unit: U): Promise<Buffer>;
}

export interface UnitReaderOptions {
  /** Shared cache of decoded units; without one, a private cache of a few of the largest units. */
  cache?: SpanCache;
  /** Stable name of the stream in `cache` keys; default: unique per reader. */
  cacheKey?: string;
  /** Uncompressed length of the largest unit, to size the private cache. */
  largestUnit: number;
  /**
   * Start decoding the next unit when a read reaches the second half of one: a reader going
   * front to back (cat, cp) then finds it ready. Worth it only where decoding runs off the main
   * thread (gzip, on the thread pool).
   */
  readAhead?: boolean;
}

let readerSeq = 0;

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

export class UnitReader<U extends Unit> {
  private readonly pieces: PieceCache;
  private readonly key: string;
  private readonly readAhead: boolean;

  constructor(
    private readonly codec: UnitCodec<U>,
    opts: UnitReaderOptions,
  ) {
    this.pieces = new PieceCache(opts.cache ?? createSpanCache(Math.max(3 * opts.largestUnit, 8 * 1024 * 1024)));
    this.key = opts.cacheKey ?? `${codec.name}#${++readerSeq}`;
    this.readAhead = !!opts.readAhead;
  }

  /** The end of a read of `length` bytes at `position`, clipped to the stream; throws on a bad position. */
  end(position: number, length: number): number {
    if (!Number.isSafeInteger(position) || position < 0) throw new Error(`${this.codec.name}: bad read position ${position}`);
    return Math.min(this.codec.size, position + Math.max(0, length));
  }

  /** A ByteSource read: up to `length` bytes at `position` into `buf[offset..]`. */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const end = this.end(position, length);
    return position >= end ? Promise.resolve(0) : this.readRange(buf, offset, position, end);
  }

  /** Copies [position, end) into `buf[offset..]`; the range must lie inside the stream (see `end`). */
  async readRange(buf: Buffer, offset: number, position: number, end: number): Promise<number> {
    let pos = position;
    let unit: U;
    do {
      unit = this.codec.unitAt(pos);
      const data = await this.piece(unit);
      const from = pos - unit.start;
      const n = Math.min(data.length - from, end - pos);
      data.copy(buf, offset + (pos - position), from, from + n);
      pos += n;
    } while (pos < end);
    const next = unit.start + unit.length;
    if (this.readAhead && next < this.codec.size && end - unit.start > unit.length / 2) {
      this.piece(this.codec.unitAt(next)).catch(() => undefined);
    }
    return end - position;
  }

  private piece(unit: U): Promise<Buffer> {
    return this.pieces.get(`${this.key}:${unit.id}`, () => this.codec.decode(unit));
  }
}
