import type { ImageView } from '../engine';
import { displayName } from '../names';
import { EntryType } from '../tar/entry';
import { encodeEntry, endOfArchive, padding, type TarWriteEntry } from '../tar/write';
import type { Tree } from '../union/tree';
import { fileChunks } from './content';

export interface ExportItem {
  node: number;
  entry: TarWriteEntry;
  /** Bytes to copy from the node after the header (regular files only; 0 for hard links). */
  size: number;
}

/**
 * The members of the flattened rootfs, in the tree's walk order (every directory before what it
 * holds), names relative with no leading `./` (as `docker export` writes them). The second and
 * later paths of an inode become hard links to the first path seen, so hard links survive and
 * their bytes are stored once. Names, link targets and xattrs keep their exact bytes and mtimes
 * their exact value (src/tar/write.ts puts in pax records what ustar cannot hold).
 */
export function* exportItems(tree: Tree): Generator<ExportItem> {
  const firstPath = new Map<number, string>();
  for (const node of tree.walk(0)) {
    if (node === 0) continue; // the root is the extraction directory itself
    const st = tree.stat(node);
    const path = tree.path(node);
    const entry: TarWriteEntry = {
      name: st.type === EntryType.Directory ? `${path}/` : path,
      type: st.type,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: 0,
      mtime: { sec: st.mtime, nsec: st.mtimeNsec },
      xattrs: tree.xattrs(node),
    };
    let size = 0;
    if (st.type !== EntryType.Directory) {
      const first = firstPath.get(st.ino);
      if (first !== undefined) {
        entry.type = EntryType.HardLink;
        entry.linkname = first;
      } else {
        firstPath.set(st.ino, path);
        if (st.type === EntryType.File) size = entry.size = st.size;
        if (st.type === EntryType.Symlink) entry.linkname = tree.symlinkTarget(node) ?? '';
        if (st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice) {
          entry.devmajor = st.devmajor;
          entry.devminor = st.devminor;
        }
      }
    }
    yield { node, entry, size };
  }
}

/**
 * The tree as one tar, chunk by chunk: each header, then the file's bytes read straight from the
 * layers. Written with `stream.promises.pipeline`, the consumer's pace drives the reads, so
 * memory stays at a few chunks whatever the image's size.
 */
export async function* treeTarChunks(view: ImageView, tree: Tree): AsyncGenerator<Buffer> {
  for (const item of exportItems(tree)) {
    yield encodeEntry(item.entry);
    if (item.size === 0) continue;
    let written = 0;
    for await (const chunk of fileChunks(view, tree, item.node)) {
      yield chunk;
      written += chunk.length;
    }
    // The header promised `size` bytes; anything else would shift every member after it.
    if (written !== item.size) throw new Error(`${displayName(`/${tree.path(item.node)}`)}: read ${written} of ${item.size} bytes`);
    yield padding(item.size);
  }
  yield endOfArchive();
}
