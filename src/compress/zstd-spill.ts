/**
 * The decompressed copy of a zstd stream ("spill file"), for streams whose frames are too large
 * to re-decode on every cold read. It is written front to back under a private name,
 * `${path}.partial.<pid>`, and renamed to `path` only once complete, so nobody finds a half
 * copy under the real name; the path must be unique per blob (name it by digest).
 *
 * Two writers fill it. The index pass, which decompresses everything anyway, appends as it goes
 * (`append`, then `publish` or `discard`). A reader that finds no complete copy extends it on
 * demand (`read` first decodes everything before what it serves, once). Its own I/O failures are
 * SpillIOErrors: callers drop the copy and decode frames instead.
 */
import { promises as fsp } from 'node:fs';

export class SpillIOError extends Error {}

/** How a reader extends an incomplete copy: the stream's size and a sequential decoder. */
export interface SpillFiller {
  total: number;
  decode(from: number, dst: Buffer): Promise<void>;
}

const FILL_STEP = 8 * 1024 * 1024;

export class SpillFile {
  private readonly partial: string;
  private fh: fsp.FileHandle | undefined;
  private written = 0;
  private complete = false;
  private opening: Promise<void> | undefined;
  private filling: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly filler?: SpillFiller,
  ) {
    this.partial = `${path}.partial.${process.pid}`;
  }

  /** Bytes in the copy so far. */
  get size(): number {
    return this.written;
  }

  /** Writes `data` after what the copy holds, creating the partial file on first use. */
  async append(data: Buffer): Promise<void> {
    try {
      this.fh ??= await fsp.open(this.partial, 'w+');
      let done = 0;
      while (done < data.length) {
        done += (await this.fh.write(data, done, data.length - done, this.written + done)).bytesWritten;
      }
    } catch (err) {
      throw new SpillIOError((err as Error).message);
    }
    this.written += data.length;
  }

  /** Gives the complete copy its real name; the open handle stays usable for reads. */
  async publish(): Promise<void> {
    try {
      this.fh ??= await fsp.open(this.partial, 'w+');
      await fsp.rename(this.partial, this.path);
    } catch (err) {
      throw new SpillIOError((err as Error).message);
    }
    this.complete = true;
  }

  /** Closes the copy and deletes it if it was never published. */
  async discard(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    if (!this.complete) await fsp.unlink(this.partial).catch(() => undefined);
  }

  /** Waits for a fill in progress and closes the handle; later reads fail with SpillIOError. */
  async close(): Promise<void> {
    await this.filling;
    await this.opening?.catch(() => undefined);
    const fh = this.fh;
    this.fh = undefined;
    this.opening = Promise.reject(new SpillIOError('spill file closed'));
    this.opening.catch(() => undefined);
    await fh?.close();
  }

  /**
   * Reader side: serves [position, position + length) with pread, first extending the copy that
   * far (decode errors are real errors, not SpillIOErrors). A complete copy of the right size
   * already at `path` (a finished pass or an earlier reader) is used as it is.
   */
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    this.opening ??= this.openForReading();
    await this.opening;
    const end = position + length;
    if (this.written < end) {
      const run = this.filling.then(() => this.fillTo(end));
      this.filling = run.catch(() => undefined);
      await run;
    }
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = (await this.fh!.read(buf, offset + done, length - done, position + done)).bytesRead;
      } catch (err) {
        throw new SpillIOError((err as Error).message);
      }
      if (n === 0) throw new SpillIOError(`spill file ended early at byte ${position + done}`);
      done += n;
    }
    return done;
  }

  private async openForReading(): Promise<void> {
    const total = this.filler!.total;
    try {
      const st = await fsp.stat(this.path).catch(() => undefined);
      if (st && st.isFile() && st.size === total) {
        this.fh = await fsp.open(this.path, 'r');
        this.written = total;
        this.complete = true;
        return;
      }
      this.fh = await fsp.open(this.partial, 'w+');
    } catch (err) {
      throw new SpillIOError((err as Error).message);
    }
  }

  private async fillTo(end: number): Promise<void> {
    const { total, decode } = this.filler!;
    while (this.written < end) {
      const buf = Buffer.allocUnsafe(Math.min(FILL_STEP, total - this.written));
      await decode(this.written, buf);
      await this.append(buf);
    }
    if (this.written === total && !this.complete) await this.publish().catch(() => undefined); // still usable through fh
  }
}
