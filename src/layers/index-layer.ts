import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveError, type ArchiveFiles } from '../archive/archive-files';
import { cacheKey, sampleDigest, type IndexCache } from '../cache/index-cache';
import { detectCompression } from '../compress/detect';
import {
  createSeekIndexBuilder,
  decodeSeekIndex,
  encodeSeekIndex,
  openRandomAccess,
  type SeekIndex,
  type SpanCache,
  type ZstdSpillOptions,
} from '../compress/stream';
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
}

/**
 * Indexes one layer blob: its compression by magic bytes (media types lie), its tar entries and,
 * for a compressed blob, the seek index that makes random reads cheap. A cached index is used
 * when the cache holds one for this very blob: same digest, size and sampled content.
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
  const key = ctx.cache && cacheKey({ kind: 'layer', id: d.digest ?? d.diffId, compression: kind, sample: await sampleDigest(blob) });
  // A single-frame zstd layer cannot be entered in the middle: its decompressed copy is kept in
  // the cache folder (named by the same key) so reads do not decompress from the start.
  const spill: ZstdSpillOptions | undefined =
    kind === 'zstd' && key && ctx.cache ? { path: path.join(ctx.cache.dir, 'zstd', `${key}.tar`), maxBytes: ctx.spillMaxBytes } : undefined;
  if (spill) await fs.promises.mkdir(path.dirname(spill.path), { recursive: true });
  let found = key ? await fromCache(ctx.cache!, key, kind !== 'none') : undefined;
  if (!found) {
    found = await scan(blob, kind, what, spill, ctx).catch((err: Error) => {
      throw err instanceof ArchiveError ? err : new ArchiveError(`${files.location}: ${err.message}`);
    });
    if (key) {
      await ctx.cache!.put(key, {
        meta: { what: 'layer index', diffId: d.diffId, warnings: found.warnings },
        sections: [encodeTarIndex(found.index), ...(found.seek ? [encodeSeekIndex(found.seek)] : [])],
      });
    }
  }
  const stream =
    kind === 'none'
      ? blob
      : openRandomAccess(kind, blob, found.seek!, { cache: ctx.spans, cacheKey: key ?? `${d.blobPath}@${d.diffId}`, spill, onWarning: ctx.log });
  return { descriptor: d, compression: kind, blob, stream, index: found.index, storedSize: blob.size, warnings: found.warnings };
}

async function scan(blob: ByteSource, kind: Compression, what: string, spill: ZstdSpillOptions | undefined, ctx: LayerIndexContext): Promise<Indexes> {
  if (kind === 'none') {
    const result = await scanTar(blob, what);
    return { index: result.index, warnings: result.warnings };
  }
  // One pass over the compressed blob gives both the tar index and the seek points.
  const builder = createSeekIndexBuilder(kind, blob, { spill, onProgress: (done) => ctx.onProgress?.(what, done, blob.size) });
  try {
    const result = await scanTar(builder, what);
    const seek = await builder.finish();
    if (spill && seek.kind === 'zstd' && seek.frames.some((f) => f.uSize > 8 * 1024 * 1024)) {
      ctx.log(`${what}: zstd with large frames cannot be read at random; its decompressed copy is kept in ${spill.path} (up to ${Math.round(ctx.spillMaxBytes / 2 ** 20)} MiB)`);
    }
    return { index: result.index, seek, warnings: result.warnings };
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
