import * as path from 'node:path';
import { ArchiveError, type ArchiveFiles } from '../archive/archive-files';
import { locatedMessage, UserError } from '../errors';
import { detectTarCompression, isTarCompression, type CacheKeys, type TarCompression, type TarIndexer } from '../archive/tar-indexer';
import { cacheKey, sampleDigest } from '../cache/index-cache';
import type { ByteSource } from '../io/byte-source';
import type { LayerDescriptor } from '../image/model';
import type { TarIndex } from '../tar/tar-index';
import type * as Estargz from './estargz';
import type * as ZstdChunked from './zstd-chunked';
import type * as ZstdSeekable from './zstd-seekable';

export type Compression = TarCompression;

/** One layer of the selected image, indexed: its uncompressed tar stream and that stream's index. */
export interface IndexedLayer {
  descriptor: LayerDescriptor;
  compression: Compression;
  /** The stored blob as it sits in the archive. */
  blob: ByteSource;
  /**
   * What the index's data offsets point into: the uncompressed tar (the blob itself, or a
   * decompressor with a seek index), or for a layer read through its TOC, a stream of just the
   * files' bytes (src/layers/toc-index.ts).
   */
  stream: ByteSource;
  /** The uncompressed tar's size when `stream` is not the tar and the manifest says it (eStargz). */
  tarSize?: number;
  index: TarIndex;
  /** The stored blob's size. */
  storedSize: number;
  warnings: string[];
  /**
   * The index cache entry this index came from or was stored in, and its checksum: together
   * they name this exact index (a merged-tree snapshot is filed under them). Absent without a cache.
   */
  cached?: { key: string; sum: number };
}

export interface IndexLayerOptions {
  /**
   * Where the archive fetches layers lazily (a registry): read an eStargz or zstd:chunked
   * layer through its TOC, and a seekable zstd layer through its seek table, instead of a pass
   * (default: yes). Off for --verify, which hashes the whole uncompressed tar.
   */
  toc?: boolean;
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
 * whole, and an archive may claim no digest for a layer at all (legacy docker save), so such an
 * index is tied to this archive file instead (path, size, mtime): it serves later mounts of the
 * same archive, never another one.
 */

export async function indexLayer(files: ArchiveFiles, d: LayerDescriptor, indexer: TarIndexer, opts: IndexLayerOptions = {}): Promise<IndexedLayer> {
  const blob = await files.open(d.blobPath);
  const kind = await detectTarCompression(blob);
  const what = `layer ${d.position} (${d.diffId})`;
  if (!isTarCompression(kind)) {
    const why = kind === 'unknown' ? 'neither a tar nor in a known compression' : `${kind}-compressed, which layers cannot be`;
    throw new ArchiveError(`${files.location}: ${what} is ${why}`);
  }
  if (kind !== 'none' && opts.toc !== false && files.layerAnnotations) {
    const annotations = files.layerAnnotations(d.blobPath);
    const key = `toc:${d.digest ?? d.blobPath}`;
    // The lazy formats' modules (and zstd-napi under them) load only for compressed layers.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { openEstargz } = require('./estargz') as typeof Estargz;
    const { openZstdChunked } = require('./zstd-chunked') as typeof ZstdChunked;
    const { openZstdSeekable } = require('./zstd-seekable') as typeof ZstdSeekable;
    /* eslint-enable @typescript-eslint/no-require-imports */
    const lazy = await (kind === 'gzip'
      ? openEstargz(blob, annotations, what, indexer.log, key)
      : openZstdChunked(blob, annotations, what, indexer.log, key).then((l) => l ?? openZstdSeekable(blob, what, key))
    ).catch((err: Error) => {
      if (err instanceof UserError) throw err;
      throw new ArchiveError(`${files.location}: ${locatedMessage(err, what)}`, { cause: err });
    });
    if (lazy) return { descriptor: d, compression: kind, blob, stream: lazy.stream, tarSize: lazy.tarSize, index: lazy.index, storedSize: blob.size, warnings: lazy.warnings };
  }
  const claimed = kind !== 'none' && d.digest?.startsWith('sha256:') ? d.digest : undefined;
  const keys = indexer.cache ? await cacheKeys(files, d, kind, blob, claimed) : undefined;
  const tar = await indexer.index(blob, kind, what, keys).catch((err: Error) => {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`${files.location}: ${locatedMessage(err, what)}`, { cause: err });
  });
  if (claimed && tar.digest && tar.digest !== claimed) {
    indexer.log(`${what}: the blob hashes to ${tar.digest}, not the ${claimed} the manifest claims`);
  }
  const warnings = [...tar.scan.warnings];
  if (d.size !== undefined && d.size !== blob.size) warnings.push(`${what}: the manifest says ${d.size} bytes, the blob has ${blob.size}`);
  const cached = tar.key !== undefined && tar.sum !== undefined ? { key: tar.key, sum: tar.sum } : undefined;
  return { descriptor: d, compression: kind, blob, stream: tar.stream, index: tar.scan.index, storedSize: blob.size, warnings, ...(cached && { cached }) };
}

/** The policy above as cache keys: look up by the claimed digest, store by the proven one. */
async function cacheKeys(files: ArchiveFiles, d: LayerDescriptor, kind: Compression, blob: ByteSource, claimed: string | undefined): Promise<CacheKeys> {
  const sample = await sampleDigest(blob);
  const provenKey = (digest: string) => cacheKey({ kind: 'layer', digest, compression: kind, sample });
  const archiveKey = cacheKey({ kind: 'layer', id: d.digest ?? d.diffId, compression: kind, sample, archive: files.cacheIdentity ?? path.resolve(files.location), stamp: files.stamp, blob: d.blobPath });
  // With nothing claimed (a legacy docker save names no blob digests) the lookup can only be the
  // archive's key, so that is where the index must go too: filed by the digest the pass proved,
  // no later mount of this archive would find it, and every mount would pass again.
  return {
    lookup: claimed ? provenKey(claimed) : archiveKey,
    store: (proven) => (claimed && proven ? provenKey(proven) : archiveKey),
    meta: { what: 'layer index', diffId: d.diffId },
  };
}
