import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveError, type ArchiveFiles } from '../archive/archive-files';
import { cacheKey, sampleDigest, type IndexCache } from '../cache/index-cache';
import { detectCompression } from '../compress/detect';
import { createSeekIndexBuilder, decodeSeekIndex, encodeSeekIndex, openRandomAccess } from '../compress/codecs';
import type { SpanCache } from '../compress/piece-cache';
import type { SeekIndex, ZstdSpillOptions } from '../compress/types';
import type { ByteSource } from '../io/byte-source';
import type { LayerDescriptor } from '../image/model';
import { scanTar } from '../tar/scan';
import type { TarIndex } from '../tar/tar-index';
import { decodeTarIndex, encodeTarIndex } from '../tar/tar-index-codec';

export type Compression = 'none' | 'gzip' | 'zstd';

/** One layer of the selected image, indexed: its uncompressed tar stream and that stream's index. */
export interface IndexedLayer {
  descriptor: LayerDescriptor;
  compression: Compression;
  /** The stored blob as it sits in the archive. */
  blob: ByteSource;
  /** The uncompressed tar stream (the blob itself, or a decompressor with a seek index). */
  stream: ByteSource;
  index: TarIndex;
  /** The stored blob's size. */
  storedSize: number;
  warnings: string[];
}

export interface LayerIndexContext {
  cache?: IndexCache;
  /** Decompressed spans shared by every compressed layer of the image. */
  spans: SpanCache;
  /** Largest decompressed copy of a single-frame zstd layer kept in the cache folder. */
  spillMaxBytes: number;
  log: (message: string) => void;
  onProgress?: (what: string, done: number, total: number) => void;
}

interface Indexes {
  index: TarIndex;
  seek?: SeekIndex;
  warnings: string[];
  /** The stored blob's sha256, when the pass read all of it. */
  digest?: string;
}

/**
 * Indexes one layer blob: its compression by magic bytes (media types lie), its tar entries and,
 * for a compressed blob, the seek index that makes random reads cheap, reusing a cached index
 * when one is known to describe these very bytes.
 *
 * The cache never trusts what an archive merely claims (a hostile archive could otherwise plant
 * an index for a public layer's digest that a later, genuine mount would use). A compressed
 * layer is hashed during its index pass, which reads every byte anyway, and its index is stored
 * under the digest the bytes really have; lookups use the digest the manifest claims, so an
 * index is found only by archives claiming what a pass proved. An uncompressed layer is not read
 * whole, so its index is also tied to this archive file (path, size, mtime): it serves later
 * mounts of the same archive, never another one.
 */
