import type { ImageView } from '../engine';
import { displayName, nameToText } from '../names';
import type { IndexedLayer } from '../layers/index-layer';
import { EntryType, typeName } from '../tar/entry';
import { readEntryContent } from '../tar/entry-content';
import type { Tree } from '../union/tree';
import { CHUNK_SIZE } from './content';
import { octalMode } from './format';

/**
 * What two paths are compared on. Modification times are left out on purpose: every layer that
 * writes a file under a directory bumps the directory's mtime, and rebuilding the same image
 * changes them all, so they would drown the changes a program could notice.
 */
export interface NodeMeta {
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  target?: string;
  devmajor?: number;
  devminor?: number;
}

export function nodeMeta(tree: Tree, node: number): NodeMeta {
  const st = tree.stat(node);
  const meta: NodeMeta = { type: st.type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size };
  const target = tree.symlinkTarget(node);
  if (target !== undefined) meta.target = target;
  if (st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice) {
    meta.devmajor = st.devmajor;
    meta.devminor = st.devminor;
  }
  return meta;
}

/**
 * The one definition of a change, shared by `blame` and `diff`. Two versions of a path differ
 * in some of these and in nothing else:
 *
 * - `type`: file, directory, symlink, device, FIFO (when it differs, nothing else is compared);
 * - `content`: a file's bytes (a different size, or equal sizes and different bytes), a device's
 *   numbers;
 * - `mode`: the permission bits, setuid/setgid/sticky included;
 * - `owner`: uid or gid;
 * - `target`: a symlink's target;
 * - `xattrs`: any extended attribute added, removed or changed.
 *
 * Modification times are never a change: a layer that writes a file again with nothing above
 * different (to add a hard link to it, or because its build step touched it) has *re-added* it
 * with the same content, which both commands say in those words and not as a modification.
 */
export type ChangeField = 'content' | 'mode' | 'owner' | 'type' | 'target' | 'xattrs';

/** One version of a path: what it is, and how to read its bytes when it is a file. */
export interface PathVersion {
  meta: NodeMeta;
  xattrs: Record<string, Buffer>;
  /** Equal keys mean equal bytes (the same row of the same layer tar, named by its diff_id): nothing to read. */
  key?: string;
  read?: (buf: Buffer, offset: number, length: number, position: number) => Promise<number>;
}

type LayerLike = Pick<IndexedLayer, 'index' | 'stream' | 'descriptor'>;

/** A directory no layer wrote (made for a path below it): what the merged tree shows for it. */
export const IMPLICIT_DIRECTORY: PathVersion = { meta: { type: EntryType.Directory, mode: 0o755, uid: 0, gid: 0, size: 0 }, xattrs: {} };

/**
 * Row `entry` of layer `slot`, seen the way the merged tree shows it (union/tree.ts stat): a
 * symlink's mode is 0777, only files have a size. A hard link row stands for a file; callers pass
 * the row of the link's target, which holds the file's bytes.
 */
export function entryVersion(layers: readonly LayerLike[], slot: number, entry: number): PathVersion {
  const layer = layers[slot];
  const idx = layer.index;
  const raw = idx.type(entry);
  const type = raw === EntryType.HardLink ? EntryType.File : raw;
  const x = idx.extras.get(entry);
  const meta: NodeMeta = {
    type,
    mode: type === EntryType.Symlink ? 0o777 : idx.modes[entry] & 0o7777,
    uid: idx.uids[entry],
    gid: idx.gids[entry],
    size: type === EntryType.File ? idx.sizes[entry] : type === EntryType.Symlink ? Buffer.byteLength(x?.linkname ?? '') : 0,
  };
  if (type === EntryType.Symlink && x?.linkname !== undefined) meta.target = x.linkname;
  if (type === EntryType.CharDevice || type === EntryType.BlockDevice) {
    meta.devmajor = x?.devmajor ?? 0;
    meta.devminor = x?.devminor ?? 0;
  }
  return {
    meta,
    xattrs: x?.xattrs ?? {},
    key: `${layer.descriptor.diffId}#${entry}`,
    read: type === EntryType.File ? (buf, offset, length, position) => readEntryContent(layer.stream, idx, entry, buf, offset, length, position) : undefined,
  };
}

