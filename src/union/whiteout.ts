import { baseName, joinPath, parentOf } from '../paths';

/*
 * What a layer entry's name says about the union (OCI layer.md): a plain entry, an opaque marker
 * for its directory, a whiteout of a sibling, AUFS bookkeeping to ignore, or a whiteout whose
 * target is no name at all. One place decides, so the merged tree and `blame` agree.
 */

const PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

export type WhiteoutMeaning =
  | { kind: 'entry' }
  | { kind: 'opaque'; dir: string }
  | { kind: 'whiteout'; target: string }
  /** `.wh..wh.plnk`, `.wh..wh.aufs`: AUFS's own files, not the image's. */
  | { kind: 'aufs' }
  /** `.wh.`, `.wh..`, `.wh...`: a whiteout of nothing (or of the parent): never applied. */
  | { kind: 'invalid' };

export function whiteoutMeaning(path: string): WhiteoutMeaning {
  const base = baseName(path);
  if (!base.startsWith(PREFIX)) return { kind: 'entry' };
  if (base === OPAQUE) return { kind: 'opaque', dir: parentOf(path) };
  if (base.startsWith(PREFIX + PREFIX)) return { kind: 'aufs' };
  const target = base.slice(PREFIX.length);
  if (target === '' || target === '.' || target === '..') return { kind: 'invalid' };
  return { kind: 'whiteout', target: joinPath(parentOf(path), target) };
}
