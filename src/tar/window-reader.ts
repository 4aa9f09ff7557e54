import type { ScanSource } from '../io/byte-source';

/**
 * Forward reads for the tar scanner through one reusable window. A 512-byte header and the
 * small headers and files after it usually sit in one window, so a layer of small files costs a
 * syscall per window instead of one per header, while data larger than the window is jumped over
 * and never read. Positions only move forward, as a decompressor needs: a header straddling the
 * window's end is completed by sliding the window, never by reading backwards.
 */
export class WindowReader {
  private readonly window: Buffer;
  private start = 0;
  private length = 0;
  private readonly readSync?: ScanSource['readSync'];

  constructor(
    private readonly src: ScanSource,
    windowBytes = 32 * 1024,
  ) {
    this.window = Buffer.allocUnsafe(windowBytes);
    this.readSync = src.readSync?.bind(src);
  }

  private async fill(position: number): Promise<void> {
    const end = this.start + this.length;
    let keep = 0;
    if (position >= this.start && position < end) {
      keep = end - position;
      this.window.copy(this.window, 0, position - this.start, this.length);
    }
    const at = position + keep;
    const room = this.window.length - keep;
    const n = this.readSync ? this.readSync(this.window, keep, room, at) : await this.src.read(this.window, keep, room, at);
    this.start = position;
    this.length = keep + n;
  }

  private holds(position: number, length: number): boolean {
    return position >= this.start && position + length <= this.start + this.length;
  }

  /** A view of the 512 bytes at `position` (shorter at the end), valid until the next call. */
  async block(position: number): Promise<Buffer> {
    if (!this.holds(position, 512)) await this.fill(position);
    const from = position - this.start;
    return this.window.subarray(from, Math.min(from + 512, this.length));
  }

  /** A copy of `length` bytes at `position`, shorter only at the end of the stream. */
  async bytes(position: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const p = position + got;
      if (!this.holds(p, 1)) {
        await this.fill(p);
        if (!this.holds(p, 1)) break;
      }
      const n = Math.min(length - got, this.start + this.length - p);
      this.window.copy(out, got, p - this.start, p - this.start + n);
      got += n;
    }
    return out.subarray(0, got);
  }
}
