import type { ByteSource } from '../io/byte-source';
import type { TarIndex } from '../tar/tar-index';

/**
 * Reads bytes of one tar entry's file content from its layer's (uncompressed) stream, exactly
 * as `tar -x` would write them: a plain file is one run at its data offset; a sparse file maps
 * logical ranges onto its stored runs and fills the holes with zeros.
 */
export async function readEntryContent(
  layer: ByteSource,
  index: TarIndex,
  entry: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  const size = index.sizes[entry];
  if (position >= size || length <= 0) return 0;
  const want = Math.min(length, size - position);
  const dataOffset = index.dataOffsets[entry];
  const sparse = index.extras.get(entry)?.sparse;
  if (!sparse) {
    const n = await layer.read(buf, offset, want, dataOffset + position);
    if (n !== want) throw new Error(`short read: ${n} of ${want} bytes at ${dataOffset + position}`);
    return n;
  }
  buf.fill(0, offset, offset + want);
  let stored = 0;
  for (const run of sparse) {
    const from = Math.max(run.offset, position);
    const to = Math.min(run.offset + run.length, position + want);
    if (from < to) {
      const n = await layer.read(buf, offset + (from - position), to - from, dataOffset + stored + (from - run.offset));
      if (n !== to - from) throw new Error(`short read in sparse data at ${dataOffset + stored}`);
    }
    stored += run.length;
  }
  return want;
}
