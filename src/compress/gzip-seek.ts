/**
 * Random access into gzip streams (zlib's examples/zran.c design).
 *
 * Index pass (GzipSeekIndexBuilder): one forward inflate with zlib's Z_BLOCK (block-inflater.ts:
 * the project's addon, or pako where it is not built), which returns at every deflate block
 * boundary and reports in `data_type` whether it stopped at one (128), whether that was after
 * the final block (64), and how many bits of the last byte it took belong to the next block
 * (& 7). Every `spanBytes`
 * of output (default 2 MiB, chosen with bench/compress-spans.ts) the builder records a
 * checkpoint at such a boundary: compressed bit position, uncompressed offset, the preceding
 * 32 KiB of output of that member (the deflate window; stored raw-deflate compressed), the
 * compressed byte where the span ends, and the span's CRC-32. Node's own zlib binding cannot be
 * used for this pass: it exposes neither data_type nor inflatePrime, so it cannot tell where in a
 * byte a block ends; hence the addon.
 * Headers are parsed here (FEXTRA, FNAME, FCOMMENT, FHCRC checked), members are inflated raw and
 * each member's CRC-32 and ISIZE are checked (CRC via zlib.crc32 of each span, combined).
 * Every member starts with a checkpoint (empty window), so a span never crosses members.
 * After the last member: end of input, or bytes that do not start a gzip member (trailing
 * garbage, zero padding), which are ignored and counted in `trailingBytes`, like gzip(1) does.
 *
 * Random read (GzipRandomAccess): the span holding the offset is inflated by Node's native zlib
 * on the libuv thread pool (`zlib.inflateRaw` with `dictionary: window`), from its checkpoint to
 * the next one, and kept in a SpanCache. A checkpoint that is not on a byte boundary is
 * re-aligned without touching the compressed bytes: instead of shifting the whole span by 1-7
 * bits (inflatePrime does not exist in Node), a few bytes of *empty* deflate blocks whose bit
 * length is congruent to the shift (empty fixed blocks are 10 bits; an empty dynamic block can be
 * made any length mod 8) are put in front and merged into the first byte. Those blocks produce no
 * output and do not touch the window, so the real data decodes exactly as it would in place.
 * The decoded span must have the recorded length and CRC-32, so a changed or corrupt archive is
 * reported, never served.
 *
 * Costs (measured in bench/compress-spans.ts and bench/compressed.ts; figures in bench/README.md):
 * the index pass runs at zlib's speed with the addon (pako's, 3-5x slower, without); the index holds one compressed
 * 32 KiB window per span, so it shrinks as spans grow; a cold read inflates one span: spanBytes
 * plus at most one deflate block (zlib's blocks hold 16K symbols, so up to ~4 MiB more for
 * extremely compressible data; other encoders may write larger blocks, which then make larger
 * spans), so its latency grows with spanBytes.
 * Not supported: compression methods other than deflate (gzip has no others in use).
 */
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';
import type { ByteSource } from '../io/byte-source';
import { AFTER_LAST_BLOCK, AT_BLOCK_BOUNDARY, Z_BUF_ERROR, Z_OK, Z_STREAM_END, createBlockInflater, type BlockInflater } from './block-inflater';
import type { ByteReader, ByteWriter } from './byte-codec';
import { crc32Combine } from './crc';
import { ForwardPass } from './forward-pass';
import type {
  GzipCheckpoint,
  GzipSeekIndex,
  RandomAccessOptions,
  RandomAccessSource,
  SeekIndexBuilder,
  SeekIndexBuilderOptions,
} from './types';
import { UnitReader, lastAtOrBefore, type Unit, type UnitCodec } from './unit-reader';

/**
 * Default distance between checkpoints: the trade between cold-read latency (a cold read inflates
 * one whole span) and index size (one 32 KiB window per span), chosen with bench/compress-spans.ts
 * (figures in bench/README.md, "Span size").
 */
export const DEFAULT_SPAN_BYTES = 2 * 1024 * 1024;

