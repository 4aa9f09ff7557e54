import type { TarIndex } from '../tar/tar-index';
import { EntryType } from '../tar/entry';

/*
 * Image efficiency exactly as dive measures it (github.com/wagoodman/dive: dive/filetree
 * efficiency.go, file_tree.go, file_node.go; dive/image/analysis.go; the layer trees of
 * dive/image/docker/image_archive.go), re-implemented here, quirks included, so that a CI gate
 * moved from `dive --ci` to `ocimount efficiency` passes and fails on the same numbers:
 *
 *  - Each layer is a tree of its tar entries (path cleaned, the root skipped). A missing parent
 *    is made as a node with no metadata (size 0, not a directory); a name starting `.wh..wh.`
 *    (opaque markers) is never added, and opaque markers have no other effect.
 *  - Every leaf of every layer (a node without children: files, empty directories, whiteouts),
 *    visited children first in byte order of names, adds to its path's record: its size, or for
 *    a whiteout (`.wh.NAME`, recorded at NAME) the sizes of everything under NAME in the stacked
 *    tree of the layers below, when that node is a directory there (0 when it is a file). A
 *    whiteout of a path missing below stops the visit of that layer (dive logs it at debug level
 *    and goes on with the next layer), and its record keeps dive's "not measured" -1.
 *  - A path recorded twice or more is an inefficiency; wasted bytes are the sum of their
 *    cumulative sizes; the score is the sum of each path's smallest size over the sum of all.
 *  - A layer's size is the sum of its tar entries' size fields; the user layers are all but the
 *    first; userWastedPercent is wasted / user size, as a fraction.
 *  - The stacked tree below a layer is dive's StackTreeRange(trees, 0, n-1): layer 0 copied, then
 *    layers 0..n-1 stacked on it (every node of the upper tree, children first: a whiteout
 *    removes its path, any other node, parents it only implies included, is added with its own
 *    metadata, replacing what was there).
 */

interface Info {
  size: number;
  isDir: boolean;
}

class Node {
  readonly children = new Map<string, Node>();
  info: Info = { size: 0, isDir: false };
  constructor(
    readonly name: string,
    readonly parent: Node | undefined,
  ) {}

  /** dive's FileNode.Path: `/` + names, `.wh.` cut from this node's own name. */
  path(): string {
    const names: string[] = [];
    for (let n: Node | undefined = this; n?.parent; n = n.parent) names.push(n === this ? stripWhiteout(n.name) : n.name);
    return `/${names.reverse().join('/')}`.split('//').join('/');
  }

  isWhiteout(): boolean {
    return this.name.startsWith(WHITEOUT);
  }

