import { openRandomAccess } from '../compress/codecs';
import type { ZstdFrame, ZstdSeekIndex } from '../compress/types';
import type { ByteSource } from '../io/byte-source';
import { scanTar } from '../tar/scan';
import type { LazyLayer } from './toc-index';

/*
 * A multi-frame zstd layer in the zstd seekable format (facebook/zstd contrib/seekable_format:
 * what `zstd --seekable`-style writers and t2sz produce): the frames are followed by a skippable
 * frame holding a seek table, every frame's compressed and decompressed size, and a 9-byte
 * footer (frame count, descriptor, magic 0x8F92EAB1). From the table the frame index the full
 * pass would build is known up front, so the tar is indexed like an uncompressed one: its
 * headers are read at their offsets, which decodes only the frames holding them, and file data
 * that is never read is never downloaded.
 */

const SEEKABLE_MAGIC = 0x8f92eab1;
const SKIPPABLE_SEEK_TABLE = 0x184d2a5e;
const FOOTER = 9;
/** Largest seek table read (12 bytes a frame). */
const MAX_TABLE = 64 * 1024 * 1024;

/** The frame index a seek table gives, or undefined when `blob` does not end with one. */
export async function readSeekTable(blob: ByteSource): Promise<ZstdSeekIndex | undefined> {
  if (blob.size < FOOTER + 8) return undefined;
  const foot = Buffer.alloc(FOOTER);
  await blob.read(foot, 0, FOOTER, blob.size - FOOTER);
  if (foot.readUInt32LE(5) !== SEEKABLE_MAGIC) return undefined;
  const frames = foot.readUInt32LE(0);
  const descriptor = foot[4];
  if (descriptor & 0x7c) return undefined; // reserved bits must be zero
  const entry = descriptor & 0x80 ? 12 : 8;
  const tableSize = frames * entry + FOOTER;
  if (tableSize > MAX_TABLE || tableSize + 8 > blob.size) return undefined;
  const table = Buffer.alloc(tableSize + 8);
  await blob.read(table, 0, table.length, blob.size - table.length);
  if (table.readUInt32LE(0) !== SKIPPABLE_SEEK_TABLE || table.readUInt32LE(4) !== tableSize) return undefined;
  const out: ZstdFrame[] = [];
  let cOff = 0;
  let uOff = 0;
  for (let i = 0; i < frames; i++) {
    const cSize = table.readUInt32LE(8 + i * entry);
    const uSize = table.readUInt32LE(12 + i * entry);
    if (uSize > 0) out.push({ cOff, cSize, uOff, uSize });
    cOff += cSize;
    uOff += uSize;
  }
  // The frames and the table must make up the whole blob.
  if (cOff + table.length !== blob.size) return undefined;
  return { kind: 'zstd', compressedSize: blob.size, uncompressedSize: uOff, trailingBytes: 0, frames: out };
}

/** The layer indexed through its seek table; undefined when it has none. */
export async function openZstdSeekable(blob: ByteSource, what: string, cacheKey: string): Promise<LazyLayer | undefined> {
  const index = await readSeekTable(blob);
  if (!index) return undefined;
  const stream = openRandomAccess('zstd', blob, index, { cacheKey });
  const scan = await scanTar(stream, what);
  return { index: scan.index, stream, warnings: scan.warnings };
}
