import type { ImageView } from '../engine';
import { NotFoundError } from '../errors';
import { stepForLayer } from '../image/history';
import { displayName, type ByteString } from '../names';
import { baseName, joinPath, parentOf } from '../paths';
import { blame } from '../query/blame';
import { displayPath, shortDigest } from '../query/format';
import { imagePath, resolvePath, type ResolveOptions } from '../query/resolve';
import { oneLine } from '../text';
import type { Tree } from '../union/tree';

/*
 * "No such file" is true but not helpful when the file is in the image's layers and only the
 * merged view hides it: a later layer deleted it (its bytes are still in a lower layer), or
 * --layer named a layer that does not have it. The message then says which layer did what and
 * the command that reads the bytes.
 */

export interface Asked {
  /** The command the hint repeats (`cat`, `ls`, `extract`). */
  command: string;
  /** The archive as typed. */
  archive: string;
  /** The chosen layer (--layer), if any. */
  layer?: number;
}

/** resolvePath, with a missing path explained when the layers can explain it. */
export async function resolveExplained(view: ImageView, tree: Tree, path: ByteString, opts: ResolveOptions, asked: Asked): Promise<number> {
  try {
    return resolvePath(tree, path, opts);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const better = asked.layer === undefined ? await deletedMessage(view, path, asked) : notInLayerMessage(view, path, asked);
    if (better) throw new NotFoundError(better, { cause: err });
    throw err;
  }
}

/** The path as layers store it: its directory resolved through symlinks where it still exists. */
function storedPath(view: ImageView, path: ByteString): string {
  const p = imagePath(path);
  if (p === '') return p;
  try {
    const dir = resolvePath(view.merged, parentOf(p), { followFinal: true });
    return joinPath(view.merged.path(dir), baseName(p));
  } catch {
    return p;
  }
}

function step(view: ImageView, position: number): string {
  const createdBy = stepForLayer(view.image.history, position)?.createdBy;
  if (!createdBy) return '';
  const text = oneLine(createdBy, 'cell').replace(/^\/bin\/sh -c (#\(nop\) )?/, '').trim();
  return `, ${text.length > 72 ? `${text.slice(0, 71)}…` : text}`;
}

function layerName(view: ImageView, position: number): string {
  return `layer ${position} (${shortDigest(view.layers[position].descriptor.diffId)}${step(view, position)})`;
}

function hint(asked: Asked, layer: number, path: string): string {
  return `ocimount ${asked.command} --layer ${layer} ${asked.archive} ${displayName(displayPath(path))}`;
}

/** For a path missing from the merged tree: the layer that deleted it and the one still holding it. */
async function deletedMessage(view: ImageView, path: ByteString, asked: Asked): Promise<string | undefined> {
  const target = storedPath(view, path);
  if (target === '' || view.merged.lookup(target) >= 0) return undefined;
  const shown = displayPath(target);
  const history = await blame(view.layers, view.applied, target);
  let deleter: { position: number; by?: string } | undefined;
  let holder: number | undefined;
  for (const l of history) {
    const own = l.changes.find((c) => c.path === shown);
    if (!own) continue;
    if (own.kind === 'D') deleter = { position: l.position, by: own.by };
    else {
      holder = l.position;
      deleter = undefined;
    }
  }
  if (!deleter || holder === undefined) return undefined;
  const by = deleter.by && deleter.by !== shown ? ` with ${displayName(deleter.by)}` : '';
  return (
    `${displayName(shown)}: no such file in the image: deleted by ${layerName(view, deleter.position)}${by}; ` +
    `layer ${holder} still holds it: ${hint(asked, holder, target)}`
  );
}

/** For --layer N and a path N does not have: where the image's copy comes from. */
function notInLayerMessage(view: ImageView, path: ByteString, asked: Asked): string | undefined {
  let node: number;
  try {
    node = resolvePath(view.merged, path, { followFinal: false });
  } catch {
    return undefined;
  }
  const src = view.merged.source(node);
  const shown = displayName(displayPath(imagePath(path)));
  const from = src ? `; the image has it from layer ${src.layerSlot}: ${hint(asked, src.layerSlot, view.merged.path(node))}` : '; the image has it only as a directory implied by the paths below it';
  return `${shown}: not in layer ${asked.layer} (${shortDigest(view.layers[asked.layer!].descriptor.diffId)})${from}`;
}
