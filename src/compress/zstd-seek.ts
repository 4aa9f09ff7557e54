/**
 * Random access into zstd streams.
 *
 * A zstd stream is a sequence of frames (magic 0xFD2FB528) and skippable frames
 * (0x184D2A50..5F, 4-byte length, ignored). Frames are independent, so the only places where
 * decompression can start are frame starts: inside a frame a block may use the previous blocks'
 * entropy tables and up to windowSize (2-128 MiB) of history, and zstd's public API offers no way
 * to save or restore that state. So:
 *
 * Index pass (ZstdSeekIndexBuilder): one forward streaming decompression with zstd-napi's DCtx.
 * ZSTD_decompressStream returns 0 exactly when a frame is complete, so the frame table
 * (compressed offset/size, uncompressed offset/size) comes from the decoder itself, whether or
 * not frames carry Frame_Content_Size. Skippable frames are stepped over by their length field.
 * The frame checksum (if present) is checked by zstd. After the last frame: zero padding is
 * ignored (`trailingBytes`); any other data is an error, as it is for zstd(1).
 *
 * Random read (ZstdRandomAccess; measured in bench/compress-spans.ts and bench/compressed.ts, figures
 * in bench/README.md):
 *  - Frames up to 2 x chunkBytes (8 MiB by default; pzstd writes 8 MiB frames, zstd --seekable
 *    and estargz/zstd:chunked layers use smaller ones) are decoded whole on a miss and cached:
 *    one frame per cold read, like a gzip span.
 *  - Larger frames (plain `zstd`, including `zstd -T<n>`, which writes ONE frame however many
 *    threads compress it, and most registry zstd layers) are decoded in chunks of chunkBytes. A
 *    small pool of live decoders ("cursors") remembers where each stopped, so reading a file front
 *    to back continues where the previous chunk ended. A miss behind every cursor has no choice
 *    but to decode the frame from its start up to the chunk: cold random reads in a single-frame
 *    layer cost O(offset), about what `zstd -dc | head -c offset` costs. Decoding is synchronous
 *    (zstd-napi), so long runs yield to the event loop every couple of MiB.
 *  - Spill file (`spill: { path, maxBytes }`, recommended for single-frame layers): the
 *    uncompressed stream is kept in a file and served with pread. Cheapest is to let the index
 *    pass write it (`createSeekIndexBuilder('zstd', src, { spill })`: the pass decompresses
 *    everything anyway). Otherwise the reader fills `${path}.partial.<pid>` sequentially on demand (a
 *    read at offset X first decodes everything before X, once) and renames it to `path` when
 *    complete; a later reader finds `path` with the right size and uses it directly. The path
 *    must be unique per blob (name it by digest). Streams larger than maxBytes, or any spill
 *    I/O error, fall back to frame/chunk decoding (reported through `onWarning`). The file
 *    itself is SpillFile (zstd-spill.ts).
 */
import * as binding from 'zstd-napi/binding';
import type { ByteSource } from '../io/byte-source';
import type { ByteReader, ByteWriter } from './byte-codec';
import { ForwardPass } from './forward-pass';
import type {
  RandomAccessOptions,
  RandomAccessSource,
  SeekIndexBuilder,
  SeekIndexBuilderOptions,
  ZstdFrame,
  ZstdSeekIndex,
  ZstdSpillOptions,
} from './types';
import { UnitReader, lastAtOrBefore, type Unit, type UnitCodec } from './unit-reader';
import { SpillFile, SpillIOError } from './zstd-spill';

/** Default decode unit inside large frames; frames up to twice this are decoded whole. */
export const DEFAULT_ZSTD_CHUNK_BYTES = 4 * 1024 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_MAGIC_BYTES = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const IN_BYTES = 1024 * 1024;
const OUT_BYTES = 1024 * 1024;
// zstd's own default limit (128 MiB, as `zstd -d`): a frame may claim a 2 GiB window, and every
// decoder would then allocate it; a tiny hostile layer must not cost gigabytes.
const WINDOW_LOG_MAX = 27;
// Output per producer step is bounded, so a bomb cannot queue a GiB before it is consumed.
const STEP_OUT_BYTES = 4 * OUT_BYTES;
const YIELD_EVERY = 2 * 1024 * 1024;
const MAX_CURSORS = 4;

