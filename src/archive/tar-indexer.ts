import * as fs from 'node:fs';
import * as path from 'node:path';
import type { IndexCache } from '../cache/index-cache';
import { detectCompression, type DetectedCompression } from '../compress/detect';
import type { SpanCache } from '../compress/piece-cache';
import type { SeekIndex, ZstdSpillOptions } from '../compress/types';
import type { ByteSource } from '../io/byte-source';
import { scanTar, type TarScan } from '../tar/scan';
import type * as CompressedPass from './compressed-pass';
import type * as PassWorkers from './pass-workers';
import type { PassInWorkerOptions } from './pass-workers';
import type * as ScanWorkers from '../tar/scan-workers';
import { collectGarbage, COLLECT_AFTER_ENTRIES } from '../io/collect-garbage';
import { TAR_INDEX_SECTIONS, tarIndexFromSections, tarIndexSections } from '../tar/tar-index-codec';

/*
 * What only compressed layers or worker threads need (the codecs, pako, zstd-napi, lru-cache,
 * worker_threads) loads on first use: a mount of plain layers in the page cache spends a good
 * part of its time starting, and most of that is loading modules.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const compressedPassModule = (): typeof CompressedPass => require('./compressed-pass') as typeof CompressedPass;
const codecs = () => compressedPassModule().codecs();
const passWorkers = (): typeof PassWorkers => require('./pass-workers') as typeof PassWorkers;
const scanWorkers = (): typeof ScanWorkers => require('../tar/scan-workers') as typeof ScanWorkers;
/* eslint-enable @typescript-eslint/no-require-imports */

/*
 * Indexing a tar that may be compressed, the one path the outer archive and every layer take:
 * the tar index and, for gzip/zstd, the seek index come from the index cache or from one forward
 * pass over the stored bytes (decompressing, scanning the tar headers and recording seek points
 * at once), and the tar is then read through them. Callers decide only which compressions they
 * accept and which cache keys their indexes live under.
 */

export type TarCompression = 'none' | 'gzip' | 'zstd';

/** What stored bytes are, from their first bytes (magic numbers: media types and names lie). */
export async function detectTarCompression(src: ByteSource): Promise<DetectedCompression> {
  const head = Buffer.alloc(Math.min(1024, src.size));
  await src.read(head, 0, head.length, 0);
  return detectCompression(head);
}

export function isTarCompression(kind: DetectedCompression): kind is TarCompression {
  return kind === 'none' || kind === 'gzip' || kind === 'zstd';
}

export interface TarIndexerOptions {
  cache?: IndexCache;
  /** Memory for decompressed pieces shared by every reader this indexer opens (default: each reader keeps a few of its own). */
  spanCacheBytes?: number;
  /**
   * zstd with frames too large to enter in the middle: keep a decompressed copy of up to this
   * many bytes in the cache folder, written by the pass (default: none kept).
   */
  spillMaxBytes?: number;
  /** gzip: inflate the next span ahead of a sequential reader. */
  readAhead?: boolean;
  /** One-line notes for the user (what is kept and why). */
  log?: (message: string) => void;
  /**
   * Scan plain tars of at least this many bytes that sit in a local file on a worker thread
   * (src/tar/scan-workers.ts), so that concurrent index() calls scan side by side; default:
   * never. Smaller ones scan here: a worker costs more than it saves on them.
   */
  scanWorkerMinBytes?: number;
  /**
   * Run the pass over compressed tars of at least this many stored bytes on a worker thread
   * (pass-workers.ts), side by side; default: never. Smaller ones pass here, one at a time.
   */
  passWorkerMinBytes?: number;
  /** Progress of a pass, in stored bytes. */
  onProgress?: (what: string, done: number, total: number) => void;
}

/** Where one tar's indexes live in the cache: the caller's policy. */
export interface CacheKeys {
  /** The entry to use if it is there. */
  lookup?: string;
  /**
   * The entry a fresh pass is stored under; none: not stored. As a function it is given the
   * sha256 of the stored bytes, which the pass then computes (reading every byte of a compressed
   * tar anyway), so an entry can be filed under what the bytes proved to be; it gets undefined
   * for an uncompressed tar, whose pass reads only headers.
   */
  store?: string | ((provenDigest: string | undefined) => string);
  /** Kept in the entry for people looking into the cache folder. */
  meta: Record<string, unknown>;
}

