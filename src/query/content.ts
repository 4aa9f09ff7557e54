import type { ImageView } from '../engine';
import type { Tree } from '../union/tree';

/** Large enough to keep reads efficient, small enough that no command holds a big file whole. */
export const CHUNK_SIZE = 1024 * 1024;

/** A file's bytes in order, one fresh buffer per chunk (a consumer may keep a chunk it was given). */
export async function* fileChunks(view: ImageView, tree: Tree, node: number, chunkSize = CHUNK_SIZE): AsyncGenerator<Buffer> {
  const size = tree.stat(node).size;
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(chunkSize, size - pos));
    const n = await view.read(tree, node, buf, 0, buf.length, pos);
    if (n <= 0) throw new Error(`${tree.path(node)}: the layer ended ${size - pos} bytes early`);
    pos += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}
