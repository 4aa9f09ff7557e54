/**
 * The shapes every part of src/compress shares: the two formats' seek indexes (plain data, what
 * the index cache stores), the forward reader the tar scanner drives during the index pass, and
 * the options of the pass and of the random-access readers. Types only, so that the codecs, the
 * helpers they use and the facade that picks a codec (codecs.ts) can all import it without
 * importing each other.
 */
import type { ByteSource } from '../io/byte-source';
import type { SpanCache } from './piece-cache';

export type CompressionKind = 'gzip' | 'zstd';

export interface GzipCheckpoint {
  /** Uncompressed offset where this span starts. */
  out: number;
  /** Compressed bit position of the deflate block boundary (8 * byte + bits into that byte). */
  bitPos: number;
  /** Compressed byte offset just past the last byte this span needs. */
  inEnd: number;
  /** CRC-32 of the span's uncompressed bytes. */
  crc: number;
  /** Length of the window (uncompressed bytes before `out` in the same member, at most 32 KiB). */
  windowLen: number;
  /** The window, raw-deflate compressed (empty when windowLen is 0). */
  window: Buffer;
}

export interface GzipSeekIndex {
  kind: 'gzip';
  compressedSize: number;
  uncompressedSize: number;
  spanBytes: number;
  members: number;
  /** Bytes after the last member that were not a gzip member (ignored). */
  trailingBytes: number;
  /** Sorted by `out`; the first is at 0 unless the stream is empty. */
  checkpoints: GzipCheckpoint[];
}

export interface ZstdFrame {
  /** Compressed offset and size of the frame (skippable frames are not listed). */
  cOff: number;
  cSize: number;
  /** Uncompressed offset and size; frames with no output are not listed. */
  uOff: number;
  uSize: number;
}

export interface ZstdSeekIndex {
  kind: 'zstd';
  compressedSize: number;
  uncompressedSize: number;
  /** Zero bytes after the last frame (ignored). */
  trailingBytes: number;
  /** Sorted, contiguous in uncompressed offsets. */
  frames: ZstdFrame[];
}

export type SeekIndex = GzipSeekIndex | ZstdSeekIndex;

/** A reader over the uncompressed stream that only moves forward. */
export interface ForwardReader {
  /**
   * Reads up to `length` bytes at `position` into `buf[offset..]`; resolves to the count, short
   * only at the end of the stream. `position` must be >= the end of the previous read (else it
   * throws); bytes skipped over are decompressed and dropped. Reads must not overlap in time.
   */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
}

export interface SeekIndexBuilder extends ForwardReader {
  /** Uncompressed size, known only once the stream has been decompressed to its end. */
  readonly size: number | undefined;
  /** Decompresses the rest, checks the stream to its end, and returns the index. Call once. */
  finish(): Promise<SeekIndex>;
  /** Gives up without finishing (e.g. the tar scan failed): drops a half-written spill file. */
  abort(): Promise<void>;
}

export interface ZstdSpillOptions {
  /** File holding the whole uncompressed stream; unique per compressed blob. */
  path: string;
  /** Do not spill streams larger than this (default: no limit). */
  maxBytes?: number;
}

export interface SeekIndexBuilderOptions {
  /** gzip: uncompressed bytes between checkpoints (default 2 MiB). zstd: unused by the index. */
  spanBytes?: number;
  /** Called after each chunk of compressed input is read, with the compressed bytes read so far. */
  onProgress?: (compressedDone: number) => void;
  /**
   * zstd only: write the decompressed stream to this file during the pass (the pass is
   * decompressing it anyway), so `openRandomAccess(..., { spill: { path } })` can pread it
   * instead of re-decompressing single huge frames. Dropped again if every frame turns out to
   * be small (frame access is then cheap) or the stream exceeds `maxBytes`.
   */
  spill?: ZstdSpillOptions;
}

export interface RandomAccessOptions {
  /** Shared LRU of decompressed spans. Without one, each reader keeps a private one of a few spans. */
  cache?: SpanCache;
  /** Stable name of the layer for `cache` keys (e.g. the blob digest); default: unique per reader. */
  cacheKey?: string;
  /** zstd: decompressed bytes per cached chunk inside a large frame (default 4 MiB; frames up to 2x are decoded whole). */
  chunkBytes?: number;
  /** zstd: spill file for streams with frames too large to re-decompress per miss; see zstd-seek.ts. */
  spill?: ZstdSpillOptions;
  /** Told about problems that were worked around (e.g. a spill file that could not be written). */
  onWarning?: (message: string) => void;
  /** gzip: start inflating the next span when a read reaches the second half of one (sequential readers). */
  readAhead?: boolean;
}

/** The uncompressed stream; `close()` releases a spill file handle (a no-op for gzip). */
export interface RandomAccessSource extends ByteSource {
  close(): Promise<void>;
}
