import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { crc32 } from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ByteSource } from '../io/byte-source';

/*
 * The on-disk index cache. One file per cached thing (a layer's tar index and seek index, or a
 * compressed archive's outer index), named by a key derived from what the thing *is*: the
 * layer's digest, its stored size and a hash of its first and last 64 KiB, so the same layer
 * in another archive hits, and a changed file misses. Every file carries a CRC-32 of its own
 * bytes; one that does not check out is ignored and rebuilt. (The checksum guards against torn
 * or damaged files, not against an adversary: the folder is the user's own, and what may be
 * trusted is decided by the keys. A CRC-32 is checked at several GB/s, a SHA-256 of the same
 * tens of MiB took a noticeable part of a warm mount.) Writes go to a temp file and are
 * renamed into place, so a reader never sees half a file.
 */

// 3: a CRC-32 trailer instead of a SHA-256 one.
const MAGIC = Buffer.from('OCIMCACHE3\n');
const SAMPLE = 64 * 1024;

export interface CacheEntry {
  meta: Record<string, unknown>;
  sections: Buffer[];
  /** The file's checksum (set by get and encodeEntry): names these exact bytes for entries built from them. */
  sum?: number;
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ocimount');
}

/** sha256 of a source's first and last 64 KiB and its size: cheap, and changes when the content does. */
export async function sampleDigest(src: ByteSource): Promise<string> {
  const hash = createHash('sha256');
  const head = Buffer.alloc(Math.min(SAMPLE, src.size));
  await src.read(head, 0, head.length, 0);
  hash.update(head);
  const tailLen = Math.min(SAMPLE, Math.max(0, src.size - head.length));
  if (tailLen > 0) {
    const tail = Buffer.alloc(tailLen);
    await src.read(tail, 0, tailLen, src.size - tailLen);
    hash.update(tail);
  }
  hash.update(String(src.size));
  return hash.digest('hex');
}

export function cacheKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify({ format: MAGIC.toString().trim(), ...parts })).digest('hex');
}

/**
 * An entry as the pieces of its file, in order, and the file's checksum. Kept as pieces (the
 * sections are the caller's own buffers) so that storing an index of millions of entries never
 * holds a second and third copy of it in memory.
 */
export function encodeEntryParts(entry: CacheEntry): { parts: Buffer[]; sum: number } {
  const meta = Buffer.from(JSON.stringify(entry.meta));
  const head = Buffer.alloc(8);
  head.writeUInt32LE(meta.length, 0);
  head.writeUInt32LE(entry.sections.length, 4);
  const lengths = Buffer.alloc(8 * entry.sections.length);
  entry.sections.forEach((s, i) => lengths.writeBigUInt64LE(BigInt(s.length), i * 8));
  const body = [MAGIC, head, meta, lengths, ...entry.sections];
  // Empty pieces are skipped: Node 20's zlib.crc32 of an empty buffer was seen answering 0
  // instead of the running value (after the pieces had gone through writev; the test of many
  // sections caught it, a standalone loop does not reproduce it).
  const sum = body.reduce((crc, part) => (part.length ? crc32(part, crc) : crc), 0);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(sum, 0);
  return { parts: [...body, trailer], sum };
}

export function encodeEntry(entry: CacheEntry): Buffer {
  return Buffer.concat(encodeEntryParts(entry).parts);
}

/** The checksum an encoded entry carries (its last 4 bytes). */
export function entrySum(encoded: Buffer): number {
  return encoded.readUInt32LE(encoded.length - 4);
}

