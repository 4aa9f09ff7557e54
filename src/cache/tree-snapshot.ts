import type { IndexedLayer } from '../layers/index-layer';
import type { BuiltTree } from '../union/build';
import { decodeTree, encodeTree } from '../union/tree-codec';
import { warning, type Warning } from '../warnings';
import { cacheKey, type IndexCache } from './index-cache';

/*
 * The merged tree of a mount, kept in the index cache next to the layer indexes it is built
 * from, so that a second mount loads its columns instead of applying every layer's entries
 * again (the bulk of a warm mount's time). A snapshot is filed under the exact layer index
 * entries it was built from (their keys and checksums, so a rebuilt or changed layer index
 * misses it), the diff_ids that name layers in its warnings, and the layer selection.
 */

const FORMAT = 'OCIMTREE1';

/** The merged tree of `layers` with `applied` on: from the cache when it has it, else `build()` (then stored). */
export async function mergedTree(
  layers: readonly IndexedLayer[],
  applied: readonly number[],
  cache: IndexCache | undefined,
  build: () => BuiltTree,
): Promise<BuiltTree> {
  if (!cache || layers.some((l) => !l.cached)) return build();
  const key = cacheKey({
    kind: 'tree',
    format: FORMAT,
    layers: layers.map((l) => [l.cached!.key, l.cached!.sum, l.descriptor.diffId]),
    applied,
  });
  const entry = await cache.get(key, 'tree');
  if (entry) {
    try {
      const tree = decodeTree(entry.sections, layers.map((l) => l.index));
      return { tree, warnings: warningsFrom(entry.meta.warnings) };
    } catch (err) {
      cache.log(`cache: merged tree ${key}: ${(err as Error).message}; rebuilding it`);
    }
  }
  const built = build();
  await cache.put(key, { meta: { what: 'merged tree', nodes: built.tree.nodeCount, warnings: built.warnings }, sections: encodeTree(built.tree) }, 'tree');
  return built;
}

function warningsFrom(stored: unknown): Warning[] {
  if (!Array.isArray(stored)) throw new Error('tree snapshot has no warnings list');
  return stored.map((w: Partial<Warning>) => {
    if (typeof w?.text !== 'string' || typeof w.code !== 'string') throw new Error('tree snapshot has a malformed warning');
    return warning(w.code, w.text, { layer: w.layer, entry: w.entry });
  });
}
