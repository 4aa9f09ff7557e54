import { NotFoundError, UsageError } from '../errors';
import type { ImageView } from '../engine';
import type { LayerDescriptor } from '../image/model';
import type { Tree } from '../union/tree';

/**
 * `--layer` takes a position (`3`), a diff_id (`sha256:…`) or a unique prefix of its hex
 * (`4abad3`). A string of digits is a position when such a layer exists, since that is what
 * people type; otherwise it is tried as a hex prefix (six digits at least, like short digests).
 */
export function resolveLayerRef(ref: string, layers: readonly LayerDescriptor[]): number {
  const text = ref.trim();
  const last = layers.length - 1;
  if (/^\d+$/.test(text) && Number(text) <= last) return Number(text);
  const hex = text.replace(/^sha256:/, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex) || (hex.length < 6 && !/^\d+$/.test(text))) {
    throw new UsageError(`--layer ${ref}: expected a layer position (0-${last}) or a diff_id or a prefix of one (6 hex digits at least)`);
  }
  if (/^\d+$/.test(text) && hex.length < 6) throw new NotFoundError(`--layer ${ref}: no such layer; the image has layers 0-${last}`);
  const hits = layers.filter((l) => l.diffId.replace(/^sha256:/, '').startsWith(hex));
  // The same blob may sit at several positions (an empty layer twice); what a layer changed
  // depends on its position, so the user has to say which one.
  const distinct = new Set(hits.map((l) => l.diffId));
  if (hits.length === 0) throw new NotFoundError(`--layer ${ref}: no layer has that diff_id; see ocimount inspect for the list`);
  if (distinct.size > 1) throw new UsageError(`--layer ${ref} is ambiguous: ${hits.map((l) => `${l.position} (${l.diffId.slice(0, 19)})`).join(', ')}`);
  if (hits.length > 1) {
    throw new UsageError(`--layer ${ref}: layers ${hits.map((l) => l.position).join(', ')} have that diff_id; give the position instead`);
  }
  return hits[0].position;
}

/** The tree a command reads: one layer alone for `--layer`, otherwise the merged image. */
export function chooseTree(view: ImageView, layerRef: string | undefined): { tree: Tree; layer?: number } {
  if (layerRef === undefined) return { tree: view.merged };
  const layer = resolveLayerRef(layerRef, view.image.layers);
  return { tree: view.layerTree(layer), layer };
}
