/**
 * Decompressed pieces (gzip spans, zstd frames or chunks) kept in memory and shared by every
 * reader of an image, so a piece is decompressed once however many files and requests touch it.
 */
import { LRUCache } from 'lru-cache';

/** Decompressed pieces, shared by readers: key = `${cacheKey}:${piece id}`, size in bytes. */
export type SpanCache = LRUCache<string, Buffer>;

export function createSpanCache(maxBytes: number): SpanCache {
  return new LRUCache<string, Buffer>({
    maxSize: Math.max(1, Math.floor(maxBytes)),
    sizeCalculation: (b) => Math.max(1, b.length),
  });
}

/**
 * A decompressed piece from the shared cache, or produced once however many readers ask for it
 * at the same time (concurrent FUSE reads of one span must not inflate it twice).
 */
export class PieceCache {
  private readonly inflight = new Map<string, Promise<Buffer>>();

  constructor(private readonly cache: SpanCache) {}

  get(key: string, produce: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(key);
    if (!p) {
      p = produce().then(
        (data) => {
          this.inflight.delete(key);
          this.cache.set(key, data);
          return data;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          throw err;
        },
      );
      this.inflight.set(key, p);
    }
    return p;
  }
}
