import type { Writable } from 'node:stream';
import * as tarStream from 'tar-stream';
import type { ImageView } from '../engine';
import { EntryType } from '../tar/entry';
import type { Tree } from '../union/tree';
import { fileChunks } from './content';
import { writeWithBackpressure } from './sink';

/** A tar-stream header; `pax` holds the records tar-stream writes in a pax header before it. */
export type ExportHeader = Partial<tarStream.Header> & { name: string; pax?: Record<string, string> };

/** Largest value the 7 octal digits of a ustar uid/gid field hold. */
const USTAR_ID_MAX = 0o7777777;

const TAR_TYPE: Record<EntryType, tarStream.Header['type']> = {
  [EntryType.File]: 'file',
  [EntryType.HardLink]: 'link',
  [EntryType.Symlink]: 'symlink',
  [EntryType.CharDevice]: 'character-device',
  [EntryType.BlockDevice]: 'block-device',
  [EntryType.Directory]: 'directory',
  [EntryType.Fifo]: 'fifo',
};

export interface ExportItem {
  node: number;
  header: ExportHeader;
  /** Bytes to copy from the node after the header (regular files only; 0 for hard links). */
  size: number;
}

/**
 * The headers of the flattened rootfs, in the tree's walk order (every directory before what it
 * holds), names relative with no leading `./` (as `docker export` writes them). The second and
 * later paths of an inode become `link` entries to the first path seen, so hard links survive
 * and their bytes are stored once. Values a ustar header cannot hold (xattrs, big ids, times
 * with fractions or past 2038) go into pax records; `warn` hears about what cannot go anywhere.
 */
export function* exportItems(tree: Tree, warn: (message: string) => void = () => undefined): Generator<ExportItem> {
  const firstPath = new Map<number, string>();
  for (const node of tree.walk(0)) {
    if (node === 0) continue; // the root is the extraction directory itself
    const st = tree.stat(node);
    const path = tree.path(node);
    const pax: Record<string, string> = {};
    const header: ExportHeader = {
      name: st.type === EntryType.Directory ? `${path}/` : path,
      // The full st_mode on purpose: tar-stream replaces a falsy mode (0000) with its default.
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      mtime: new Date(Math.floor(st.mtime) * 1000),
      type: TAR_TYPE[st.type],
      size: 0,
    };
    let size = 0;
    if (st.type !== EntryType.Directory) {
      const first = firstPath.get(st.ino);
      if (first !== undefined) {
        header.type = 'link';
        header.linkname = first;
      } else {
        firstPath.set(st.ino, path);
        if (st.type === EntryType.File) size = header.size = st.size;
        if (st.type === EntryType.Symlink) header.linkname = tree.symlinkTarget(node) ?? '';
        if (st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice) {
          header.devmajor = st.devmajor;
          header.devminor = st.devminor;
        }
      }
    }
    if (st.uid > USTAR_ID_MAX) pax.uid = String(st.uid);
    if (st.gid > USTAR_ID_MAX) pax.gid = String(st.gid);
    if (!(Number.isInteger(st.mtime) && st.mtime >= 0 && st.mtime < 2 ** 31)) pax.mtime = String(st.mtime);
    for (const [key, value] of Object.entries(tree.xattrs(node))) {
      // tar-stream writes pax values as UTF-8 text; a binary value (security.capability) would be
      // mangled, so it is left out and said so rather than stored wrong.
      if (Buffer.from(value.toString('utf8'), 'utf8').equals(value)) pax[`SCHILY.xattr.${key}`] = value.toString('utf8');
      else warn(`/${path}: xattr ${key} has a binary value, which the tar writer cannot store; left out`);
    }
    if (Object.keys(pax).length) header.pax = pax;
    yield { node, header, size };
  }
}

/**
 * Writes the tree as one tar to `out`. Entries go to tar-stream's pack one at a time, file bytes
 * in chunks read straight from the layers, and the pack's output is written with backpressure:
 * memory stays at a few chunks whatever the image's size.
 */
export async function writeTreeTar(view: ImageView, tree: Tree, out: Writable, warn?: (message: string) => void): Promise<{ entries: number }> {
  const pack = tarStream.pack();
  const pump = (async () => {
    for await (const chunk of pack) await writeWithBackpressure(out, chunk as Buffer);
  })();
  // If the output fails (a closed pipe, a full disk), tearing the pack down fails the entry
  // being written, which ends the loop below instead of leaving it waiting for room.
  pump.catch((err: Error) => pack.destroy(err));
  let entries = 0;
  try {
    for (const item of exportItems(tree, warn)) {
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(item.header, (err) => (err ? reject(err) : resolve()));
        if (item.header.type !== 'file') return;
        (async () => {
          for await (const chunk of fileChunks(view, tree, item.node)) await writeWithBackpressure(sink, chunk);
          sink.end(null);
        })().catch((err: Error) => {
          sink.destroy(err);
          reject(err);
        });
      });
      entries++;
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    // The output's own failure, when there was one, says more than "pack stream destroyed".
    await pump;
    throw err;
  }
  await pump;
  return { entries };
}
