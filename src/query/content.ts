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

/** One side of a content comparison: a node of a tree, read through the view it came from. */
export interface FileRef {
  view: ImageView;
  tree: Tree;
  node: number;
}

/**
 * Whether two files of equal size hold the same bytes, read side by side in chunks so that
 * neither is held whole and the first difference stops the reading.
 */
export async function sameContent(a: FileRef, b: FileRef, size: number, chunkSize = CHUNK_SIZE): Promise<boolean> {
  const bufA = Buffer.allocUnsafe(Math.min(chunkSize, size));
  const bufB = Buffer.allocUnsafe(Math.min(chunkSize, size));
  for (let pos = 0; pos < size; ) {
    const want = Math.min(chunkSize, size - pos);
    const [na, nb] = await Promise.all([a.view.read(a.tree, a.node, bufA, 0, want, pos), b.view.read(b.tree, b.node, bufB, 0, want, pos)]);
    if (na !== nb) return false;
    if (na <= 0) return true;
    if (bufA.compare(bufB, 0, nb, 0, na) !== 0) return false;
    pos += na;
  }
  return true;
}