  sortedChildren(): Node[] {
    return [...this.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

const WHITEOUT = '.wh.';
const DOUBLE_WHITEOUT = '.wh..wh..';
const stripWhiteout = (name: string) => (name.startsWith(WHITEOUT) ? name.slice(WHITEOUT.length) : name);

class LayerTree {
  readonly root = new Node('', undefined);
  /** Sum of the size fields of the layer's entries (dive's FileTree.FileSize). */
  fileSize = 0;

  /** dive's AddPath; `false` when a `.wh..wh.` component stops it. */
  add(path: string, info: Info): void {
    const names = path.split('/').filter((n) => n !== '');
    let node = this.root;
    for (let i = 0; i < names.length; i++) {
      let next = node.children.get(names[i]);
      if (!next) {
        if (names[i].startsWith(DOUBLE_WHITEOUT)) return;
        next = new Node(names[i], node);
        node.children.set(names[i], next);
      }
      node = next;
      if (i === names.length - 1) node.info = { ...info };
    }
  }

  get(path: string): Node | undefined {
    let node: Node | undefined = this.root;
    for (const name of path.split('/')) {
      if (name === '') continue;
      node = node.children.get(name);
      if (!node) return undefined;
    }
    return node;
  }

  remove(path: string): void {
    const node = this.get(path);
    if (node && node.parent) node.parent.children.delete(node.name);
  }

  copy(): LayerTree {
    const out = new LayerTree();
    out.fileSize = this.fileSize;
    const clone = (from: Node, to: Node) => {
      for (const [name, child] of from.children) {
        const c = new Node(name, to);
        c.info = { ...child.info };
        to.children.set(name, c);
        clone(child, c);
      }
    };
    clone(this.root, out.root);
    return out;
  }

  /** dive's Stack: `upper` grafted onto this tree. */
  stack(upper: LayerTree): void {
    visitChildFirst(upper.root, (node) => {
      if (node.isWhiteout()) this.remove(node.path());
      else this.add(node.path(), node.info);
      return true;
    });
  }
}

/** Children first, names in byte order, never the root; stops when `visit` returns false. */
function visitChildFirst(node: Node, visit: (n: Node) => boolean): boolean {
  for (const child of node.sortedChildren()) if (!visitChildFirst(child, visit)) return false;
  return node.parent === undefined ? true : visit(node);
}

/** One layer's tree the way dive reads a layer tar. */
export function diveLayerTree(index: TarIndex): LayerTree {
  const tree = new LayerTree();
  for (let i = 0; i < index.count; i++) {
    const path = index.path(i);
    if (path === '') continue;
    const size = index.sizes[i];
    tree.fileSize += size;
    tree.add(path, { size, isDir: index.type(i) === EntryType.Directory });
  }
  return tree;
}

export interface Inefficiency {
  /** `/etc/passwd` as a byte string. */
  path: string;
  count: number;
  cumulativeSize: number;
}

export interface EfficiencyReport {
  efficiency: number;
  sizeBytes: number;
  userSizeBytes: number;
  wastedBytes: number;
  /** wasted / user size; NaN when the image has no user layers (dive's Go float64 division). */
  userWastedPercent: number;
  /** Largest cumulative size first (dive's report order). */
  inefficiencies: Inefficiency[];
  /** Layer sizes as dive computes them, bottom first. */
  layerSizes: number[];
}

interface Record_ {
  path: string;
  count: number;
  cumulativeSize: number;
  minSize: number;
}

export function diveEfficiency(indexes: readonly TarIndex[]): EfficiencyReport {
  const trees = indexes.map(diveLayerTree);
  const records = new Map<string, Record_>();
  const inefficient: Record_[] = [];
  let stacked: LayerTree | undefined = trees.length ? trees[0].copy() : undefined;

  trees.forEach((tree, idx) => {
    visitChildFirst(tree.root, (node) => {
      if (node.children.size > 0) return true;
      const path = node.path();
      let rec = records.get(path);
      if (!rec) {
        rec = { path, count: 0, cumulativeSize: 0, minSize: -1 };
        records.set(path, rec);
      }
      let size = 0;
      if (node.isWhiteout()) {
        const below = stacked!.get(path);
        if (!below) return false; // dive: "path does not exist" ends this layer's visit
        if (below.info.isDir) visitChildFirst(below, (n) => ((size += n.info.size), true));
        // visitChildFirst never visits a root; dive's sizer on the stacked root is the same.
      } else {
        size = node.info.size;
      }
      rec.cumulativeSize += size;
      if (rec.minSize < 0 || size < rec.minSize) rec.minSize = size;
      rec.count++;
      if (rec.count === 2) inefficient.push(rec);
      return true;
    });
    // The stacked tree for the next layer's whiteouts: layers 0..idx on a copy of layer 0.
    stacked!.stack(tree);
  });

  let minimum = 0;
  let discovered = 0;
  for (const r of records.values()) {
    minimum += r.minSize;
    discovered += r.cumulativeSize;
  }
  const efficiency = discovered === 0 ? 1 : minimum / discovered;
  // dive sorts ascending by cumulative size (for so few entries Go's sort is an insertion sort,
  // which keeps the visit order of equals) and reports from the largest down.
  const ascending = inefficient.map((r, i) => ({ r, i })).sort((a, b) => a.r.cumulativeSize - b.r.cumulativeSize || a.i - b.i);
  const layerSizes = trees.map((t) => t.fileSize);
  const sizeBytes = layerSizes.reduce((s, n) => s + n, 0);
  const userSizeBytes = sizeBytes - (layerSizes[0] ?? 0);
  const wastedBytes = inefficient.reduce((s, r) => s + r.cumulativeSize, 0);
  return {
    efficiency,
    sizeBytes,
    userSizeBytes,
    wastedBytes,
    userWastedPercent: wastedBytes / userSizeBytes,
    inefficiencies: ascending.reverse().map(({ r }) => ({ path: r.path, count: r.count, cumulativeSize: r.cumulativeSize })),
    layerSizes,
  };
}