const WINDOW = 32768;
const OUT_BYTES = 256 * 1024; // inflate output buffer; must be >= WINDOW
const IN_BYTES = 1024 * 1024;
// Output per producer step is bounded: deflate reaches ~1030:1, so 1 MiB of input could
// otherwise queue a GiB before the tar scanner gets to consume any of it (a decompression bomb).
const STEP_OUT_BYTES = 4 * OUT_BYTES;
const MAX_HEADER_FIELD = 1024 * 1024;

const deflateRawAsync = promisify(zlib.deflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;
const inflateRawAsync = promisify(zlib.inflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

interface PendingCheckpoint extends GzipCheckpoint {
  /** Index of the member it belongs to. */
  member: number;
}

export class GzipSeekIndexBuilder extends ForwardPass implements SeekIndexBuilder {
  private readonly spanBytes: number;
  private phase: 'header' | 'deflate' | 'trailer' | 'done' = 'header';
  private inflater: BlockInflater | undefined;
  private outBuf: Uint8Array = newOutBuf();
  /** Where the next output goes in outBuf. */
  private outPos = 0;
  private prevOutBuf: Uint8Array | undefined;
  private out = 0;
  private members = 0;
  private memberCOff = 0;
  private memberOut = 0;
  private memberCrc = 0;
  private spanCrc = 0;
  private trailing = 0;
  private readonly cps: PendingCheckpoint[] = [];
  private readonly jobs: Promise<void>[] = [];
  private jobError: unknown;

  constructor(
    private readonly src: ByteSource,
    opts: SeekIndexBuilderOptions = {},
  ) {
    super('gzip', src, IN_BYTES, opts.onProgress);
    this.spanBytes = Math.max(64 * 1024, Math.floor(opts.spanBytes ?? DEFAULT_SPAN_BYTES));
  }

  async abort(): Promise<void> {
    this.stop();
    await Promise.all(this.jobs);
  }

  async finish(): Promise<GzipSeekIndex> {
    await this.drain();
    await Promise.all(this.jobs);
    if (this.jobError !== undefined) throw this.jobError;
    const checkpoints: GzipCheckpoint[] = [];
    for (let i = 0; i < this.cps.length; i++) {
      const c = this.cps[i];
      const end = i + 1 < this.cps.length ? this.cps[i + 1].out : this.out;
      if (end === c.out) continue; // empty member: no span
      checkpoints.push({ out: c.out, bitPos: c.bitPos, inEnd: c.inEnd, crc: c.crc, windowLen: c.windowLen, window: c.window });
    }
    return {
      kind: 'gzip',
      compressedSize: this.src.size,
      uncompressedSize: this.out,
      spanBytes: this.spanBytes,
      members: this.members,
      trailingBytes: this.trailing,
      checkpoints,
    };
  }

  protected async produce(): Promise<boolean> {
    switch (this.phase) {
      case 'header': {
        if (!(await this.parseHeader())) {
          this.phase = 'done';
          return false;
        }
        this.startMember();
        this.phase = 'deflate';
        return true;
      }
      case 'deflate': {
        if (this.cur.avail === 0 && !(await this.cur.fill())) {
          throw new Error(
            `gzip: truncated input: the stream ends at compressed offset ${this.cur.abs} inside the member that starts ` +
              `at compressed offset ${this.memberCOff} (after ${this.out} uncompressed bytes)`,
          );
        }
        if (this.inflateStep()) {
          this.closeSpan(this.cur.abs);
          this.phase = 'trailer';
        }
        return true;
      }
      case 'trailer': {
        const at = this.cur.abs;
        if (!(await this.cur.ensure(8))) {
          throw new Error(`gzip: truncated input: member trailer at compressed offset ${at} is incomplete`);
        }
        const crc = this.cur.buf.readUInt32LE(this.cur.off);
        const isize = this.cur.buf.readUInt32LE(this.cur.off + 4);
        const len = this.out - this.memberOut;
        if (crc !== this.memberCrc) {
          throw new Error(
            `gzip: corrupt data: CRC-32 mismatch for the member at compressed offset ${this.memberCOff} ` +
              `(trailer at ${at} says ${hex(crc)}, data gives ${hex(this.memberCrc)})`,
          );
        }
        if (isize !== len % 2 ** 32) {
          throw new Error(`gzip: corrupt data: length mismatch for the member at compressed offset ${this.memberCOff} (trailer at ${at})`);
        }
        this.cur.off += 8;
        this.phase = 'header';
        return true;
      }
      case 'done':
        return false;
    }
  }

  /** Parses a member header; false at the end of the stream (or trailing non-gzip bytes). */
  private async parseHeader(): Promise<boolean> {
    const cur = this.cur;
    const start = cur.abs;
    if (!(await cur.ensure(1))) return false;
    if (!(await cur.ensure(2)) || cur.buf[cur.off] !== 0x1f || cur.buf[cur.off + 1] !== 0x8b) {
      if (this.members === 0) throw new Error(`gzip: not a gzip stream (no gzip magic at compressed offset ${start})`);
      this.trailing = cur.size - start;
      return false;
    }
    const truncated = () => new Error(`gzip: truncated input: member header at compressed offset ${start} is incomplete`);
    if (!(await cur.ensure(10))) throw truncated();
    const method = cur.buf[cur.off + 2];
    const flags = cur.buf[cur.off + 3];
    if (method !== 8) throw new Error(`gzip: unsupported compression method ${method} in member header at compressed offset ${start}`);
    if (flags & 0xe0) throw new Error(`gzip: corrupt member header at compressed offset ${start} (reserved flags ${hex(flags)})`);
    let p = 10;
    if (flags & 4) {
      if (!(await cur.ensure(p + 2))) throw truncated();
      const xlen = cur.buf.readUInt16LE(cur.off + p);
      p += 2 + xlen;
      if (!(await cur.ensure(p))) throw truncated();
    }
    for (const bit of [8, 16]) {
      if (!(flags & bit)) continue;
      for (;;) {
        const z = cur.buf.indexOf(0, cur.off + p);
        if (z >= 0) {
          p = z - cur.off + 1;
          break;
        }
        p = cur.avail;
        if (p > MAX_HEADER_FIELD) throw new Error(`gzip: corrupt member header at compressed offset ${start} (unterminated name or comment)`);
        if (!(await cur.ensure(p + 1))) throw truncated();
      }
    }
    if (flags & 2) {
      if (!(await cur.ensure(p + 2))) throw truncated();
      const want = cur.buf.readUInt16LE(cur.off + p);
      const got = zlib.crc32(cur.buf.subarray(cur.off, cur.off + p)) & 0xffff;
      if (want !== got) throw new Error(`gzip: corrupt member header at compressed offset ${start} (header CRC mismatch)`);
      p += 2;
    }
    cur.off += p;
    this.memberCOff = start;
    return true;
  }

  private startMember(): void {
    if (!this.inflater) this.inflater = createBlockInflater();
    else this.inflater.reset();
    this.members++;
    this.memberOut = this.out;
    this.memberCrc = 0;
    this.spanCrc = 0;
    this.cps.push({
      member: this.members - 1,
      out: this.out,
      bitPos: 8 * this.cur.abs,
      inEnd: 0,
      crc: 0,
      windowLen: 0,
      window: Buffer.alloc(0),
    });
  }

  /** Inflates the input held by the cursor; true when the member's deflate data ended. */
  private inflateStep(): boolean {
    const inf = this.inflater!;
    const cur = this.cur;
    const outAtStart = this.out;
    for (;;) {
      if (this.out - outAtStart >= STEP_OUT_BYTES) return false; // the rest of the input stays in the cursor
      if (this.outPos === OUT_BYTES) this.rotateOutput();
      inf.step(cur.buf, cur.off, cur.avail, this.outBuf, this.outPos, OUT_BYTES - this.outPos);
      const ret = inf.ret;
      cur.off += inf.used;
      if (inf.made > 0) {
        this.emit(this.outPos, this.outPos + inf.made);
        this.outPos += inf.made;
      }
      if (ret === Z_STREAM_END) return true;
      if (ret !== Z_OK && ret !== Z_BUF_ERROR) {
        throw new Error(
          `gzip: corrupt data near compressed offset ${cur.abs} (member at ${this.memberCOff}, uncompressed offset ` +
            `${this.out}): ${inf.message() ?? `inflate error ${ret}`}`,
        );
      }
      const dt = inf.dataType;
      if (dt & AT_BLOCK_BOUNDARY && !(dt & AFTER_LAST_BLOCK) && this.out - this.cps[this.cps.length - 1].out >= this.spanBytes) {
        this.checkpoint(8 * cur.abs - (dt & 7));
      }
      if (cur.avail === 0) return false;
      if (inf.used === 0 && inf.made === 0) {
        throw new Error(`gzip: inflate made no progress at compressed offset ${cur.abs}`);
      }
    }
  }

  private emit(from: number, to: number): void {
    const piece = Buffer.from(this.outBuf.buffer, this.outBuf.byteOffset + from, to - from);
    // Never for an empty piece: zlib.crc32 of one was seen answering 0 (see index-cache.ts).
    if (piece.length) this.spanCrc = zlib.crc32(piece, this.spanCrc);
    this.out += piece.length;
    this.q.push(piece);
  }

  private rotateOutput(): void {
    this.prevOutBuf = this.outBuf;
    this.outBuf = newOutBuf();
    this.outPos = 0;
  }

  /** Ends the current span at compressed byte `inEnd`, folding its CRC into the member's. */
  private closeSpan(inEnd: number): void {
    const cp = this.cps[this.cps.length - 1];
    cp.inEnd = inEnd;
    cp.crc = this.spanCrc;
    this.memberCrc = crc32Combine(this.memberCrc, this.spanCrc, this.out - cp.out);
    this.spanCrc = 0;
  }

  private checkpoint(bitPos: number): void {
    this.closeSpan(Math.ceil(bitPos / 8));
    const wlen = Math.min(WINDOW, this.out - this.memberOut);
    const have = this.outPos;
    let window: Buffer;
    if (have >= wlen) {
      window = Buffer.from(this.outBuf.subarray(have - wlen, have));
    } else {
      const prev = this.prevOutBuf!;
      window = Buffer.concat([prev.subarray(prev.length - (wlen - have)), this.outBuf.subarray(0, have)]);
    }
    const cp: PendingCheckpoint = {
      member: this.members - 1,
      out: this.out,
      bitPos,
      inEnd: 0,
      crc: 0,
      windowLen: wlen,
      window: Buffer.alloc(0),
    };
    this.cps.push(cp);
    // Compressing the window runs on the thread pool, beside the JS inflate; level 1 because
    // the main thread's share of each job (stream setup) grows with the level, and the pass is
    // main-thread bound (bench/registry.ts), while the index grows only a little.
    this.jobs.push(
      deflateRawAsync(window, { level: 1 }).then(
        (z) => {
          cp.window = z;
        },
        (err: unknown) => {
          this.jobError ??= err;
        },
      ),
    );
  }
}

/**
 * Not zeroed: only bytes the inflate wrote are ever handed on (clearing 256 KiB per buffer was
 * 3% of a pass's profile).
 */
const newOutBuf = (): Uint8Array => Buffer.allocUnsafe(OUT_BYTES);

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

// ---------------------------------------------------------------------------------------------
// Byte re-alignment: empty deflate blocks of a chosen bit length (see the top of the file).

class BitWriter {
  readonly bytes: number[] = [];
  bits = 0;
  /** Writes `n` bits of `value`, least significant first (deflate's order for header fields). */
  put(value: number, n: number): void {
    for (let i = 0; i < n; i++) {
      if ((this.bits & 7) === 0) this.bytes.push(0);
      this.bytes[this.bytes.length - 1] |= ((value >>> i) & 1) << (this.bits & 7);
      this.bits++;
    }
  }
  /** Writes a Huffman code of `len` bits, most significant bit first. */
  code(code: number, len: number): void {
    for (let i = len - 1; i >= 0; i--) this.put((code >>> i) & 1, 1);
  }
}

/** Empty, non-final fixed-Huffman block: 3 header bits + the 7-bit end-of-block code = 10 bits. */
function emptyFixedBlock(w: BitWriter): void {
  w.put(0, 1); // BFINAL
  w.put(1, 2); // BTYPE 01
  w.code(0, 7); // 256 = 0000000
}

/**
 * Empty, non-final dynamic-Huffman block of 40 + 3*hclen + 2*zeros bits: literal/length code
 * {0: 1 bit, 256: 1 bit}, no distance codes, code-length code {18: '0', 0: '10', 1: '11'};
 * `zeros` of the 255 zero lengths are sent one by one, the rest as two runs of symbol 18.
 */
function emptyDynamicBlock(w: BitWriter, hclen: 18 | 19, zeros: number): void {
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const clLen: Record<number, number> = { 18: 1, 0: 2, 1: 2 };
  w.put(0, 1); // BFINAL
  w.put(2, 2); // BTYPE 10
  w.put(0, 5); // HLIT: 257 codes
  w.put(0, 5); // HDIST: 1 code
  w.put(hclen - 4, 4);
  for (let i = 0; i < hclen; i++) w.put(clLen[order[i]] ?? 0, 3);
  const sym0 = () => w.code(0b10, 2);
  const sym1 = () => w.code(0b11, 2);
  const run18 = (n: number) => {
    w.code(0, 1);
    w.put(n - 11, 7);
  };
  sym1(); // literal 0: length 1
  for (let i = 0; i < zeros; i++) sym0();
  const rest = 255 - zeros; // literals 1..255: length 0
  run18(138);
  run18(rest - 138);
  sym1(); // 256 (end of block): length 1
  sym0(); // the one distance code: length 0 (none)
  w.code(1, 1); // end of block: code '1' (literal 0 is '0')
}

let prefixes: Buffer[] | undefined;

/**
 * For shift s in 1..7: bytes whose first 8*(len-1)+s bits are empty deflate blocks. Put the first
 * len-1 bytes before the compressed data and merge the low s bits of the last one into the first
 * compressed byte (whose low s bits belonged to the previous block): the stream is then aligned.
 */
export function alignmentPrefix(shift: number): Buffer {
  if (!prefixes) {
    prefixes = [];
    for (let s = 1; s < 8; s++) {
      const w = new BitWriter();
      if (s % 2 === 0) {
        for (let i = 0; i < s / 2; i++) emptyFixedBlock(w); // 10 bits each: 2, 4, 6 mod 8
      } else {
        emptyDynamicBlock(w, 19, (s - 1) / 2); // 97 + 2z bits: 1, 3, 5, 7 mod 8
      }
      if ((w.bits & 7) !== s) throw new Error(`gzip: internal error building alignment prefix for shift ${s}`);
      prefixes[s] = Buffer.from(w.bytes);
    }
  }
  return prefixes[shift];
}

// ---------------------------------------------------------------------------------------------

/** A span between two checkpoints: the unit a cold read inflates. */
interface GzipSpan extends Unit {
  readonly span: number;
}

export class GzipRandomAccess implements RandomAccessSource, UnitCodec<GzipSpan> {
  readonly name = 'gzip';
  readonly size: number;
  private readonly cps: GzipCheckpoint[];
  private readonly units: UnitReader<GzipSpan>;

  constructor(
    private readonly src: ByteSource,
    idx: GzipSeekIndex,
    opts: RandomAccessOptions = {},
  ) {
    this.size = idx.uncompressedSize;
    this.cps = idx.checkpoints;
    let largestUnit = 0;
    for (let s = 0; s < this.cps.length; s++) largestUnit = Math.max(largestUnit, this.spanEnd(s) - this.cps[s].out);
    // Inflating runs on the thread pool, so a sequential reader gains from reading ahead.
    this.units = new UnitReader(this, { cache: opts.cache, cacheKey: opts.cacheKey, largestUnit, readAhead: opts.readAhead });
  }

  /** Nothing to release (spans stay in the shared cache until evicted); here for symmetry with zstd. */
  async close(): Promise<void> {}

  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.units.read(buf, offset, length, position);
  }

  private spanEnd(s: number): number {
    return s + 1 < this.cps.length ? this.cps[s + 1].out : this.size;
  }

  unitAt(pos: number): GzipSpan {
    const s = lastAtOrBefore(this.cps, pos, (c) => c.out);
    return { id: String(s), span: s, start: this.cps[s].out, length: this.spanEnd(s) - this.cps[s].out };
  }

  decode(unit: GzipSpan): Promise<Buffer> {
    return this.inflateSpan(unit.span);
  }

  private async inflateSpan(s: number): Promise<Buffer> {
    const cp = this.cps[s];
    const spanLen = this.spanEnd(s) - cp.out;
    const byteOff = Math.floor(cp.bitPos / 8);
    const shift = cp.bitPos - byteOff * 8;
    const cLen = cp.inEnd - byteOff;
    const where = `span at compressed offset ${byteOff} (uncompressed offset ${cp.out})`;
    const prefix = shift ? alignmentPrefix(shift) : undefined;
    const lead = prefix ? prefix.length - 1 : 0;
    const input = Buffer.allocUnsafe(lead + cLen);
    const n = await this.src.read(input, lead, cLen, byteOff);
    if (n !== cLen) throw new Error(`gzip: truncated input: ${where} needs ${cLen} bytes, got ${n}`);
    if (prefix) {
      prefix.copy(input, 0, 0, lead);
      const mask = (1 << shift) - 1;
      input[lead] = (prefix[lead] & mask) | (input[lead] & ~mask & 0xff);
    }
    const opts: zlib.ZlibOptions = {
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      chunkSize: Math.max(64 * 1024, spanLen + 1024),
    };
    if (cp.windowLen > 0) {
      let dict: Buffer;
      try {
        dict = zlib.inflateRawSync(cp.window);
      } catch (err) {
        throw new Error(`gzip: seek index is corrupt: bad window for ${where}: ${(err as Error).message}`);
      }
      if (dict.length !== cp.windowLen) throw new Error(`gzip: seek index is corrupt: bad window for ${where}`);
      opts.dictionary = dict;
    }
    let out: Buffer;
    try {
      out = await inflateRawAsync(input, opts);
    } catch (err) {
      throw new Error(`gzip: corrupt data in ${where}: ${(err as Error).message}`);
    }
    if (out.length < spanLen) {
      throw new Error(`gzip: ${where} decoded to ${out.length} bytes instead of ${spanLen} (archive changed or corrupt)`);
    }
    const data = out.length === spanLen ? out : out.subarray(0, spanLen);
    if (zlib.crc32(data) !== cp.crc) {
      throw new Error(`gzip: CRC-32 mismatch in ${where} (archive changed or corrupt)`);
    }
    return data;
  }
}

// ---------------------------------------------------------------------------------------------
// Serialization of the gzip index body (framing and checksum in codecs.ts).

export function encodeGzipIndexBody(idx: GzipSeekIndex, w: ByteWriter): void {
  w.u48(idx.compressedSize);
  w.u48(idx.uncompressedSize);
  w.u32(idx.spanBytes);
  w.u32(idx.members);
  w.u48(idx.trailingBytes);
  w.u32(idx.checkpoints.length);
  for (const c of idx.checkpoints) {
    w.u48(c.out);
    w.u48(Math.floor(c.bitPos / 8));
    w.u8(c.bitPos % 8);
    w.u48(c.inEnd);
    w.u32(c.crc);
    w.u32(c.windowLen);
    w.u32(c.window.length);
    w.bytes(c.window);
  }
}

export function decodeGzipIndexBody(r: ByteReader): GzipSeekIndex {
  const compressedSize = r.u48();
  const uncompressedSize = r.u48();
  const spanBytes = r.u32();
  const members = r.u32();
  const trailingBytes = r.u48();
  const count = r.u32();
  const checkpoints: GzipCheckpoint[] = [];
  let last = -1;
  for (let i = 0; i < count; i++) {
    const out = r.u48();
    const byte = r.u48();
    const bits = r.u8();
    const inEnd = r.u48();
    const crc = r.u32();
    const windowLen = r.u32();
    const window = r.bytes(r.u32());
    if (out <= last || out >= uncompressedSize || bits > 7 || inEnd > compressedSize || inEnd < byte || windowLen > WINDOW) {
      throw new Error(`seek index: gzip checkpoint ${i} is inconsistent`);
    }
    last = out;
    checkpoints.push({ out, bitPos: byte * 8 + bits, inEnd, crc, windowLen, window });
  }
  if (uncompressedSize > 0 && (checkpoints.length === 0 || checkpoints[0].out !== 0)) {
    throw new Error('seek index: gzip index does not start at offset 0');
  }
  return { kind: 'gzip', compressedSize, uncompressedSize, spanBytes, members, trailingBytes, checkpoints };
}
