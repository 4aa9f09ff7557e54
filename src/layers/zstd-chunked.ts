import { createHash } from 'node:crypto';
import { decompress as zstdDecompress } from 'zstd-napi';
import type { ByteSource } from '../io/byte-source';
import { buildTocLayer, parseTocJson, tocContentSource, TocError, type LazyLayer } from './toc-index';

/*
 * zstd:chunked (containers/storage pkg/chunked): a zstd layer whose tar is compressed so that
 * every regular file's data (or each chunk of it) is its own run of zstd frames, with a TOC (the
 * "manifest", zstd-compressed JSON) in a skippable frame near the end, and a footer in a last
 * skippable frame: offset, length, uncompressed length and type of the manifest as little-endian
 * uint64s, ..., then the magic "GnUlInUx". The manifest layer annotations say the same
 * (`…zstd-chunked.manifest-position` = offset:length:uncompressedLength:type) and give the
 * sha256 of the compressed manifest (`…zstd-chunked.manifest-checksum`). Entries are like
 * eStargz's (files cut into content-defined chunks, each starting a frame), with `endOffset`
 * on a file's first entry marking where its last chunk's frames end.
 */

const PREFIXES = ['io.github.containers.zstd-chunked.', 'io.containers.zstd-chunked.'];
const MAGIC = Buffer.from('GnUlInUx', 'latin1');
/** Largest manifest read. */
const MAX_MANIFEST = 256 * 1024 * 1024;
const MANIFEST_TYPE_CRFS = 1;

function annotation(annotations: Record<string, string>, key: string): string | undefined {
  for (const p of PREFIXES) if (annotations[p + key] !== undefined) return annotations[p + key];
  return undefined;
}

interface Position {
  offset: number;
  length: number;
  uncompressed: number;
  type: number;
}

/** The manifest position an annotation gives ("offset:length:uncompressedLength:type"). */
export function parsePosition(s: string): Position | undefined {
  const parts = s.split(':').map(Number);
  if (parts.length !== 4 || !parts.every((n) => Number.isSafeInteger(n) && n >= 0)) return undefined;
  return { offset: parts[0], length: parts[1], uncompressed: parts[2], type: parts[3] };
}

/**
 * The manifest position the footer gives: the blob ends with a skippable frame (magic
 * 0x184D2A5?, a 4-byte length) whose payload ends with "GnUlInUx" and starts with the four numbers.
 */
export function parseChunkedFooter(tail: Buffer): Position | undefined {
  if (tail.length < 8 + 40 || !tail.subarray(tail.length - 8).equals(MAGIC)) return undefined;
  for (const size of [40, 64]) {
    if (tail.length < size + 8) continue;
    const frame = tail.subarray(tail.length - size - 8);
    if ((frame.readUInt32LE(0) & 0xfffffff0) !== 0x184d2a50 || frame.readUInt32LE(4) !== size) continue;
    const n = (k: number) => Number(frame.readBigUInt64LE(8 + 8 * k));
    return { offset: n(0), length: n(1), uncompressed: n(2), type: n(3) };
  }
  return undefined;
}

/**
 * A zstd layer read through its zstd:chunked manifest, when it has one: undefined for a plain
 * zstd layer and, with a note, for a manifest that cannot be used (the caller then indexes the
 * layer with a pass). A manifest whose checksum is not the one the annotation names is an error.
 */
export async function openZstdChunked(blob: ByteSource, annotations: Record<string, string>, what: string, note: (m: string) => void, cacheKey: string): Promise<LazyLayer | undefined> {
  const claimed = annotation(annotations, 'manifest-checksum');
  const annotated = annotation(annotations, 'manifest-position');
  try {
    let pos = annotated !== undefined ? parsePosition(annotated) : undefined;
    if (annotated !== undefined && !pos) throw new TocError(`bad manifest-position annotation ${JSON.stringify(annotated)}`);
    if (!pos) {
      const tail = Buffer.alloc(Math.min(blob.size, 72));
      await blob.read(tail, 0, tail.length, blob.size - tail.length);
      pos = parseChunkedFooter(tail);
      if (!pos) return undefined;
    }
    if (pos.type !== MANIFEST_TYPE_CRFS) throw new TocError(`manifest type ${pos.type} is not known`);
    if (pos.length === 0 || pos.offset + pos.length > blob.size || pos.length > MAX_MANIFEST || pos.uncompressed > MAX_MANIFEST) {
      throw new TocError(`manifest at ${pos.offset}+${pos.length} does not fit the blob`);
    }
    const compressed = Buffer.alloc(pos.length);
    await blob.read(compressed, 0, pos.length, pos.offset);
    const digest = `sha256:${createHash('sha256').update(compressed).digest('hex')}`;
    if (claimed && digest !== claimed) throw new Error(`zstd:chunked manifest checksum is ${digest}, the manifest says ${claimed}`);
    let json: Buffer;
    try {
      json = zstdDecompress(compressed);
    } catch (err) {
      throw new TocError(`manifest at ${pos.offset}: ${(err as Error).message}`);
    }
    const entries = parseTocJson(json);
    // A chunk's frames end where the next chunk's begin; a file's last chunk ends at the file's
    // endOffset (tar headers follow in frames of their own).
    const bounds = [...new Set(entries.flatMap((e) => [e.offset ?? 0, e.endOffset ?? 0]).filter((o) => o > 0 && o <= pos!.offset))].sort((a, b) => a - b);
    const next = new Map(bounds.slice(0, -1).map((b, i) => [b, bounds[i + 1]]));
    const layer = buildTocLayer(entries, {
      pieceEnd: (offset) => next.get(offset) ?? 0,
      // A file in one piece has no chunkDigest; its digest covers the same bytes.
      chunkDigest: (e) => e.chunkDigest ?? (e.type === 'reg' && !e.chunkSize ? e.digest : undefined),
    });
    const stream = tocContentSource(blob, layer, async (piece) => zstdDecompress(piece), { name: 'zstd:chunked', cacheKey });
    return { index: layer.index, stream, warnings: layer.warnings.map((w) => `${what}: ${w}`) };
  } catch (err) {
    if (!(err instanceof TocError)) throw err;
    note(`${what}: zstd:chunked manifest not usable (${err.message}); reading the layer whole`);
    return undefined;
  }
}