export async function indexLayer(files: ArchiveFiles, d: LayerDescriptor, ctx: LayerIndexContext): Promise<IndexedLayer> {
  const blob = await files.open(d.blobPath);
  const head = Buffer.alloc(Math.min(1024, blob.size));
  await blob.read(head, 0, head.length, 0);
  const kind = detectCompression(head);
  const what = `layer ${d.position} (${d.diffId})`;
  if (kind !== 'none' && kind !== 'gzip' && kind !== 'zstd') {
    const why = kind === 'unknown' ? 'neither a tar nor in a known compression' : `${kind}-compressed, which layers cannot be`;
    throw new ArchiveError(`${files.location}: ${what} is ${why}`);
  }
  const sample = ctx.cache ? await sampleDigest(blob) : '';
  const provenKey = (digest: string) => cacheKey({ kind: 'layer', digest, compression: kind, sample });
  const archiveKey = cacheKey({ kind: 'layer', id: d.digest ?? d.diffId, compression: kind, sample, archive: path.resolve(files.location), stamp: files.stamp, blob: d.blobPath });
  const claimed = kind !== 'none' && d.digest?.startsWith('sha256:') ? d.digest : undefined;
  const lookupKey = !ctx.cache ? undefined : claimed ? provenKey(claimed) : archiveKey;
  const spillPath = (key: string) => path.join(ctx.cache!.dir, 'zstd', `${key}.tar`);

  let found = lookupKey ? await fromCache(ctx.cache!, lookupKey, kind !== 'none') : undefined;
  let key = lookupKey;
  if (!found) {
    // A single-frame zstd layer cannot be entered in the middle: the pass keeps a decompressed
    // copy, first under a private name, kept only once the blob's digest is proven.
    const tmpSpill: ZstdSpillOptions | undefined =
      kind === 'zstd' && ctx.cache ? { path: path.join(ctx.cache.dir, 'zstd', `pass-${process.pid}-${d.position}-${Date.now()}.tar`), maxBytes: ctx.spillMaxBytes } : undefined;
    if (tmpSpill) await fs.promises.mkdir(path.dirname(tmpSpill.path), { recursive: true });
    const scanned = await scan(blob, kind, what, tmpSpill, ctx).catch((err: Error) => {
      if (err instanceof ArchiveError) throw err;
      throw new ArchiveError(`${files.location}: ${err.message.startsWith(what) ? '' : `${what}: `}${err.message}`);
    });
    found = scanned;
    if (ctx.cache) {
      key = scanned.digest ? provenKey(scanned.digest) : archiveKey;
      if (claimed && scanned.digest && scanned.digest !== claimed) {
        ctx.log(`${what}: the blob hashes to ${scanned.digest}, not the ${claimed} the manifest claims`);
      }
      await ctx.cache.put(key, {
        meta: { what: 'layer index', diffId: d.diffId, warnings: scanned.warnings },
        sections: [encodeTarIndex(scanned.index), ...(scanned.seek ? [encodeSeekIndex(scanned.seek)] : [])],
      });
      if (tmpSpill && fs.existsSync(tmpSpill.path)) await fs.promises.rename(tmpSpill.path, spillPath(key));
    }
  }
  // Reads use a kept copy when there is one, and never start one themselves: a copy made from
  // bytes nobody hashed could end up serving another archive.
  const spill = kind === 'zstd' && key && fs.existsSync(spillPath(key)) ? { path: spillPath(key) } : undefined;
  const stream =
    kind === 'none'
      ? blob
      : openRandomAccess(kind, blob, found.seek!, { cache: ctx.spans, cacheKey: key ?? `${d.blobPath}@${d.diffId}`, spill, onWarning: ctx.log, readAhead: true });
  const warnings = [...found.warnings];
  if (d.size !== undefined && d.size !== blob.size) warnings.push(`${what}: the manifest says ${d.size} bytes, the blob has ${blob.size}`);
  return { descriptor: d, compression: kind, blob, stream, index: found.index, storedSize: blob.size, warnings };
}

/** Hashes what a single forward pass reads; a pass that jumps (or re-reads) proves nothing. */
class HashingSource implements ByteSource {
  private readonly hash = createHash('sha256');
  private next = 0;
  private broken = false;

  constructor(private readonly inner: ByteSource) {}

  get size(): number {
    return this.inner.size;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const n = await this.inner.read(buf, offset, length, position);
    if (position !== this.next) this.broken = true;
    else {
      this.hash.update(buf.subarray(offset, offset + n));
      this.next += n;
    }
    return n;
  }

  /** sha256:<hex> when every byte was read once, in order. */
  digest(): string | undefined {
    return !this.broken && this.next === this.inner.size ? `sha256:${this.hash.digest('hex')}` : undefined;
  }
}

async function scan(blob: ByteSource, kind: Compression, what: string, spill: ZstdSpillOptions | undefined, ctx: LayerIndexContext): Promise<Indexes> {
  if (kind === 'none') {
    const result = await scanTar(blob, what);
    return { index: result.index, warnings: result.warnings };
  }
  // One pass over the compressed blob gives the tar index, the seek points and the blob's digest.
  const hashing = new HashingSource(blob);
  const builder = createSeekIndexBuilder(kind, hashing, { spill, onProgress: (done) => ctx.onProgress?.(what, done, blob.size) });
  try {
    const result = await scanTar(builder, what);
    const seek = await builder.finish();
    if (spill && fs.existsSync(spill.path)) {
      ctx.log(`${what}: zstd with large frames cannot be read at random; a decompressed copy is kept in the cache folder (up to ${Math.round(ctx.spillMaxBytes / 2 ** 20)} MiB)`);
    }
    return { index: result.index, seek, warnings: result.warnings, digest: hashing.digest() };
  } catch (err) {
    await builder.abort();
    throw err;
  }
}

async function fromCache(cache: IndexCache, key: string, needsSeek: boolean): Promise<Indexes | undefined> {
  const entry = await cache.get(key);
  if (!entry || (needsSeek && !entry.sections[1])) return undefined;
  try {
    return {
      index: decodeTarIndex(entry.sections[0]),
      seek: entry.sections[1] ? decodeSeekIndex(entry.sections[1]) : undefined,
      warnings: Array.isArray(entry.meta.warnings) ? (entry.meta.warnings as string[]) : [],
    };
  } catch {
    return undefined;
  }
}
