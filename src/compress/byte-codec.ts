/**
 * Little-endian binary writer and reader for the seek index's on-disk form (codecs.ts frames it,
 * each codec writes its own body). Offsets are stored in 48 bits: enough for any layer, a quarter
 * smaller than 64.
 */

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
