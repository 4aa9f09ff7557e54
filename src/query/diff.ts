import type { ImageView } from '../engine';
import { parentOf } from '../paths';
import { EntryType } from '../tar/entry';
import type { TarIndex } from '../tar/tar-index';
import { buildTree } from '../union/build';
import type { Tree } from '../union/tree';
import { whiteoutMeaning } from '../union/whiteout';
import { compareVersions, describeChanges, nodeMeta, READDED, treeVersion, type ChangeField, type NodeMeta } from './compare';
import { displayPath } from './format';

/** A added, M modified (see compare.ts for what counts), D deleted, R re-added with nothing changed. */
export type ChangeKind = 'A' | 'M' | 'D' | 'R';

export interface DiffEntry {
  kind: ChangeKind;
  /** `/etc/passwd`. */
  path: string;
  before?: NodeMeta;
  after?: NodeMeta;
  /** For M: which fields differ (compareVersions); empty otherwise. */
  changed: ChangeField[];
  /** For M: the same in words (`mode 0644 -> 0755`, `content`); for R: `re-added, same content`. */
  changes: string[];
}

/** One side of a comparison: a tree and the view whose layers its nodes read from. */
export interface TreeSide {
  view: ImageView;
  tree: Tree;
}

export interface DiffOptions {
  /**
   * Whether a directory present on both sides can differ below (by its path, '' for the root);
   * a layer diff answers from the layer's own paths, so untouched subtrees are never walked.
   */
  descendInto?: (path: string) => boolean;
  /**
   * Paths (as stored, '' for the root) the `b` side wrote again: a layer diff passes its layer's
   * non-directory paths, so that one written again with nothing changed is listed as R.
   */
  rewritten?: (path: string) => boolean;
}

/**
 * Where a node's bytes and metadata come from, across views: the same row of the same layer
 * tar (by diff_id, the digest of those very bytes) cannot differ, so shared base layers are
 * never read. Directories no layer wrote have no identity and are compared by their metadata.
 */
function identity(side: TreeSide, node: number): string | undefined {
  const src = side.tree.source(node);
  return src && `${side.view.layers[src.layerSlot].descriptor.diffId}#${src.entry}`;
}

/**
 * What differs from tree `a` to tree `b`, path by path in name order: A (only in b), D (only
 * in a, each path below a removed directory too), M (in both, and compareVersions finds a
 * difference: content, mode, owner, type, link target or xattrs), R (in both with no difference,
 * but written again on the `b` side, see DiffOptions.rewritten).
 */
export async function diffTrees(a: TreeSide, b: TreeSide, opts: DiffOptions = {}): Promise<DiffEntry[]> {
  const out: DiffEntry[] = [];
  const descend = opts.descendInto ?? (() => true);

  const whole = (side: TreeSide, node: number, kind: 'A' | 'D', includeSelf: boolean) => {
    for (const n of side.tree.walk(node)) {
      if (n === node && !includeSelf) continue;
      const meta = nodeMeta(side.tree, n);
      out.push({ kind, path: displayPath(side.tree.path(n)), ...(kind === 'A' ? { after: meta } : { before: meta }), changed: [], changes: [] });
    }
  };

  const pair = async (an: number, bn: number): Promise<void> => {
    const path = a.tree.path(an);
    const same = identity(a, an);
    const sameSource = same !== undefined && same === identity(b, bn);
    const am = nodeMeta(a.tree, an);
    const bm = nodeMeta(b.tree, bn);
    if (!sameSource) {
      const av = treeVersion(a.view, a.tree, an);
      const bv = treeVersion(b.view, b.tree, bn);
      const changed = await compareVersions(av, bv);
      if (changed.length) out.push({ kind: 'M', path: displayPath(path), before: am, after: bm, changed, changes: describeChanges(changed, av, bv) });
      else if (bm.type !== EntryType.Directory && opts.rewritten?.(path)) out.push({ kind: 'R', path: displayPath(path), before: am, after: bm, changed, changes: [READDED] });
      if (am.type !== bm.type) {
        // A directory turned into something else (or back): what was below it went or came with it.
        if (am.type === EntryType.Directory) whole(a, an, 'D', false);
        if (bm.type === EntryType.Directory) whole(b, bn, 'A', false);
        return;
      }
    }
    if (am.type === EntryType.Directory && descend(path)) await directory(an, bn);
  };

  const directory = async (an: number, bn: number): Promise<void> => {
    const ak = a.tree.children(an);
    const bk = b.tree.children(bn);
    let i = 0;
    let j = 0;
    // Both trees keep children sorted by the same comparison, so one merge pass pairs them.
    while (i < ak.length || j < bk.length) {
      const an2 = ak[i];
      const bn2 = bk[j];
      const aName = i < ak.length ? a.tree.name(an2) : undefined;
      const bName = j < bk.length ? b.tree.name(bn2) : undefined;
      if (bName === undefined || (aName !== undefined && aName < bName)) {
        whole(a, an2, 'D', true);
        i++;
      } else if (aName === undefined || bName < aName) {
        whole(b, bn2, 'A', true);
        j++;
      } else {
        await pair(an2, bn2);
        i++;
        j++;
      }
    }
  };

  await pair(0, 0);
  return out;
}

/** The merged tree of exactly these layer positions (bottom first), whiteouts applied. */
export function treeOfLayers(view: ImageView, positions: readonly number[]): Tree {
  return buildTree(view.layers.map((l) => l.index), positions, { mode: 'merged' }).tree;
}

/**
 * The directories a layer's tar reaches into: the parents of every path it holds, whiteout
 * markers included (a whiteout changes its directory). Only below these can the layer have
 * changed anything.
 */
export function touchedDirectories(index: TarIndex): Set<string> {
  const dirs = new Set<string>(['']);
  for (let i = 0; i < index.count; i++) {
    for (let dir = parentOf(index.path(i)); dir !== '' && !dirs.has(dir); dir = parentOf(dir)) dirs.add(dir);
  }
  return dirs;
}

/** The paths a layer's tar writes as something other than a directory (whiteout markers are not written paths). */
export function writtenPaths(index: TarIndex): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i < index.count; i++) {
    if (index.type(i) !== EntryType.Directory && whiteoutMeaning(index.path(i)).kind === 'entry') out.add(index.path(i));
  }
  return out;
}

export interface LayerDiff {
  position: number;
  entries: DiffEntry[];
  /** The image as of this layer, for the next layer's comparison. */
  after: Tree;
}

/**
 * What layer `position` changed: the merged tree of the layers below it (of those `applied`)
 * against the same with this layer on top. `before` may be passed in when the caller already
 * has it (diffing every layer in turn builds each tree once).
 */
export async function diffLayer(view: ImageView, position: number, applied: readonly number[], before?: Tree): Promise<LayerDiff> {
  const below = applied.filter((p) => p < position);
  const base = before ?? treeOfLayers(view, below);
  const after = treeOfLayers(view, [...below, position]);
  const touched = touchedDirectories(view.layers[position].index);
  const written = writtenPaths(view.layers[position].index);
  const entries = await diffTrees({ view, tree: base }, { view, tree: after }, { descendInto: (p) => touched.has(p), rewritten: (p) => written.has(p) });
  return { position, entries, after };
}
