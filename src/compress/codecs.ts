/**
 * The two codecs behind one interface: picks gzip or zstd to build a seek index, to open a
 * random-access reader over it, and to read or write the index's on-disk form.
 *
 * Life of a compressed stream:
 *   1. `createSeekIndexBuilder(kind, blob)` gives a forward-only reader over the *uncompressed*
 *      stream. The tar indexer reads it front to back (headers, jumping over file data); the
 *      builder decompresses as it goes and records checkpoints (gzip) or frame boundaries (zstd).
 *   2. `builder.finish()` decompresses whatever the caller did not need (to learn the size and
 *      complete the index) and resolves to a plain-data `SeekIndex`.
 *   3. `encodeSeekIndex` / `decodeSeekIndex` persist it (compact binary, CRC-protected).
 *   4. `openRandomAccess(kind, blob, index)` is a `ByteSource` over the uncompressed stream whose
 *      cold reads decompress at most one span (gzip) / one frame or chunk (zstd); see the
 *      comments at the top of gzip-seek.ts and zstd-seek.ts for the details and limits.
 *
 * Only this file knows both codecs; they import the shared leaves (types, piece cache, unit
 * reader, forward pass, byte codec, CRC), never this file or each other.
 */
import * as zlib from 'node:zlib';
import type { ByteSource } from '../io/byte-source';
import { ByteReader, ByteWriter } from './byte-codec';
import { GzipRandomAccess, GzipSeekIndexBuilder, decodeGzipIndexBody, encodeGzipIndexBody } from './gzip-seek';
import type {
  CompressionKind,
  RandomAccessOptions,
  RandomAccessSource,
  SeekIndex,
  SeekIndexBuilder,
  SeekIndexBuilderOptions,
} from './types';
import { ZstdRandomAccess, ZstdSeekIndexBuilder, decodeZstdIndexBody, encodeZstdIndexBody } from './zstd-seek';

export function createSeekIndexBuilder(
  kind: CompressionKind,
  compressed: ByteSource,
  opts: SeekIndexBuilderOptions = {},
): SeekIndexBuilder {
  switch (kind) {
    case 'gzip':
      return new GzipSeekIndexBuilder(compressed, opts);
    case 'zstd':
      return new ZstdSeekIndexBuilder(compressed, opts);
    default:
      throw new Error(`createSeekIndexBuilder: unsupported compression ${String(kind)}`);
  }
}

export function openRandomAccess(
  kind: CompressionKind,
  compressed: ByteSource,
  index: SeekIndex,
  opts: RandomAccessOptions = {},
): RandomAccessSource {
  if (index.kind !== kind) throw new Error(`openRandomAccess: index is for ${index.kind}, not ${kind}`);
  if (compressed.size !== index.compressedSize) {
    throw new Error(
      `openRandomAccess: compressed source is ${compressed.size} bytes but the ${kind} index was built for ` +
        `${index.compressedSize} bytes (stale index or wrong blob)`,
    );
  }
  return index.kind === 'gzip'
    ? new GzipRandomAccess(compressed, index, opts)
    : new ZstdRandomAccess(compressed, index, opts);
}

// ---------------------------------------------------------------------------------------------
// Index serialization: 'OCSI' magic, format version, kind, body, CRC-32 of everything before it.

const INDEX_MAGIC = 0x4f435349; // 'OCSI'
const INDEX_VERSION = 1;
const KIND_CODE = { gzip: 1, zstd: 2 } as const;

export function encodeSeekIndex(idx: SeekIndex): Buffer {
  const w = new ByteWriter();
  w.u32(INDEX_MAGIC);
  w.u8(INDEX_VERSION);
  w.u8(KIND_CODE[idx.kind]);
  if (idx.kind === 'gzip') encodeGzipIndexBody(idx, w);
  else encodeZstdIndexBody(idx, w);
  const body = w.finish();
  const out = Buffer.allocUnsafe(body.length + 4);
  body.copy(out);
  out.writeUInt32LE(zlib.crc32(body), body.length);
  return out;
}

export function decodeSeekIndex(buf: Buffer): SeekIndex {
  if (buf.length < 10) throw new Error(`seek index: too short (${buf.length} bytes)`);
  const body = buf.subarray(0, buf.length - 4);
  if (zlib.crc32(body) !== buf.readUInt32LE(buf.length - 4)) throw new Error('seek index: checksum mismatch (corrupt or truncated)');
  const r = new ByteReader(body);
  if (r.u32() !== INDEX_MAGIC) throw new Error('seek index: bad magic');
  const version = r.u8();
  if (version !== INDEX_VERSION) throw new Error(`seek index: unsupported version ${version}`);
  const kind = r.u8();
  let idx: SeekIndex;
  if (kind === KIND_CODE.gzip) idx = decodeGzipIndexBody(r);
  else if (kind === KIND_CODE.zstd) idx = decodeZstdIndexBody(r);
  else throw new Error(`seek index: unknown kind ${kind}`);
  if (!r.done()) throw new Error('seek index: trailing bytes');
  return idx;
}