/** Lets other callbacks run between long stretches of synchronous decompression. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function newDCtx(): binding.DCtx {
  const d = new binding.DCtx();
  d.setParameter(binding.DParameter.windowLogMax, WINDOW_LOG_MAX);
  return d;
}

/** Frames larger than this are decoded in chunks (and make a spill file worthwhile). */
export function wholeFrameLimit(chunkBytes: number): number {
  return 2 * chunkBytes;
}

export class ZstdSeekIndexBuilder extends ForwardPass implements SeekIndexBuilder {
  private readonly dctx = newDCtx();
  private phase: 'frame-start' | 'frame' | 'done' = 'frame-start';
  private outBuf = Buffer.allocUnsafe(OUT_BYTES);
  private outPos = 0;
  private out = 0;
  private frameCOff = 0;
  private frameUOff = 0;
  private readonly frames: ZstdFrame[] = [];
  private trailing = 0;
  private spill: SpillFile | undefined;
  private readonly spillMaxBytes: number | undefined;

  constructor(
    private readonly src: ByteSource,
    opts: SeekIndexBuilderOptions = {},
  ) {
    super('zstd', src, IN_BYTES, opts.onProgress);
    if (opts.spill) this.spill = new SpillFile(opts.spill.path);
    this.spillMaxBytes = opts.spill?.maxBytes;
  }

  async abort(): Promise<void> {
    this.stop();
    await this.dropSpill();
  }

  async finish(): Promise<ZstdSeekIndex> {
    try {
      await this.drain();
    } catch (err) {
      await this.dropSpill();
      throw err;
    }
    const idx: ZstdSeekIndex = {
      kind: 'zstd',
      compressedSize: this.src.size,
      uncompressedSize: this.out,
      trailingBytes: this.trailing,
      frames: this.frames,
    };
    const useful = this.frames.some((f) => f.uSize > wholeFrameLimit(DEFAULT_ZSTD_CHUNK_BYTES));
    if (useful) await this.publishSpill();
    else await this.dropSpill();
    return idx;
  }

  // The copy is an optimisation: any failure drops it, and readers decode frames instead.