export function decodeEntry(buf: Buffer): CacheEntry {
  if (buf.length < MAGIC.length + 8 + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a cache file');
  const body = buf.subarray(0, buf.length - 4);
  const sum = entrySum(buf);
  if (crc32(body) !== sum) throw new Error('checksum mismatch');
  let at = MAGIC.length;
  const metaLen = body.readUInt32LE(at);
  const count = body.readUInt32LE(at + 4);
  at += 8;
  const meta = JSON.parse(body.toString('utf8', at, at + metaLen)) as Record<string, unknown>;
  at += metaLen;
  const lengths = Array.from({ length: count }, (_, i) => Number(body.readBigUInt64LE(at + i * 8)));
  at += 8 * count;
  const sections = lengths.map((n) => {
    const s = body.subarray(at, at + n);
    at += n;
    return s;
  });
  if (at !== body.length) throw new Error('cache file has the wrong length');
  return { meta, sections, sum };
}

/**
 * `mkdir -p`, one level at a time. Node's own recursive mkdir spins forever where a parent can
 * never be made (under /proc, it keeps getting ENOENT and retrying); this one fails.
 */
export async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; ) {
    try {
      const st = await fs.promises.stat(d);
      if (!st.isDirectory()) throw Object.assign(new Error(`${d} is not a directory`), { code: 'ENOTDIR' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(d);
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  for (const d of missing.reverse()) {
    try {
      await fs.promises.mkdir(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

export class IndexCache {
  /** Set once writing has failed: the cache is then read-only for this run, and said so once. */
  private unwritable?: string;
  /** Set by writeBehind(): put() returns once the entry is encoded, its file written meanwhile. */
  private behind?: Set<Promise<void>>;

  constructor(
    readonly dir: string,
    /** Where damaged entries are reported (the CLI prints them as cache warnings). */
    readonly log: (message: string) => void = () => undefined,
  ) {}

  /** `kind` is the file's suffix: `idx` for indexes, `tree` for merged-tree snapshots. */
  private file(key: string, kind: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.${kind}`);
  }

  /**
   * The entry under `key`, or undefined when absent, unreadable or corrupt (then removed). Each
   * section comes in a buffer of its own (see readEntryFile), so decoders may keep views of them.
   */
  async get(key: string, kind = 'idx'): Promise<CacheEntry | undefined> {
    const file = this.file(key, kind);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch {
      return undefined;
    }
    try {
      return await readEntryFile(fh);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== undefined) return undefined; // unreadable, not corrupt
      // Said the way a whole read says it (the checksum first, as before pieces), when it can be.
      try {
        decodeEntry(await fs.promises.readFile(file));
      } catch (whole) {
        err = whole;
      }
      this.log(`cache: ${file}: ${(err as Error).message}; rebuilding it`);
      await fs.promises.rm(file, { force: true }).catch(() => undefined);
      return undefined;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Whether an entry is stored under `key` now (it may still turn out corrupt when read). */
  has(key: string, kind = 'idx'): boolean {
    return fs.existsSync(this.file(key, kind));
  }

  /**
   * The entry under `key` read whole and synchronously, for a process that drops what it can
   * read back later (ImageView.releaseLayerPaths); throws when it is missing or corrupt.
   * Never call it on a path below the process's own mountpoint.
   */
  getSync(key: string, kind = 'idx'): CacheEntry {
    return decodeEntry(fs.readFileSync(this.file(key, kind)));
  }

  /**
   * Stores atomically and returns the entry's checksum (also when the write failed: it names
   * the bytes, which the caller has in memory); a cache that cannot be written is a warning,
   * never a failure.
   */
  async put(key: string, entry: CacheEntry, kind = 'idx'): Promise<number> {
    const { parts, sum } = encodeEntryParts(entry);
    if (this.unwritable !== undefined) return sum;
    if (this.behind) {
      const writing = this.write(key, kind, parts).finally(() => this.behind?.delete(writing));
      this.behind.add(writing);
      return sum;
    }
    await this.write(key, kind, parts);
    return sum;
  }

  /**
   * From now on put() does not wait for its file: a mount is serving before its indexes are on
   * disk (a cold mount's last ~50-100 ms were these writes). flush() waits for them; until then
   * has() and get() may not see an entry put.
   */
  writeBehind(): void {
    this.behind ??= new Set();
  }

  /** Resolves once every file put() started is written (or has failed, said as for put()). */
  async flush(): Promise<void> {
    while (this.behind?.size) await Promise.all(this.behind);
  }

  private async write(key: string, kind: string, parts: Buffer[]): Promise<void> {
    const file = this.file(key, kind);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await makeDirs(path.dirname(file));
      await writeParts(tmp, parts);
      await fs.promises.rename(tmp, file);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      // A cache folder that cannot be made or written fails the same way for every layer: one
      // warning for the run, not one per layer.
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'EROFS' ? 'read-only file system' : e.code === 'ENOSPC' ? 'no space left' : e.message.replace(/^\w+: /, '');
      // Layers are indexed concurrently: several writes can fail before the first says so.
      if (this.unwritable !== undefined) return;
      this.unwritable = why;
      this.log(`cache: cannot write to ${this.dir} (${why}): layer indexes are not kept for the next run; --cache-dir DIR chooses another folder, --no-cache turns the cache off`);
    }
  }
}

/**
 * Reads a cache file piece by piece: every section into a buffer of exactly its size (its own
 * memory, not a slice of the file's), the checksum computed as the pieces arrive. A whole-file
 * read followed by decoders' copies held each index twice at the moment of a mount's peak.
 * Throws an error without `code` when the file is not a well-formed entry.
 */
async function readEntryFile(fh: fs.promises.FileHandle): Promise<CacheEntry> {
  const size = (await fh.stat()).size;
  let at = 0;
  let crc = 0;
  const take = async (n: number, checked = true): Promise<Buffer> => {
    if (n < 0 || at + n > size) throw new Error('cache file has the wrong length');
    // Not from Node's shared pool: a section must own its memory (decoders keep views of it).
    const b = Buffer.allocUnsafeSlow(n);
    for (let done = 0; done < n; ) {
      const { bytesRead } = await fh.read(b, done, n - done, at + done);
      if (bytesRead === 0) throw new Error('cache file has the wrong length');
      done += bytesRead;
    }
    at += n;
    if (checked && n > 0) crc = crc32(b, crc);
    return b;
  };
  if (size < MAGIC.length + 8 + 4) throw new Error('not a cache file');
  if (!(await take(MAGIC.length)).equals(MAGIC)) throw new Error('not a cache file');
  const head = await take(8);
  const metaLen = head.readUInt32LE(0);
  const count = head.readUInt32LE(4);
  if (metaLen + 8 * count > size) throw new Error('cache file has the wrong length');
  const metaBytes = await take(metaLen);
  const lengths = await take(8 * count);
  const sizes = Array.from({ length: count }, (_, i) => Number(lengths.readBigUInt64LE(i * 8)));
  if (MAGIC.length + 8 + metaLen + 8 * count + sizes.reduce((a, b) => a + b, 0) + 4 !== size) throw new Error('cache file has the wrong length');
  const sections: Buffer[] = [];
  for (const n of sizes) sections.push(await take(n));
  const sum = (await take(4, false)).readUInt32LE(0);
  if (crc !== sum) throw new Error('checksum mismatch');
  const meta = JSON.parse(metaBytes.toString('utf8')) as Record<string, unknown>;
  return { meta, sections, sum };
}

/** Writes `parts` one after another into a new file, without joining them first. */
async function writeParts(file: string, parts: Buffer[]): Promise<void> {
  const fh = await fs.promises.open(file, 'wx');
  try {
    // writev takes at most IOV_MAX (1024) pieces per call and may write fewer bytes than asked.
    for (let i = 0; i < parts.length; ) {
      const batch = parts.slice(i, i + 512);
      const want = batch.reduce((n, b) => n + b.length, 0);
      let { bytesWritten } = await fh.writev(batch);
      if (bytesWritten < want) {
        const rest = Buffer.concat(batch).subarray(bytesWritten);
        for (let at = 0; at < rest.length; at += bytesWritten) ({ bytesWritten } = await fh.write(rest, at));
      }
      i += batch.length;
    }
  } finally {
    await fh.close();
  }
}
