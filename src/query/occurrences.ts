import type { ImageView } from '../engine';
import { parentOf } from '../paths';
import { EntryType } from '../tar/entry';
import { whiteoutMeaning } from '../union/whiteout';
import { findNodes, type FindCriteria } from './find';
import { imagePath, resolvePath } from './resolve';

/** What the merged image makes of one layer's copy of a path. */
export type OccurrenceStatus = 'shown' | 'replaced' | 'deleted' | 'whiteout' | 'not applied';

export interface Occurrence {
  layer: number;
  /** Node in that layer's own tree. */
  node: number;
  /** `/etc/passwd`. */
  path: string;
  status: OccurrenceStatus;
  /** replaced: the layer whose copy is shown; deleted: the layer that removed it (when known). */
  by?: number;
}

/**
 * Every entry matching `c` below `start` in every layer of the image (bottom first, each layer's
 * matches in find's order), with what became of it in the merged tree.
 */
export function occurrences(view: ImageView, start: string, c: FindCriteria): Occurrence[] {
  const out: Occurrence[] = [];
  const applied = new Set(view.applied);
  const removals = new Map<number, { whiteouts: Set<string>; opaque: Set<string> }>();
  const removalsOf = (position: number) => {
    let r = removals.get(position);
    if (!r) {
      r = { whiteouts: new Set(), opaque: new Set() };
      const idx = view.layers[position].index;
      for (let i = 0; i < idx.count; i++) {
        const m = whiteoutMeaning(idx.path(i));
        if (m.kind === 'whiteout') r.whiteouts.add(m.target);
        else if (m.kind === 'opaque') r.opaque.add(m.dir);
      }
      removals.set(position, r);
    }
    return r;
  };
  /** The first applied layer above `layer` whose whiteouts or opaque markers remove `path`. */
  const deleter = (layer: number, path: string): number | undefined => {
    for (const q of view.applied) {
      if (q <= layer) continue;
      const r = removalsOf(q);
      for (let p = path; p !== ''; p = parentOf(p)) {
        if (r.whiteouts.has(p)) return q;
        if (r.opaque.has(parentOf(p))) return q;
      }
    }
    return undefined;
  };
  const startPath = imagePath(start);
  for (let layer = 0; layer < view.layers.length; layer++) {
    const tree = view.layerTree(layer);
    let from: number;
    try {
      from = resolvePath(tree, startPath === '' ? '/' : `/${startPath}`, { followFinal: false });
    } catch {
      continue;
    }
    for (const hit of findNodes(tree, from, c)) {
      const stored = tree.path(hit.node);
      const src = tree.source(hit.node);
      const o: Occurrence = { layer, node: hit.node, path: hit.path, status: 'shown' };
      if (!applied.has(layer)) o.status = 'not applied';
      else if (whiteoutMeaning(stored).kind !== 'entry') o.status = 'whiteout';
      else if (src && src.layerSlot !== layer) {
        // A directory the layer only implies (entry -1 is never a source) or a hard link into a
        // lower layer: shown when the merged tree has the path at all.
        o.status = view.merged.lookup(stored) >= 0 ? 'shown' : 'deleted';
      } else {
        const m = view.merged.lookup(stored);
        if (m < 0) {
          o.status = 'deleted';
          o.by = deleter(layer, stored);
        } else if (tree.type(hit.node) === EntryType.Directory && view.merged.isDir(m)) {
          o.status = 'shown';
        } else {
          const ms = view.merged.source(m);
          if (!ms || !src || ms.layerSlot !== layer || ms.entry !== src.entry) {
            o.status = 'replaced';
            if (ms) o.by = ms.layerSlot;
          }
        }
      }
      out.push(o);
    }
  }
  return out;
}