  private async writeSpill(pieces: Buffer[]): Promise<void> {
    if (!this.spill) return;
    const len = pieces.reduce((n, p) => n + p.length, 0);
    if (this.spillMaxBytes !== undefined && this.spill.size + len > this.spillMaxBytes) return this.dropSpill();
    await this.spill.append(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, len)).catch(() => this.dropSpill());
  }

  private async publishSpill(): Promise<void> {
    const spill = this.spill;
    if (!spill) return;
    try {
      if (spill.size !== this.out) throw new Error('short spill');
      await spill.publish();
      this.spill = undefined;
      await spill.discard(); // closes it; a published copy stays
    } catch {
      await this.dropSpill();
    }
  }

  private async dropSpill(): Promise<void> {
    const spill = this.spill;
    this.spill = undefined;
    await spill?.discard();
  }

  protected async produce(): Promise<boolean> {
    const cur = this.cur;
    if (this.phase === 'done') return false;
    if (this.phase === 'frame-start') {
      if (!(await cur.ensure(1))) {
        this.phase = 'done';
        return false;
      }
      const start = cur.abs;
      const magic = (await cur.ensure(4)) ? cur.buf.readUInt32LE(cur.off) : -1;
      if (magic === ZSTD_MAGIC) {
        this.frameCOff = start;
        this.frameUOff = this.out;
        this.phase = 'frame';
        return true;
      }
      if (magic !== -1 && ((magic & SKIPPABLE_MASK) >>> 0) === SKIPPABLE_MAGIC) {
        if (!(await cur.ensure(8))) throw new Error(`zstd: truncated input: skippable frame header at compressed offset ${start}`);
        const len = cur.buf.readUInt32LE(cur.off + 4);
        if (start + 8 + len > cur.size) {
          throw new Error(`zstd: truncated input: skippable frame at compressed offset ${start} claims ${len} bytes past the end`);
        }
        cur.skip(8 + len);
        return true;
      }
      if (magic === -1 && cur.avail > 0 && ZSTD_MAGIC_BYTES.subarray(0, cur.avail).equals(cur.buf.subarray(cur.off))) {
        throw new Error(`zstd: truncated input: frame header at compressed offset ${start} is incomplete`);
      }
      if (this.frames.length === 0 && start === 0) throw new Error('zstd: not a zstd stream (no zstd magic at compressed offset 0)');
      if (!(await this.restIsZero())) {
        throw new Error(`zstd: corrupt data: unexpected bytes at compressed offset ${start} (not a zstd frame)`);
      }
      this.trailing = cur.size - start;
      this.phase = 'done';
      return false;
    }
    // Inside a frame.
    if (cur.avail === 0 && !(await cur.fill())) {
      throw new Error(
        `zstd: truncated input: the stream ends at compressed offset ${cur.abs} inside the frame that starts at ` +
          `compressed offset ${this.frameCOff} (after ${this.out} uncompressed bytes)`,
      );
    }
    const pieces: Buffer[] = [];
    const outAtStart = this.out;
    for (;;) {
      if (this.out - outAtStart >= STEP_OUT_BYTES) break;
      if (this.outPos === this.outBuf.length) {
        this.outBuf = Buffer.allocUnsafe(OUT_BYTES);
        this.outPos = 0;
      }
      const space = this.outBuf.length - this.outPos;
      let ret: number, produced: number, consumed: number;
      try {
        [ret, produced, consumed] = this.dctx.decompressStream(this.outBuf.subarray(this.outPos), cur.buf.subarray(cur.off));
      } catch (err) {
        const why = (err as Error).message;
        throw new Error(
          /too much memory/i.test(why)
            ? `zstd: the frame at compressed offset ${this.frameCOff} asks for a window over 128 MiB (more than zstd -d accepts by default); refused`
            : `zstd: corrupt data in the frame at compressed offset ${this.frameCOff} (near compressed offset ${cur.abs}): ${why}`,
        );
      }
      cur.off += consumed;
      if (produced > 0) {
        const piece = this.outBuf.subarray(this.outPos, this.outPos + produced);
        this.outPos += produced;
        this.out += produced;
        this.q.push(piece);
        if (this.spill) pieces.push(piece);
      }
      if (ret === 0) {
        if (this.out > this.frameUOff) {
          this.frames.push({ cOff: this.frameCOff, cSize: cur.abs - this.frameCOff, uOff: this.frameUOff, uSize: this.out - this.frameUOff });
        }
        this.phase = 'frame-start';
        break;
      }
      if (cur.avail === 0 && produced < space) break; // needs more input
      if (produced === 0 && consumed === 0 && produced < space) {
        throw new Error(`zstd: decoder made no progress at compressed offset ${cur.abs}`);
      }
    }
    if (pieces.length) await this.writeSpill(pieces);
    return true;
  }

  private async restIsZero(): Promise<boolean> {
    const cur = this.cur;
    for (;;) {
      const held = cur.buf.subarray(cur.off);
      for (let i = 0; i < held.length; i++) if (held[i] !== 0) return false;
      cur.off = cur.buf.length;
      if (!(await cur.fill())) return true;
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** A live decoder inside one frame, positioned at `uPos`. */
class FrameCursor {
  private readonly dctx = newDCtx();
  private inBuf = Buffer.alloc(0);
  private inOff = 0;
  private cPos: number;
  private readonly cEnd: number;
  uPos: number;
  busy = false;
  lastUsed = 0;
  private scratch: Buffer | undefined;

  constructor(
    private readonly src: ByteSource,
    readonly frameNo: number,
    private readonly frame: ZstdFrame,
  ) {
    this.cPos = frame.cOff;
    this.cEnd = frame.cOff + frame.cSize;
    this.uPos = frame.uOff;
  }

  get atEnd(): boolean {
    return this.uPos >= this.frame.uOff + this.frame.uSize;
  }

  private where(): string {
    return `the frame at compressed offset ${this.frame.cOff} (uncompressed offset ${this.uPos})`;
  }

  /** Decodes exactly `dst.length` bytes into `dst`. */
  async decodeInto(dst: Buffer): Promise<void> {
    let filled = 0;
    let sinceYield = 0;
    while (filled < dst.length) {
      if (this.inOff === this.inBuf.length) {
        const want = Math.min(IN_BYTES, this.cEnd - this.cPos);
        if (want <= 0) throw new Error(`zstd: ${this.where()} ended early (archive changed or corrupt)`);
        const b = Buffer.allocUnsafe(want);
        const n = await this.src.read(b, 0, want, this.cPos);
        if (n !== want) throw new Error(`zstd: truncated input reading ${this.where()}`);
        this.inBuf = b;
        this.inOff = 0;
        this.cPos += n;
      }
      let produced: number, consumed: number, ret: number;
      try {
        [ret, produced, consumed] = this.dctx.decompressStream(dst.subarray(filled), this.inBuf.subarray(this.inOff));
      } catch (err) {
        throw new Error(`zstd: corrupt data in ${this.where()}: ${(err as Error).message}`);
      }
      this.inOff += consumed;
      filled += produced;
      this.uPos += produced;
      if (ret === 0 && filled < dst.length) throw new Error(`zstd: ${this.where()} ended early (archive changed or corrupt)`);
      if (produced === 0 && consumed === 0) throw new Error(`zstd: decoder made no progress in ${this.where()}`);
      sinceYield += produced;
      if (sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
    }
  }

  /** Decodes and drops `n` bytes. */
  async skip(n: number): Promise<void> {
    this.scratch ??= Buffer.allocUnsafe(OUT_BYTES);
    while (n > 0) {
      const step = Math.min(n, this.scratch.length);
      await this.decodeInto(this.scratch.subarray(0, step));
      n -= step;
    }
  }
}

/** A whole frame, or one chunkBytes stretch of a large frame: the unit a cold read decodes. */
interface ZstdChunk extends Unit {
  readonly frame: number;
}

export class ZstdRandomAccess implements RandomAccessSource, UnitCodec<ZstdChunk> {
  readonly name = 'zstd';
  readonly size: number;
  private readonly frames: ZstdFrame[];
  private readonly units: UnitReader<ZstdChunk>;
  private readonly chunkBytes: number;
  private readonly wholeLimit: number;
  private cursors: FrameCursor[] = [];
  private useClock = 0;
  private spill: SpillFile | undefined;
  private readonly onWarning: (m: string) => void;

  constructor(
    private readonly src: ByteSource,
    idx: ZstdSeekIndex,
    opts: RandomAccessOptions = {},
  ) {
    this.size = idx.uncompressedSize;
    this.frames = idx.frames;
    this.chunkBytes = Math.max(64 * 1024, Math.floor(opts.chunkBytes ?? DEFAULT_ZSTD_CHUNK_BYTES));
    this.wholeLimit = wholeFrameLimit(this.chunkBytes);
    let largestUnit = 0;
    for (const f of this.frames) largestUnit = Math.max(largestUnit, this.unitBytes(f));
    // No read-ahead: decoding is synchronous on the main thread, so it would overlap with nothing.
    this.units = new UnitReader(this, { cache: opts.cache, cacheKey: opts.cacheKey, largestUnit });
    this.onWarning = opts.onWarning ?? (() => undefined);
    const hasLarge = this.frames.some((f) => f.uSize > this.wholeLimit);
    if (opts.spill && hasLarge && (opts.spill.maxBytes === undefined || this.size <= opts.spill.maxBytes)) {
      this.spill = new SpillFile(opts.spill.path, { total: this.size, decode: (from, dst) => this.decodeSequential(from, dst) });
    }
  }

  /** Releases the spill file handle and the decoders; the reader must not be used afterwards. */
  async close(): Promise<void> {
    this.cursors = [];
    this.seq = undefined;
    const spill = this.spill;
    this.spill = undefined;
    await spill?.close();
  }

  /** How reads are served: 'spill' (pread of the spill file) or 'frames'. */
  get mode(): 'spill' | 'frames' {
    return this.spill ? 'spill' : 'frames';
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const end = this.units.end(position, length);
    if (position >= end) return 0;
    if (this.spill) {
      try {
        return await this.spill.read(buf, offset, end - position, position);
      } catch (err) {
        if (!(err instanceof SpillIOError)) throw err;
        this.onWarning(`zstd: spill file ${this.spill.path} unusable, decoding frames instead: ${err.message}`);
        this.spill = undefined;
      }
    }
    return this.units.readRange(buf, offset, position, end);
  }

  /** Frames up to wholeLimit are one unit; larger ones are cut into chunkBytes units. */
  private unitBytes(frame: ZstdFrame): number {
    return frame.uSize <= this.wholeLimit ? frame.uSize : this.chunkBytes;
  }

  unitAt(pos: number): ZstdChunk {
    const f = lastAtOrBefore(this.frames, pos, (x) => x.uOff);
    const frame = this.frames[f];
    const unit = this.unitBytes(frame);
    const c = Math.floor((pos - frame.uOff) / unit);
    const start = frame.uOff + c * unit;
    return { id: `${f}:${c}`, frame: f, start, length: Math.min(unit, frame.uOff + frame.uSize - start) };
  }

  async decode(chunk: ZstdChunk): Promise<Buffer> {
    const cursor = this.takeCursor(chunk.frame, chunk.start);
    try {
      if (cursor.uPos < chunk.start) await cursor.skip(chunk.start - cursor.uPos);
      const out = Buffer.allocUnsafe(chunk.length);
      await cursor.decodeInto(out);
      return out;
    } catch (err) {
      this.dropCursor(cursor);
      throw err;
    } finally {
      cursor.busy = false;
      if (cursor.atEnd) this.dropCursor(cursor);
    }
  }

  /** The idle cursor in frame f furthest along but not past `start`, or a new one at the frame start. */
  private takeCursor(f: number, start: number): FrameCursor {
    let best: FrameCursor | undefined;
    for (const c of this.cursors) {
      if (!c.busy && c.frameNo === f && c.uPos <= start && (!best || c.uPos > best.uPos)) best = c;
    }
    if (!best) {
      best = new FrameCursor(this.src, f, this.frames[f]);
      this.cursors.push(best);
      if (this.cursors.length > MAX_CURSORS) {
        const idle = this.cursors.filter((c) => !c.busy && c !== best).sort((a, b) => a.lastUsed - b.lastUsed);
        if (idle.length) this.dropCursor(idle[0]);
      }
    }
    best.busy = true;
    best.lastUsed = ++this.useClock;
    return best;
  }

  private dropCursor(c: FrameCursor): void {
    this.cursors = this.cursors.filter((x) => x !== c);
  }

  /** Decodes [from, from + dst.length) front to back across frames (used to fill a spill file). */
  private seq: FrameCursor | undefined;
  private async decodeSequential(from: number, dst: Buffer): Promise<void> {
    let filled = 0;
    while (filled < dst.length) {
      const pos = from + filled;
      if (!this.seq || this.seq.uPos !== pos || this.seq.atEnd) {
        const f = lastAtOrBefore(this.frames, pos, (x) => x.uOff);
        this.seq = new FrameCursor(this.src, f, this.frames[f]);
        if (this.seq.uPos < pos) await this.seq.skip(pos - this.seq.uPos);
      }
      const frame = this.frames[this.seq.frameNo];
      const n = Math.min(dst.length - filled, frame.uOff + frame.uSize - pos);
      await this.seq.decodeInto(dst.subarray(filled, filled + n));
      filled += n;
    }
  }
}

// ---------------------------------------------------------------------------------------------

export function encodeZstdIndexBody(idx: ZstdSeekIndex, w: ByteWriter): void {
  w.u48(idx.compressedSize);
  w.u48(idx.uncompressedSize);
  w.u48(idx.trailingBytes);
  w.u32(idx.frames.length);
  for (const f of idx.frames) {
    w.u48(f.cOff);
    w.u48(f.cSize);
    w.u48(f.uOff);
    w.u48(f.uSize);
  }
}

export function decodeZstdIndexBody(r: ByteReader): ZstdSeekIndex {
  const compressedSize = r.u48();
  const uncompressedSize = r.u48();
  const trailingBytes = r.u48();
  const count = r.u32();
  const frames: ZstdFrame[] = [];
  let u = 0;
  let c = 0;
  for (let i = 0; i < count; i++) {
    const f = { cOff: r.u48(), cSize: r.u48(), uOff: r.u48(), uSize: r.u48() };
    if (f.uOff !== u || f.cOff < c || f.cOff + f.cSize > compressedSize || f.uSize === 0) {
      throw new Error(`seek index: zstd frame ${i} is inconsistent`);
    }
    u += f.uSize;
    c = f.cOff + f.cSize;
    frames.push(f);
  }
  if (u !== uncompressedSize) throw new Error('seek index: zstd frames do not add up to the uncompressed size');
  return { kind: 'zstd', compressedSize, uncompressedSize, trailingBytes, frames };
}
