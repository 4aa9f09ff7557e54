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
  /**
   * A reader for one front-to-back pass over these bytes (the index pass of a compressed layer),
   * when the source has a better way to stream than its random reads: a registry blob streams
   * it in bounded requests and keeps none of it (src/registry/blob-source.ts).
   */
  sequentialReader?(): ByteSource;
  /**
   * The bytes at `position`, up to `length` of them (fewer where the source's own buffer ends,
   * none only at its end), as a view of memory the source never changes again: a streaming
   * source hands out what it fetched instead of copying it into the caller's buffer.
   */
  readView?(position: number, length: number): Promise<Buffer>;
}

/**
 * What a forward-only reader (a decompressor during its one indexing pass) offers: reads at
 * non-decreasing positions, and a size only once known.
 */
export type ScanSource = Pick<ByteSource, 'read' | 'readSync'> & { readonly size?: number };

/** What identifies one state of the archive file: where it lives and when it last changed, to the nanosecond. */
interface FileStamp {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  nlink: bigint;
}

function stampOf(st: fs.BigIntStats): FileStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, nlink: st.nlink };
}

/**
 * What differs between two stamps, in words; undefined when they are the same. ctime counts:
 * a rewrite that puts the old mtime back (`cp -p`, `rsync --inplace -t`) still moves it. The one
 * ctime change let through is a change of the link count alone (the archive removed, replaced by
 * rename, or hard-linked): the bytes behind our descriptor are the same.
 */
function stampChange(was: FileStamp, now: FileStamp): string | undefined {
  if (was.dev !== now.dev || was.ino !== now.ino) return 'another file';
  if (was.size !== now.size) return `size ${was.size} -> ${now.size}`;
  if (was.mtimeNs !== now.mtimeNs) return 'modified';
  if (was.ctimeNs !== now.ctimeNs && was.nlink === now.nlink) return 'status changed';
  return undefined;
}

/**
 * An open file read with positioned reads (pread), never with a shared file cursor.
 *
 * The file is trusted only while it is the file that was indexed: every read checks, after its
 * bytes are in but before they are handed on, that the descriptor's stat (size, mtime and ctime
 * to the nanosecond) is what it was at open. A file overwritten in place (`cp other.tar live.tar`
 * keeps the inode; even at the same size the times move) fails the read instead of passing the
 * new bytes off as the old files, and every read after it.
 */
export class FileSource implements ByteSource {
  /** Set once the file is seen changed in place: its bytes no longer match the index. */
  private staleReason?: string;
  /** Called once, when the file is first seen changed (the mount server logs it). */
  onStale?: (reason: string) => void;

  private constructor(
    readonly path: string,
    private readonly handle: fsp.FileHandle,
    readonly size: number,
    readonly mtimeMs: number,
    private stamp: FileStamp,
  ) {}

  static async open(path: string): Promise<FileSource> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever (an OCI
    // layout folder is untrusted input and can hold one where a blob should be); it changes
    // nothing for regular files, and anything else is refused just below.
    const handle = await fsp.open(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile()) throw new Error(`${path}: not a regular file`);
      // mtimeMs as Node computes it for a plain stat (index cache keys are made of it).
      const mtimeMs = Number(st.mtimeNs / 1_000_000_000n) * 1e3 + Number(st.mtimeNs % 1_000_000_000n) / 1e6;
      return new FileSource(path, handle, Number(st.size), mtimeMs, stampOf(st));
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

  /**
   * The stamp reads are checked against, for a checker outside JS (the FUSE fork's native
   * reads): [dev, ino, size, mtime seconds, mtime nanoseconds, ctime seconds, ctime
   * nanoseconds, nlink], with the same rule as verifyUnchanged.
   */
  identity(): BigInt64Array {
    const split = (ns: bigint): [bigint, bigint] => {
      let sec = ns / 1_000_000_000n;
      let nsec = ns % 1_000_000_000n;
      if (nsec < 0n) {
        sec -= 1n;
        nsec += 1_000_000_000n;
      }
      return [sec, nsec];
    };
    const s = this.stamp;
    return BigInt64Array.from([BigInt.asIntN(64, s.dev), BigInt.asIntN(64, s.ino), s.size, ...split(s.mtimeNs), ...split(s.ctimeNs), s.nlink]);
  }

  fileRange(): { file: FileSource; start: number } {
    return { file: this, start: 0 };
  }

  /**
   * Whether the open file is still the one that was indexed: one fstat of our own descriptor
   * (a few microseconds; synchronous, so it also fits the FUSE fast path). Returns why it can no
   * longer be trusted, or undefined. Once changed it stays changed, even if the stat comes back.
   */
  verifyUnchanged(): string | undefined {
    if (this.staleReason) return this.staleReason;
    let change: string | undefined;
    try {
      const now = stampOf(fs.fstatSync(this.handle.fd, { bigint: true }));
      change = stampChange(this.stamp, now);
      // Only the link count moved (and ctime with it): compare with that from now on.
      if (!change && now.ctimeNs !== this.stamp.ctimeNs) this.stamp = now;
    } catch (err) {
      change = `cannot stat: ${(err as Error).message}`;
    }
    if (change) {
      this.staleReason = `${this.path} changed since it was opened (${change}); remount it`;
      this.onStale?.(this.staleReason);
    }
    return this.staleReason;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.staleReason) throw new Error(this.staleReason);
    const want = Math.max(0, Math.min(length, this.size - position));
    let done = 0;
    while (done < want) {
      const { bytesRead } = await this.handle.read(buf, offset + done, want - done, position + done);
      if (bytesRead === 0) {
        // The file shrank under us (replaced or truncated while mounted): never pretend it is zeros.
        throw new Error(this.verifyUnchanged() ?? `${this.path}: unexpected end of file at byte ${position + done} (file changed?)`);
      }
      done += bytesRead;
    }
    // The bytes are in: before anyone sees them, make sure they came from the indexed file.
    const stale = this.verifyUnchanged();
    if (stale) throw new Error(stale);
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
    const stale = this.verifyUnchanged();
    if (stale) return { stale };
    const named = await fsp.stat(this.path, { bigint: true }).catch(() => undefined);
    if (!named || named.ino !== this.stamp.ino || named.dev !== this.stamp.dev) return { note: `${this.path} was removed or replaced; still serving the original bytes` };
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
