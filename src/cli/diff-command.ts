import type { Command } from 'commander';
import { displayName, nameToText } from '../names';
import { ImageView } from '../engine';
import { UsageError } from '../errors';
import { stepForLayer } from '../image/history';
import { EntryType } from '../tar/entry';
import { metaJson } from '../query/compare';
import { diffLayer, diffTrees, type DiffEntry } from '../query/diff';
import { alignColumns, shortDigest } from '../query/format';
import { oneLine } from '../text';
import { resolveLayerRef } from '../query/layer-ref';
import { writeWithBackpressure } from '../query/sink';
import type { Tree } from '../union/tree';
import { addImageOptions, engineOptions, openArchive, openView, reporting, warnPrinter, type ImageOptions } from './common';
import { isStdinArgument } from './archive-input';

interface DiffOptions extends ImageOptions {
  layer?: string;
  imageB?: string;
  platformB?: string;
  layersB?: string;
  json?: boolean;
}

const HELP = `
With one archive: what each layer changed, relative to the image as it stood below that layer
(--layer: that layer only). With two archives, or --image-b for a second image of the same
archive: what differs between the two merged trees. One line per path:

  A  SIZE  PATH            added
  D  SIZE  PATH            deleted (each path below a deleted directory too)
  M  SIZE  PATH  (what)    there before and after, and different in its content (bytes, size,
                           device numbers), mode, owner, type, target (symlinks) or xattrs;
                           (what) names each, e.g. (content, mode 0644 -> 0755)
  R  SIZE  PATH  (re-added, same content)
                           --layer / per layer only: written again by the layer with none of
                           those different (e.g. to add a hard link to it)

The same definition of a change as \`ocimount blame\`. Modification times are not compared (every
write bumps a directory's; a file written again with only a new mtime is R). In --json each M
and R carries "changed": the fields that differ, e.g. ["content", "mode"] ([] for R). Sizes are
bytes; for M the size after. Image options (--image, --platform, --layers) apply to the first image, the -b
ones to the second (--platform-b defaults to --platform).

Examples:
  ocimount diff myapp.tar                       # every layer in turn
  ocimount diff --layer 13 myapp.tar
  ocimount diff myapp-1.0.tar myapp-1.1.tar
  ocimount diff --image 0 --image-b 1 bundle.tar
  ocimount diff --json old.tar new.tar | jq -r '.changes[] | select(.kind == "A") | .path'
`;

export function registerDiff(program: Command): Command {
  return addImageOptions(
    program
      .command('diff <image> [image-b]')
      .description('show what a layer changed, or what differs between two images (A/M/D per path)')
      .option('--layer <n|diff_id>', 'only this layer\'s changes (its position, diff_id or a prefix of it)')
      .option('--image-b <sel>', 'the second image: position, name or digest (in IMAGE-B, or in IMAGE when no IMAGE-B)')
      .option('--platform-b <os/arch[/variant]>', 'platform of the second image (default: --platform)')
      .option('--layers-b <list>', 'view the second image as of some layers (same syntax as --layers)')
      .option('--json', 'print one JSON document'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting(async (image: string, imageB: string | undefined, opts: DiffOptions) => {
        if (imageB !== undefined || opts.imageB !== undefined) {
          if (opts.layer !== undefined) throw new UsageError('--layer is for one image\'s layers; it does not go with a second image');
          await imageDiff(image, imageB, opts);
        } else {
          if (opts.platformB !== undefined || opts.layersB !== undefined) throw new UsageError('--platform-b and --layers-b need a second image (IMAGE-B or --image-b)');
          await layerDiffs(image, opts);
        }
      }),
    );
}

function entryJson(e: DiffEntry): Record<string, unknown> {
  return {
    kind: e.kind,
    path: nameToText(e.path),
    size: (e.after ?? e.before)!.size,
    ...(e.before && { before: metaJson(e.before) }),
    ...(e.after && { after: metaJson(e.after) }),
    ...((e.kind === 'M' || e.kind === 'R') && { changed: e.changed }),
    ...(e.changes.length && { changes: e.changes }),
  };
}

function entryLines(entries: DiffEntry[]): string[] {
  const rows = entries.map((e) => {
    const meta = (e.after ?? e.before)!;
    const size = meta.type === EntryType.Directory ? '-' : String(meta.size);
    return [e.kind, size, displayName(e.path) + (e.changes.length ? `  (${e.changes.join(', ')})` : '')];
  });
  return alignColumns(rows, [false, true]);
}

async function layerDiffs(image: string, opts: DiffOptions): Promise<void> {
  const view = await openView(image, opts);
  try {
    const positions = opts.layer !== undefined ? [resolveLayerRef(opts.layer, view.image.layers)] : view.applied;
    const results = [];
    let before: Tree | undefined;
    for (const position of positions) {
      const d = await diffLayer(view, position, view.applied, opts.layer === undefined ? before : undefined);
      before = d.after;
      const step = stepForLayer(view.image.history, position);
      const layer = { position, diffId: view.layers[position].descriptor.diffId, createdBy: step?.createdBy ?? null, entries: d.entries };
      if (opts.json) {
        results.push(layer);
        continue;
      }
      const lines = entryLines(d.entries);
      if (opts.layer !== undefined) await writeWithBackpressure(process.stdout, lines.map((l) => `${l}\n`).join(''));
      else {
        const head = `${position === positions[0] ? '' : '\n'}layer ${position}  ${shortDigest(layer.diffId)}  ${oneLine(layer.createdBy ?? '-', 'cell')}`.trimEnd() + '\n';
        await writeWithBackpressure(process.stdout, head + (lines.length ? lines : ['(no changes)']).map((l) => `${l}\n`).join(''));
      }
    }
    if (opts.json) {
      const out = results.map((r) => ({ position: r.position, diffId: r.diffId, createdBy: r.createdBy, changes: r.entries.map(entryJson) }));
      process.stdout.write(`${JSON.stringify(opts.layer !== undefined ? out[0] : out, null, 2)}\n`);
    }
  } finally {
    await view.close();
  }
}

async function imageDiff(pathA: string, pathB: string | undefined, opts: DiffOptions): Promise<void> {
  const optsA = engineOptions(opts);
  const optsB = { ...optsA, image: opts.imageB, platform: opts.platformB ?? opts.platform, layers: opts.layersB };
  if (pathB !== undefined && isStdinArgument(pathA) && isStdinArgument(pathB)) throw new UsageError('only one of the two images can come from standard input');
  const archiveA = await openArchive(pathA, optsA);
  const archives = [archiveA];
  try {
    const archiveB = pathB === undefined ? archiveA : await openArchive(pathB, optsB);
    if (archiveB !== archiveA) archives.push(archiveB);
    const a = await ImageView.fromArchive(archiveA, optsA);
    const b = await ImageView.fromArchive(archiveB, optsB);
    const entries = await diffTrees({ view: a, tree: a.merged }, { view: b, tree: b.merged });
    if (opts.json) {
      const side = (path: string, v: ImageView) => {
        const r = v.image.record;
        return { archive: path, position: r.position, names: r.names, manifestDigest: r.manifestDigest ?? null, configDigest: r.configDigest ?? null };
      };
      const out = { a: side(pathA, a), b: side(pathB ?? pathA, b), changes: entries.map(entryJson) };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    const lines = entryLines(entries);
    for (let i = 0; i < lines.length; i += 1000) await writeWithBackpressure(process.stdout, lines.slice(i, i + 1000).map((l) => `${l}\n`).join(''));
  } finally {
    for (const archive of archives) await archive.close();
  }
}
