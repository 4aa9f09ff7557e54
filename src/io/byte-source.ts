import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';

/**
 * Random access to a run of bytes: the archive file, a blob inside it, or a decompressed layer.
 * Everything above the archive reads through this one shape, so a layer does not care whether
 * its bytes come straight from the file or out of a decompressor.
 */
export interface ByteSource {
  /** Total length in bytes. */
  readonly size: number;
  /**
   * Reads up to `length` bytes starting at `position` into `buf[offset..]` and resolves to the
   * number read; fewer than asked only at the end of the source.
   */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  /**
   * Same as `read`, blocking. Only file-backed sources offer it; the tar indexer uses it for
   * 512-byte header reads, where an async round trip per header would cost more than the read.
   * Never call it on a path inside a mount this process serves.
   */
  readSync?(buf: Buffer, offset: number, length: number, position: number): number;
  /**
   * Where these bytes sit in a plain file, when they do (an uncompressed layer in an
   * uncompressed archive): lets the FUSE read path issue one `fs.read` per request.
   */
  fileRange?(): { file: FileSource; start: number } | undefined;
}

/**
 * What a forward-only reader (a decompressor during its one indexing pass) offers: reads at
 * non-decreasing positions, and a size only once known.
 */
export type ScanSource = Pick<ByteSource, 'read' | 'readSync'> & { readonly size?: number };

/** An open file read with positioned reads (pread), never with a shared file cursor. */
export class FileSource implements ByteSource {
  /** Set once the file is seen changed in place: its bytes no longer match the index. */
  private staleReason?: string;

  private constructor(
    readonly path: string,
    private readonly handle: fsp.FileHandle,
    readonly size: number,
    readonly mtimeMs: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever (an OCI
    // layout folder is untrusted input and can hold one where a blob should be); it changes
    // nothing for regular files, and anything else is refused just below.
    const handle = await fsp.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error(`${path}: not a regular file`);
      return new FileSource(path, handle, st.size, st.mtimeMs);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  get fd(): number {
    return this.handle.fd;
  }

  get stale(): string | undefined {
    return this.staleReason;
  }

  fileRange(): { file: FileSource; start: number } {
    return { file: this, start: 0 };
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.staleReason) throw new Error(this.staleReason);
    const want = Math.max(0, Math.min(length, this.size - position));
    let done = 0;
    while (done < want) {
      const { bytesRead } = await this.handle.read(buf, offset + done, want - done, position + done);
      if (bytesRead === 0) {
        // The file shrank under us (replaced or truncated while mounted): never pretend it is zeros.
        throw new Error(`${this.path}: unexpected end of file at byte ${position + done} (file changed?)`);
      }
      done += bytesRead;
    }
    return done;
  }

  readSync(buf: Buffer, offset: number, length: number, position: number): number {
    const want = Math.max(0, Math.min(length, this.size - position));
    let done = 0;
    while (done < want) {
      const n = fs.readSync(this.handle.fd, buf, offset + done, want - done, position + done);
      if (n === 0) throw new Error(`${this.path}: unexpected end of file at byte ${position + done} (file changed?)`);
      done += n;
    }
    return done;
  }

  /**
   * Compares the open file with what it was when opened. A file changed in place can no longer
   * be trusted (reads fail from then on); a file removed or replaced by rename is still the same
   * bytes through our descriptor, which is only worth a note.
   */
  async checkUnchanged(): Promise<{ stale?: string; note?: string }> {
    if (this.staleReason) return { stale: this.staleReason };
    const st = await this.handle.stat();
    if (st.size !== this.size || st.mtimeMs !== this.mtimeMs) {
      this.staleReason = `${this.path} changed since it was opened (size ${this.size} -> ${st.size}); remount it`;
      return { stale: this.staleReason };
    }
    const named = await fsp.stat(this.path).catch(() => undefined);
    if (!named || named.ino !== st.ino) return { note: `${this.path} was removed or replaced; still serving the original bytes` };
    return {};
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A window [start, start+size) of another source: a blob inside the archive tar. */
export class SliceSource implements ByteSource {
  constructor(
    readonly parent: ByteSource,
    readonly start: number,
    readonly size: number,
  ) {}

  read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const want = Math.max(0, Math.min(length, this.size - position));
    if (want === 0) return Promise.resolve(0);
    return this.parent.read(buf, offset, want, this.start + position);
  }

  fileRange(): { file: FileSource; start: number } | undefined {
    const outer = this.parent.fileRange?.();
    return outer && { file: outer.file, start: outer.start + this.start };
  }

  get readSync(): ByteSource['readSync'] {
    const parentSync = this.parent.readSync?.bind(this.parent);
    if (!parentSync) return undefined;
    return (buf, offset, length, position) => {
      const want = Math.max(0, Math.min(length, this.size - position));
      return want === 0 ? 0 : parentSync(buf, offset, want, this.start + position);
    };
  }
}

/** Reads exactly `length` bytes at `position` or fails naming what was short. */
export async function readExactly(src: ByteSource, position: number, length: number, what = 'data'): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const n = await src.read(buf, 0, length, position);
  if (n !== length) throw new Error(`${what}: truncated (wanted ${length} bytes at ${position}, got ${n})`);
  return buf;
}
