import { EntryType, typeName } from '../tar/entry';
import type { Tree } from '../union/tree';
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

/** Each difference in words (`mode 0644 -> 0755`); empty when the metadata is the same. */
export function metaChanges(a: NodeMeta, b: NodeMeta): string[] {
  if (a.type !== b.type) return [`type ${typeName(a.type)} -> ${typeName(b.type)}`];
  const out: string[] = [];
  if (a.mode !== b.mode) out.push(`mode ${octalMode(a.mode)} -> ${octalMode(b.mode)}`);
  if (a.uid !== b.uid || a.gid !== b.gid) out.push(`owner ${a.uid}:${a.gid} -> ${b.uid}:${b.gid}`);
  if (a.size !== b.size && a.type === EntryType.File) out.push(`size ${a.size} -> ${b.size}`);
  if (a.target !== b.target) out.push(`target ${a.target} -> ${b.target}`);
  if (a.devmajor !== b.devmajor || a.devminor !== b.devminor) out.push(`device ${a.devmajor},${a.devminor} -> ${b.devmajor},${b.devminor}`);
  return out;
}

/** JSON form: the type by name and the mode in octal, the way the rest of the output shows them. */
export function metaJson(m: NodeMeta): Record<string, unknown> {
  return {
    type: typeName(m.type),
    mode: octalMode(m.mode),
    uid: m.uid,
    gid: m.gid,
    size: m.size,
    ...(m.target !== undefined && { target: m.target }),
    ...(m.devmajor !== undefined && { devmajor: m.devmajor, devminor: m.devminor }),
  };
}
