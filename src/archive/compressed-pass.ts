import { createHash } from 'node:crypto';
import type { SeekIndex, ZstdSpillOptions } from '../compress/types';
import type { ByteSource } from '../io/byte-source';
import { scanTar, type TarScan } from '../tar/scan';

/*
 * The one forward pass over a compressed tar, the same code on whichever thread runs it (the
 * indexer's own, or a worker of pass-workers.ts): it decompresses, scans the tar headers,
 * records the seek points and, if asked, hashes the stored bytes, all at once.
 */

export interface CompressedPassResult {
  scan: TarScan;
  seek: SeekIndex;
  /** `sha256:<hex>` of the stored bytes, when asked and every byte was read once, in order. */
  digest?: string;
}

export interface CompressedPassOptions {
  spill?: ZstdSpillOptions;
  hash: boolean;
  onProgress?: (compressedDone: number) => void;
}

/*
 * The codecs (and pako, zstd-napi, lru-cache under them) are loaded on first use: a mount of
 * plain layers never needs them.
 */
type Codecs = typeof import('../compress/codecs');
let loadedCodecs: Codecs | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const codecs = (): Codecs => (loadedCodecs ??= require('../compress/codecs') as Codecs);

export async function compressedPass(input: ByteSource, compression: 'gzip' | 'zstd', what: string, opts: CompressedPassOptions): Promise<CompressedPassResult> {
  const hashing = opts.hash ? new HashingSource(input) : undefined;
  const builder = codecs().createSeekIndexBuilder(compression, hashing ?? input, { spill: opts.spill, onProgress: opts.onProgress });
  try {
    const scan = await scanTar(builder, what);
    const seek = await builder.finish();
    return { scan, seek, digest: hashing?.digest() };
  } catch (err) {
    await builder.abort();
    throw err;
  }
}

/** Hashes what a single forward pass reads; a pass that jumps (or re-reads) proves nothing. */
class HashingSource implements ByteSource {
  private readonly hash = createHash('sha256');
  private next = 0;
  private broken = false;

  constructor(private readonly inner: ByteSource) {
    const view = inner.readView?.bind(inner);
    if (view) {
      this.readView = async (position, length) => {
        const bytes = await view(position, length);
        this.saw(position, bytes);
        return bytes;
      };
    }
  }

  get size(): number {
    return this.inner.size;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const n = await this.inner.read(buf, offset, length, position);
    this.saw(position, buf.subarray(offset, offset + n));
    return n;
  }

  /** Offered when the inner source offers it (the cursor then copies nothing). */
  readonly readView?: (position: number, length: number) => Promise<Buffer>;

  private saw(position: number, bytes: Buffer): void {
    if (position !== this.next) this.broken = true;
    else {
      this.hash.update(bytes);
      this.next += bytes.length;
    }
  }

  /** sha256:<hex> when every byte was read once, in order. */
  digest(): string | undefined {
    return !this.broken && this.next === this.inner.size ? `sha256:${this.hash.digest('hex')}` : undefined;
  }
}