/** A node of a tree (the merged tree, a layer's): the same shape as entryVersion gives. */
export function treeVersion(view: ImageView, tree: Tree, node: number): PathVersion {
  const src = tree.source(node);
  if (!src) return { meta: nodeMeta(tree, node), xattrs: {} };
  return entryVersion(view.layers, src.layerSlot, src.entry);
}

/** Which of the fields differ from `a` to `b`, in a fixed order; empty when none does. */
export async function compareVersions(a: PathVersion, b: PathVersion): Promise<ChangeField[]> {
  if (a.meta.type !== b.meta.type) return ['type'];
  const out: ChangeField[] = [];
  if (!(await sameContent(a, b))) out.push('content');
  if (a.meta.mode !== b.meta.mode) out.push('mode');
  if (a.meta.uid !== b.meta.uid || a.meta.gid !== b.meta.gid) out.push('owner');
  if (a.meta.target !== b.meta.target) out.push('target');
  if (changedXattrs(a.xattrs, b.xattrs).length) out.push('xattrs');
  return out;
}

/**
 * Content of two versions of one type. Files: a different size is a difference without reading
 * anything; the same layer row is the same bytes; otherwise both are read side by side in chunks,
 * each byte once, stopping at the first difference.
 */
async function sameContent(a: PathVersion, b: PathVersion): Promise<boolean> {
  const type = a.meta.type;
  if (type === EntryType.CharDevice || type === EntryType.BlockDevice) return a.meta.devmajor === b.meta.devmajor && a.meta.devminor === b.meta.devminor;
  if (type !== EntryType.File) return true;
  const size = a.meta.size;
  if (size !== b.meta.size) return false;
  if (size === 0 || (a.key !== undefined && a.key === b.key)) return true;
  if (!a.read || !b.read) return false;
  const bufA = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, size));
  const bufB = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, size));
  for (let pos = 0; pos < size; ) {
    const want = Math.min(CHUNK_SIZE, size - pos);
    const [na, nb] = await Promise.all([a.read(bufA, 0, want, pos), b.read(bufB, 0, want, pos)]);
    if (na !== nb) return false;
    if (na <= 0) return true;
    if (bufA.compare(bufB, 0, nb, 0, na) !== 0) return false;
    pos += na;
  }
  return true;
}

/** Names of the extended attributes added, removed or changed, sorted. */
function changedXattrs(a: Record<string, Buffer>, b: Record<string, Buffer>): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((n) => !a[n] || !b[n] || !Buffer.from(a[n]).equals(Buffer.from(b[n]))).sort();
}

/** What both commands print for a path written again with nothing changed. */
export const READDED = 're-added, same content';

/** Each changed field in words (`mode 0644 -> 0755`), in the order of `fields`. */
export function describeChanges(fields: readonly ChangeField[], a: PathVersion, b: PathVersion): string[] {
  return fields.map((f) => {
    switch (f) {
      case 'type':
        return `type ${typeName(a.meta.type)} -> ${typeName(b.meta.type)}`;
      case 'content':
        if (a.meta.devmajor !== undefined) return `content: device ${a.meta.devmajor},${a.meta.devminor} -> ${b.meta.devmajor},${b.meta.devminor}`;
        return a.meta.size === b.meta.size ? 'content' : `content: ${a.meta.size} -> ${b.meta.size} bytes`;
      case 'mode':
        return `mode ${octalMode(a.meta.mode)} -> ${octalMode(b.meta.mode)}`;
      case 'owner':
        return `owner ${a.meta.uid}:${a.meta.gid} -> ${b.meta.uid}:${b.meta.gid}`;
      case 'target':
        return `target ${displayName(a.meta.target ?? '')} -> ${displayName(b.meta.target ?? '')}`;
      case 'xattrs':
        return `xattrs ${changedXattrs(a.xattrs, b.xattrs).map(displayName).join(' ')}`;
    }
  });
}

/** JSON form: the type by name and the mode in octal, the way the rest of the output shows them. */
export function metaJson(m: NodeMeta): Record<string, unknown> {
  return {
    type: typeName(m.type),
    mode: octalMode(m.mode),
    uid: m.uid,
    gid: m.gid,
    size: m.size,
    ...(m.target !== undefined && { target: nameToText(m.target) }),
    ...(m.devmajor !== undefined && { devmajor: m.devmajor, devminor: m.devminor }),
  };
}