export interface IndexedTar {
  compression: TarCompression;
  scan: TarScan;
  /** The uncompressed tar: the stored bytes themselves, or a decompressor reading through the seek index. */
  stream: ByteSource;
  /** The cache entry holding its indexes, when there is a cache. */
  key?: string;
  /** That entry's checksum: what is built from these indexes (a merged-tree snapshot) names them by it. */
  sum?: number;
  /** `sha256:<hex>` of the stored bytes, when this call ran a pass that hashed all of them. */
  digest?: string;
}

interface Indexes {
  scan: TarScan;
  seek?: SeekIndex;
  digest?: string;
  sum?: number;
}

export class TarIndexer {
  readonly cache: IndexCache | undefined;
  readonly log: (message: string) => void;
  private spans: SpanCache | undefined;
  private passes = 0;
  /** Compressed passes run on this thread one at a time, so their progress lines stay in order. */
  private passChain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: TarIndexerOptions = {}) {
    this.cache = opts.cache;
    this.log = opts.log ?? (() => undefined);
  }

  /** Memory for decompressed pieces, made when the first compressed tar is read. */
  private spanCache(): SpanCache | undefined {
    if (this.opts.spanCacheBytes === undefined) return undefined;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (this.spans ??= (require('../compress/piece-cache') as typeof import('../compress/piece-cache')).createSpanCache(this.opts.spanCacheBytes));
  }

  /**
   * Indexes `stored` (already known to be `compression`), from the cache when `keys` finds an
   * entry, else with one pass, stored as `keys` says. `what` names it in messages, `progress`
   * in progress lines (default `what`).
   */
  async index(stored: ByteSource, compression: TarCompression, what: string, keys?: CacheKeys, progress = what): Promise<IndexedTar> {
    const cache = this.cache;
    let found = cache && keys?.lookup ? await this.fromCache(cache, keys.lookup, compression) : undefined;
    let key = found ? keys!.lookup : undefined;
    if (!found) {
      const store = cache && keys?.store !== undefined ? keys.store : undefined;
      const spill = store !== undefined ? await this.passSpill(cache!, compression) : undefined;
      found = await this.pass(stored, compression, what, progress, spill, typeof store === 'function');
      if (store !== undefined) {
        key = typeof store === 'function' ? store(found.digest) : store;
        found.sum = await cache!.put(key, {
          meta: { ...keys!.meta, warnings: found.scan.warnings, endOffset: found.scan.endOffset },
          sections: [...tarIndexSections(found.scan.index), ...(found.seek ? [codecs().encodeSeekIndex(found.seek)] : [])],
        });
        if (spill && fs.existsSync(spill.path)) await fs.promises.rename(spill.path, this.spillPath(cache!, key));
      }
      // The scan's growing columns are garbage now: gone before the next layer's grow.
      if (found.scan.index.count >= COLLECT_AFTER_ENTRIES) collectGarbage();
    }
    // Reads use a kept copy when there is one (only indexers that keep copies look), and never
    // start one themselves: a copy made from bytes nobody hashed could serve another archive.
    const kept = compression === 'zstd' && this.opts.spillMaxBytes !== undefined && cache && key && fs.existsSync(this.spillPath(cache, key));
    const stream =
      compression === 'none'
        ? stored
        : codecs().openRandomAccess(compression, stored, found.seek!, {
            cache: this.spanCache(),
            cacheKey: key,
            spill: kept ? { path: this.spillPath(cache!, key!) } : undefined,
            onWarning: this.log,
            readAhead: this.opts.readAhead,
          });
    return { compression, scan: found.scan, stream, key, sum: found.sum, digest: found.digest };
  }

  private spillPath(cache: IndexCache, key: string): string {
    return path.join(cache.dir, 'zstd', `${key}.tar`);
  }

  /**
   * A single-frame zstd tar cannot be entered in the middle: the pass keeps a decompressed copy,
   * first under a private name, moved under the entry's key once stored (after the digest that
   * may decide the key is proven).
   */
  private async passSpill(cache: IndexCache, compression: TarCompression): Promise<ZstdSpillOptions | undefined> {
    if (compression !== 'zstd' || this.opts.spillMaxBytes === undefined) return undefined;
    const spill = { path: path.join(cache.dir, 'zstd', `pass-${process.pid}-${++this.passes}-${Date.now()}.tar`), maxBytes: this.opts.spillMaxBytes };
    await fs.promises.mkdir(path.dirname(spill.path), { recursive: true });
    return spill;
  }

  private async pass(
    stored: ByteSource,
    compression: TarCompression,
    what: string,
    progress: string,
    spill: ZstdSpillOptions | undefined,
    hash: boolean,
  ): Promise<Indexes> {
    if (compression === 'none') {
      const range = stored.fileRange?.();
      const min = this.opts.scanWorkerMinBytes;
      if (range && min !== undefined && stored.size >= min) return { scan: await scanWorkers().scanTarInWorker(range.file, range.start, stored.size, what) };
      return { scan: await scanTar(stored, what, range && { file: { fd: range.file.fd, start: range.start, size: stored.size } }) };
    }
    // One pass over the compressed bytes gives the tar index, the seek points and (if asked) the digest.
    const input = stored.sequentialReader?.() ?? stored;
    const onProgress = (done: number) => this.opts.onProgress?.(progress, done, stored.size);
    const min = this.opts.passWorkerMinBytes;
    let found: Promise<Indexes>;
    if (min !== undefined && stored.size >= min) {
      found = this.workerPass(stored, input, compression, what, { spill, hash, onProgress });
    } else {
      // On this thread passes take turns: side by side they would only share its CPU.
      found = this.passChain.then(() => compressedPassModule().compressedPass(input, compression, what, { spill, hash, onProgress }));
      this.passChain = found.catch(() => undefined);
    }
    const indexes = await found;
    this.noteSpill(what, spill);
    return indexes;
  }

  /** compressedPass on a worker thread: passes run side by side, as many as there are cores. */
  private async workerPass(
    stored: ByteSource,
    input: ByteSource,
    compression: Exclude<TarCompression, 'none'>,
    what: string,
    opts: Omit<PassInWorkerOptions, 'file'>,
  ): Promise<Indexes> {
    const range = stored.fileRange?.();
    const file = range && { fd: range.file.fd, path: range.file.path, start: range.start };
    // A file read by the worker is checked as every read here checks it, once, at the end:
    // a file changed in place fails the pass with the same message, whatever else went wrong.
    const stale = () => {
      const why = range?.file.verifyUnchanged();
      if (why) throw new Error(why);
    };
    const found = await passWorkers().compressedPassInWorker(stored, input, compression, what, { ...opts, file }).catch((err: unknown) => {
      stale();
      throw err;
    });
    stale();
    return found;
  }

  private noteSpill(what: string, spill: ZstdSpillOptions | undefined): void {
    if (spill && fs.existsSync(spill.path)) {
      this.log(`${what}: zstd with large frames cannot be read at random; a decompressed copy is kept in the cache folder (up to ${Math.round(spill.maxBytes! / 2 ** 20)} MiB)`);
    }
  }

  /** A cached entry's indexes; undefined when missing, incomplete or not decodable (then rebuilt). */
  private async fromCache(cache: IndexCache, key: string, compression: TarCompression): Promise<Indexes | undefined> {
    const entry = await cache.get(key);
    if (!entry || entry.sections.length < TAR_INDEX_SECTIONS + (compression !== 'none' ? 1 : 0)) return undefined;
    try {
      const warnings = Array.isArray(entry.meta.warnings) ? (entry.meta.warnings as string[]) : [];
      return {
        scan: { index: tarIndexFromSections(entry.sections), warnings, endOffset: Number(entry.meta.endOffset) },
        seek: compression !== 'none' ? codecs().decodeSeekIndex(entry.sections[TAR_INDEX_SECTIONS]) : undefined,
        sum: entry.sum,
      };
    } catch {
      return undefined;
    }
  }
}
