/**
 * The obvious union build (a Map of children per directory), kept as the reference the lean
 * column build in src/union/build.ts must agree with row for row (test/union-build.test.ts).
 */
import { baseName, parentOf } from '../../src/paths';
import { EntryType } from '../../src/tar/entry';
import { displayName } from '../../src/names';
import type { TarIndex } from '../../src/tar/tar-index';
import { Tree, type NodeSource } from '../../src/union/tree';
import { whiteoutMeaning } from '../../src/union/whiteout';
import { warning, type Warning } from '../../src/warnings';
import type { BuildOptions, BuiltTree } from '../../src/union/build';

interface MutableNode {
  name: string;
  obj: NodeSource;
  /** Present exactly when the node is a directory. */
  children?: Map<string, MutableNode>;
}

const implied = (layerSlot: number): NodeSource => ({ layerSlot, entry: -1 });

/**
 * Builds the file tree of the layers in `apply` (slots of `layers`, bottom first), the way containerd's and go-containerregistry's
 * extractors apply them: per layer, first the opaque markers and whiteouts delete from what lower
 * layers left (so they can never touch the layer's own entries, wherever they sit in the tar),
 * then the layer's entries apply in tar order: a later duplicate wins, a directory over a
 * directory merges, anything else replaces the old path and its subtree.
 */
export function buildTree(layers: readonly TarIndex[], apply: readonly number[], opts: BuildOptions): BuiltTree {
  const warnings: Warning[] = [];
  const name = opts.layerName ?? ((slot: number) => `layer ${slot}`);
  const root: MutableNode = { name: '', obj: implied(apply[0] ?? 0), children: new Map() };

  const lookup = (path: string): MutableNode | undefined => {
    let node: MutableNode | undefined = root;
    if (path === '') return node;
    for (const part of path.split('/')) {
      node = node.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  };

  /** The directory at `path`, created (or put in place of a non-directory) where missing. */
  const ensureDir = (path: string, slot: number): MutableNode => {
    let node = root;
    if (path === '') return node;
    for (const part of path.split('/')) {
      let next = node.children!.get(part);
      if (!next || !next.children) {
        next = { name: part, obj: implied(slot), children: new Map() };
        node.children!.set(part, next);
      }
      node = next;
    }
    return node;
  };

  for (const slot of apply) {
    const index = layers[slot];
    const adds: number[] = [];
    const opaque: string[] = [];
    const whiteouts: string[] = [];
    for (let i = 0; i < index.count; i++) {
      const path = index.path(i);
      const meaning = opts.mode === 'merged' ? whiteoutMeaning(path) : ({ kind: 'entry' } as const);
      if (meaning.kind === 'entry') {
        adds.push(i);
        continue;
      }
      if (index.type(i) === EntryType.Directory || index.sizes[i] > 0) {
        const text = `whiteout ${displayName(path)} is a ${index.type(i) === EntryType.Directory ? 'directory' : 'non-empty file'}; applied by its name`;
        warnings.push(warning('whiteout', `${name(slot)}: ${text}`, { layer: name(slot), entry: path }));
      }
      if (meaning.kind === 'opaque') opaque.push(meaning.dir);
      else if (meaning.kind === 'whiteout') whiteouts.push(meaning.target);
      else if (meaning.kind === 'invalid') warnings.push(warning('whiteout', `${name(slot)}: ignored invalid whiteout ${displayName(path)}`, { layer: name(slot), entry: path }));
    }

    for (const dir of opaque) {
      const node = lookup(dir);
      if (node?.children) node.children.clear();
    }
    for (const path of whiteouts) {
      const node = lookup(parentOf(path));
      node?.children?.delete(baseName(path));
    }
    // An opaque marker says its directory exists in this layer, even with nothing else in it.
    for (const dir of opaque) ensureDir(dir, slot);

    for (const i of adds) {
      const path = index.path(i);
      const type = index.type(i);
      const obj: NodeSource = { layerSlot: slot, entry: i };
      if (path === '') {
        if (type === EntryType.Directory) root.obj = obj;
        continue;
      }
      const parent = ensureDir(parentOf(path), slot);
      const base = baseName(path);
      const existing = parent.children!.get(base);
      if (type === EntryType.Directory) {
        if (existing?.children) existing.obj = obj;
        else parent.children!.set(base, { name: base, obj, children: new Map() });
        continue;
      }
      if (type === EntryType.HardLink) {
        const targetPath = index.extras.get(i)?.linkname ?? '';
        const target = lookup(targetPath);
        let targetObj = target && !target.children ? target.obj : undefined;
        if (!target && opts.resolveOutside) targetObj = opts.resolveOutside(targetPath);
        if (!targetObj) {
          const text = `hard link ${displayName(path)} -> ${displayName(targetPath)}: target ${target ? 'is a directory' : 'not found'}; skipped`;
          warnings.push(warning('hard-link', `${name(slot)}: ${text}`, { layer: name(slot), entry: path }));
          continue;
        }
        if (target && existing === target) continue;
        parent.children!.set(base, { name: base, obj: targetObj });
        continue;
      }
      parent.children!.set(base, { name: base, obj });
    }
  }

  return { tree: freeze(root, layers), warnings };
}

/** Numbers nodes breadth-first (children sorted) and file objects by first appearance. */
function freeze(root: MutableNode, layers: readonly TarIndex[]): Tree {
  const nodes: MutableNode[] = [root];
  const parents: number[] = [-1];
  const childFirst: number[] = [];
  const childCount: number[] = [];
  for (let n = 0; n < nodes.length; n++) {
    const node = nodes[n];
    const kids = node.children ? [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : [];
    childFirst.push(nodes.length);
    childCount.push(kids.length);
    for (const k of kids) {
      nodes.push(k);
      parents.push(n);
    }
  }
  const objIds = new Map<NodeSource, number>();
  const objLayer: number[] = [];
  const objEntry: number[] = [];
  const objNlink: number[] = [];
  const nodeObj = new Int32Array(nodes.length);
  nodes.forEach((node, n) => {
    let id = objIds.get(node.obj);
    if (id === undefined) {
      id = objLayer.length;
      objIds.set(node.obj, id);
      objLayer.push(node.obj.layerSlot);
      objEntry.push(node.obj.entry);
      objNlink.push(0);
    }
    objNlink[id]++;
    nodeObj[n] = id;
  });
  const encoded = nodes.map((n) => Buffer.from(n.name, 'latin1'));
  const nameStart = new Uint32Array(nodes.length + 1);
  encoded.forEach((b, i) => (nameStart[i + 1] = nameStart[i] + b.length));
  return new Tree(
    layers,
    Buffer.concat(encoded, nameStart[nodes.length]),
    nameStart,
    Int32Array.from(parents),
    Int32Array.from(childFirst),
    Int32Array.from(childCount),
    nodeObj,
    Uint16Array.from(objLayer),
    Int32Array.from(objEntry),
    Uint32Array.from(objNlink),
  );
}
