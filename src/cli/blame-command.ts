import type { Command } from 'commander';
import { NotFoundError } from '../errors';
import { stepForLayer } from '../image/history';
import { blame, headlineChange, type BlameChange } from '../query/blame';
import { alignColumns, displayPath, shortDigest } from '../query/format';
import { oneLine } from '../text';
import { imagePath, resolvePath } from '../query/resolve';
import { displayName, nameFromText, nameToText } from '../names';
import { baseName, joinPath, parentOf } from '../paths';
import type { ImageView } from '../engine';
import { addImageOptions, imageArgPath, reporting, withImage, type ImageOptions } from './common';

interface BlameOptions extends ImageOptions {
  all?: boolean;
  json?: boolean;
}

const HELP = `
Names every layer that added (A), changed (M), deleted (D) or re-added (R) PATH or anything
below it, one line per layer: position, diff_id, what it did, the path it did it to, and the
build step that made the layer. M says what changed, in the words of \`ocimount diff\`: content,
mode, owner, type, target (of a symlink), xattrs; modification times alone are no change. R is
a path the layer wrote again with none of those different ("re-added, same content"; e.g. to
add a hard link to it). --json gives each M a "changed" list, e.g. ["content", "mode"]. Whiteouts (.wh.NAME) and opaque markers (.wh..wh..opq) over PATH or over one of its
parents count as deletions. Layers that did not touch PATH are not shown. When a layer touched
several paths below PATH, the line shows the one nearest PATH and how many more; --all prints
one line per path. Exit code 1 when no layer ever touched PATH.

Examples:
  ocimount blame myapp.tar /app/trace.log
  ocimount blame --all myapp.tar /etc
  ocimount blame --json myapp.tar /usr/lib/libssl.so.3 | jq -r '.[].createdBy'
`;

export function registerBlame(program: Command): Command {
  return addImageOptions(
    program
      .command('blame <image> <path>')
      .description('show which layers (and build steps) added, changed or deleted a path')
      .option('--all', 'one line per changed path instead of one per layer')
      .option('--json', 'print a JSON array, one object per layer'),
  )
    .addHelpText('after', HELP)
    .action(reporting((image: string, path: string, opts: BlameOptions) => withImage(image, opts, (view) => run(view, path, opts))));
}

/**
 * The path as the layers store it: when its directory is reachable in the image through
 * symlinks (/lib -> usr/lib), the real directory; otherwise (deleted, never there) as typed.
 */
function storedPath(view: ImageView, userPath: string): string {
  const path = imagePath(imageArgPath(view, userPath));
  if (path === '') return path;
  try {
    const dir = resolvePath(view.merged, parentOf(path), { followFinal: true });
    return joinPath(view.merged.path(dir), baseName(path));
  } catch {
    return path;
  }
}

async function run(view: ImageView, userPath: string, opts: BlameOptions): Promise<void> {
  const target = storedPath(view, userPath);
  const layers = await blame(view.layers, view.applied, target);
  if (layers.length === 0) throw new NotFoundError(`${displayName(displayPath(target))}: no layer added, changed or deleted it`);
  const info = (position: number) => {
    const step = stepForLayer(view.image.history, position);
    return { diffId: view.layers[position].descriptor.diffId, created: step?.created ?? null, createdBy: step?.createdBy ?? null };
  };
  if (opts.json) {
    const out = layers.map((l) => {
      const head = headlineChange(l.changes, target);
      const text = (c: BlameChange) => ({ ...c, path: nameToText(c.path), ...(c.by !== undefined && { by: nameToText(c.by) }) });
      return { position: l.position, ...info(l.position), kind: head.kind, path: nameToText(head.path), ...(head.changed && { changed: head.changed }), changes: l.changes.map(text) };
    });
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const describe = (c: BlameChange) => {
    const path = displayName(c.path);
    return c.by && c.by !== c.path ? `${path} (by ${displayName(c.by)})` : c.details?.length ? `${path} (${c.details.join(', ')})` : path;
  };
  const rows: string[][] = [];
  for (const l of layers) {
    const { diffId, createdBy } = info(l.position);
    const prefix = [String(l.position), shortDigest(diffId)];
    const step = oneLine(createdBy ?? '-', 'cell');
    if (opts.all) for (const c of l.changes) rows.push([...prefix, c.kind, describe(c), step]);
    else {
      const head = headlineChange(l.changes, target);
      const more = l.changes.length > 1 ? ` (+${l.changes.length - 1} more)` : '';
      rows.push([...prefix, head.kind, describe(head) + more, step]);
    }
  }
  process.stdout.write(`${alignColumns(rows).join('\n')}\n`);
}
