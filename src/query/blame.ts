import type { IndexedLayer } from '../layers/index-layer';
import { parentOf } from '../paths';
import { EntryType } from '../tar/entry';
import { whiteoutMeaning } from '../union/whiteout';
import { compareVersions, describeChanges, entryVersion, IMPLICIT_DIRECTORY, READDED, type ChangeField, type PathVersion } from './compare';
import type { ChangeKind } from './diff';
import { displayPath } from './format';

/** One thing a layer did to the blamed path or to something below it. */
export interface BlameChange {
  kind: ChangeKind;
  /** `/root/saved.txt`. */
  path: string;
  /** For D: the whiteout or opaque marker (or the entry that replaced a parent) that removed it. */
  by?: string;
  /** For M: which fields differ (compare.ts); for R: none. */
  changed?: ChangeField[];
  /** For M: the same in words (`mode 0644 -> 0755`); for R: `re-added, same content`. */
  details?: string[];
}

export interface BlameLayer {
  position: number;
  changes: BlameChange[];
}

const isUnder = (path: string, dir: string) => dir === '' ? path !== '' : path.startsWith(`${dir}/`);

/**
 * The layers (of `positions`, bottom first) that added, changed or deleted `target` or anything
 * below it, with what each did. It replays the layers the way the merged tree is built (per
 * layer: opaque markers, then whiteouts, then entries in tar order, a non-directory replacing
 * whatever subtree was at its path) but keeps only the paths that matter: the target, what is
 * below it, and its parents, since whiting out or replacing a parent deletes the target too.
 *
 * A path present before and after a layer is compared the way `diff` compares it
 * (compareVersions: content, mode, owner, type, link target, xattrs): M with what differs, or,
 * when the layer wrote it again as a non-directory and nothing differs, R (re-added, same
 * content). A directory that a layer only lists again because something below it changed is not
 * a change of its own.
 */
export async function blame(layers: readonly Pick<IndexedLayer, 'index' | 'stream' | 'descriptor'>[], positions: readonly number[], target: string): Promise<BlameLayer[]> {
  const relevant = (p: string) => p === target || isUnder(p, target) || isUnder(target, p);
  const reported = (p: string) => p === target || isUnder(p, target);
  const state = new Map<string, PathVersion>();
  const result: BlameLayer[] = [];

  for (const position of positions) {
    const index = layers[position].index;
    /** Paths this layer touched, with what they were before it (undefined: absent). */
    const prior = new Map<string, PathVersion | undefined>();
    const rewritten = new Set<string>();
    const removedBy = new Map<string, string>();
    const touch = (p: string) => {
      if (!prior.has(p)) prior.set(p, state.get(p));
    };
    const remove = (p: string, by: string, includeSelf: boolean) => {
      for (const key of [...state.keys()]) {
        if ((includeSelf && key === p) || isUnder(key, p)) {
          touch(key);
          state.delete(key);
          removedBy.set(key, by);
        }
      }
    };
    const ensureParents = (p: string) => {
      const missing: string[] = [];
      for (let dir = parentOf(p); dir !== ''; dir = parentOf(dir)) if (state.get(dir)?.meta.type !== EntryType.Directory) missing.push(dir);
      for (const dir of missing.reverse()) {
        touch(dir);
        state.set(dir, IMPLICIT_DIRECTORY);
      }
    };

    const opaque: number[] = [];
    const whiteouts: number[] = [];
    const adds: number[] = [];
    const targets = new Map<number, string>();
    for (let i = 0; i < index.count; i++) {
      const meaning = whiteoutMeaning(index.path(i));
      if (meaning.kind === 'entry') {
        if (relevant(index.path(i))) adds.push(i);
      } else if (meaning.kind === 'opaque') {
        if (relevant(meaning.dir)) opaque.push(i);
      } else if (meaning.kind === 'whiteout' && relevant(meaning.target)) {
        whiteouts.push(i);
        targets.set(i, meaning.target);
      }
    }
    if (opaque.length + whiteouts.length + adds.length === 0) continue;

    for (const i of opaque) remove(parentOf(index.path(i)), index.path(i), false);
    for (const i of whiteouts) remove(targets.get(i)!, index.path(i), true);
    for (const i of opaque) {
      const dir = parentOf(index.path(i));
      if (dir !== '' && state.get(dir)?.meta.type !== EntryType.Directory) {
        ensureParents(dir);
        touch(dir);
        state.set(dir, IMPLICIT_DIRECTORY);
      }
    }
    for (const i of adds) {
      const path = index.path(i);
      if (path === '') continue;
      const type = index.type(i);
      let version = entryVersion(layers, position, i);
      if (type === EntryType.HardLink) {
        // A hard link is its target, as in the merged tree: the same file, metadata and bytes.
        const link = index.extras.get(i)?.linkname;
        const t = link !== undefined ? state.get(link) : undefined;
        if (t && t.meta.type !== EntryType.Directory) version = t;
      }
      ensureParents(path);
      const existing = state.get(path);
      touch(path);
      // Only a directory has anything below it to lose; a directory over a directory merges.
      if (existing?.meta.type === EntryType.Directory && type !== EntryType.Directory) remove(path, index.path(i), false);
      if (type !== EntryType.Directory) rewritten.add(path);
      state.set(path, version);
    }

    const changes: BlameChange[] = [];
    for (const [path, before] of prior) {
      if (!reported(path)) continue;
      const after = state.get(path);
      if (!before && after) changes.push({ kind: 'A', path: displayPath(path) });
      else if (before && !after) changes.push({ kind: 'D', path: displayPath(path), by: displayPath(removedBy.get(path) ?? path) });
      else if (before && after) {
        const changed = await compareVersions(before, after);
        if (changed.length) changes.push({ kind: 'M', path: displayPath(path), changed, details: describeChanges(changed, before, after) });
        else if (rewritten.has(path)) changes.push({ kind: 'R', path: displayPath(path), changed, details: [READDED] });
      }
    }
    if (changes.length) {
      changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
      result.push({ position, changes });
    }
  }
  return result;
}

/**
 * The change a one-line summary shows for a layer: the blamed path itself if the layer touched
 * it, otherwise the one nearest to it (fewest components), first by name among equals.
 */
export function headlineChange(changes: readonly BlameChange[], target: string): BlameChange {
  const shown = displayPath(target);
  const exact = changes.find((c) => c.path === shown);
  if (exact) return exact;
  const depth = (p: string) => p.split('/').length;
  return changes.reduce((best, c) => (depth(c.path) < depth(best.path) ? c : best));
}
