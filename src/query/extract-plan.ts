import { EntryType, typeName, type TypeName } from '../tar/entry';
import type { NodeStat, Tree } from '../union/tree';

/** What extract writes: the type's name (a hard link is written as a file, or linked to one). */
export type ExtractKind = TypeName;

export interface ExtractItem {
  node: number;
  kind: ExtractKind;
  /** Path below the output directory, the node's path in the image (`etc/passwd`). */
  rel: string;
  stat: NodeStat;
  /** symlink: the target, written as it is. */
  target?: string;
  /** hardlink: `rel` of the first extracted path of the same inode, which this one links to. */
  linkTo?: string;
}

const kindOf = (type: EntryType): ExtractKind => typeName(type === EntryType.HardLink ? EntryType.File : type);

/**
 * What to write for the subtrees at `roots`, each node once, every directory before what it
 * holds. Nodes sharing an inode become one written file and hard links to it, but only among
 * the extracted paths: a link to something left out is written as its own copy.
 */
export function planExtract(tree: Tree, roots: readonly number[]): ExtractItem[] {
  const items: ExtractItem[] = [];
  const planned = new Set<number>();
  const firstOfInode = new Map<number, string>();
  for (const root of roots) {
    for (const node of tree.walk(root)) {
      if (planned.has(node)) continue;
      planned.add(node);
      if (node === 0) continue; // the root is the output directory itself
      const stat = tree.stat(node);
      const rel = tree.path(node);
      const item: ExtractItem = { node, kind: kindOf(stat.type), rel, stat };
      if (item.kind !== 'dir') {
        const first = firstOfInode.get(stat.ino);
        if (first !== undefined) {
          item.kind = 'hardlink';
          item.linkTo = first;
        } else firstOfInode.set(stat.ino, rel);
      }
      if (item.kind === 'symlink') item.target = tree.symlinkTarget(node) ?? '';
      items.push(item);
    }
  }
  return items;
}
