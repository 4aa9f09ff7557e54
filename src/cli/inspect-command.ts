import type { Command } from 'commander';
import { ImageView, type ImageArchive } from '../engine';
import { loadImage } from '../image/load';
import { platformString } from '../image/model';
import { displayNames } from '../image/select';
import { configSummary, historyRows, listImages, type ConfigSummary, type HistoryRow, type ImageListing } from '../query/inspect';
import { alignColumns, humanSize, shortDigest } from '../query/format';
import { oneLine, printableText } from '../text';
import { addImageOptions, engineOptions, openArchive, reporting, warnPrinter, type ImageOptions } from './common';

interface InspectOptions extends ImageOptions {
  json?: boolean;
}

const HELP = `
Lists the images in the archive (position, names, digests, platform). For the selected image
(or the only one) it also shows the config summary and the layer table: position, diff_id,
stored and uncompressed size, entries in the layer's tar, and the build step that made each
layer, with the steps that made no layer (ENV, CMD, …) shown between the layers they came
between. An archive of several images with no --image / --platform lists the images only.

Examples:
  ocimount inspect myapp.tar
  ocimount inspect --image 1 bundle.tar
  ocimount inspect --json myapp.tar | jq -r '.image.layers[] | "\\(.position) \\(.createdBy)"'
`;

export function registerInspect(program: Command): Command {
  return addImageOptions(
    program
      .command('inspect <image>')
      .description('show the images in an archive, and the config and layers of one')
      .option('--json', 'print one JSON document'),
  )
    .addHelpText('after', HELP)
    .action(reporting(inspect));
}

async function inspect(path: string, opts: InspectOptions): Promise<void> {
  const options = engineOptions(opts);
  const archive = await openArchive(path, options);
  try {
    const images = listImages(archive.records);
    await platformsFromConfigs(archive, images);
    const chosen = opts.image !== undefined || opts.platform !== undefined || archive.records.length === 1;
    if (!chosen) {
      if (!opts.quiet) archive.files.warnings.forEach(warnPrinter(false));
      if (opts.json) print({ archive: path, images, selected: null });
      else process.stdout.write(`${imageTable(images).join('\n')}\n\n${images.length} images; choose one with --image (a position, name or digest) to see its config and layers\n`);
      return;
    }
    const view = await ImageView.fromArchive(archive, options);
    const record = view.image.record;
    const config = configSummary(view);
    const rows = historyRows(view);
    const layers = rows.flatMap((r) => ('layer' in r ? [r.layer] : []));
    if (opts.json) {
      print({
        archive: path,
        images,
        selected: record.position,
        image: {
          position: record.position,
          names: record.names,
          manifestDigest: record.manifestDigest ?? null,
          configDigest: record.configDigest ?? null,
          layout: record.layout,
          ...config,
          layers,
          history: rows.map((r) =>
            'layer' in r
              ? { layer: r.layer.position, created: r.layer.created, createdBy: r.layer.createdBy, comment: r.layer.comment, emptyLayer: false }
              : { layer: null, ...r.empty, emptyLayer: true },
          ),
        },
      });
      return;
    }
    const out: string[] = [...imageTable(images), ''];
    out.push(`Image ${record.position}: ${displayNames(record.names).map(printableText).join(', ') || '<untagged>'}`);
    out.push(...configLines(record.manifestDigest, record.configDigest, config), '');
    const stored = layers.reduce((s, l) => s + l.storedSize, 0);
    const size = layers.reduce((s, l) => s + l.size, 0);
    out.push(`Layers: ${layers.length} (${humanSize(stored)} stored, ${humanSize(size)} uncompressed)`);
    out.push(...layerTable(rows));
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await archive.close();
  }
}

/**
 * An index or manifest.json often leaves the platform out (docker save never writes it); the
 * config has it. Each image without one gets its config's (configs are small: nothing else is read).
 */
async function platformsFromConfigs(archive: ImageArchive, images: ImageListing[]): Promise<void> {
  for (const listing of images) {
    if (listing.platform) continue;
    const record = archive.records[listing.position];
    try {
      const { config } = await loadImage(archive.files, record);
      listing.platform = platformString({ os: config.os, architecture: config.architecture, variant: config.variant }) || null;
    } catch {
      /* an unreadable config is reported when the image is chosen */
    }
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function imageTable(images: ImageListing[]): string[] {
  const rows = images.map((i) => [String(i.position), displayNames(i.names).map(printableText).join(',') || '<untagged>', i.platform ?? '-', shortDigest(i.manifestDigest ?? undefined), shortDigest(i.configDigest ?? undefined)]);
  return alignColumns([['#', 'NAMES', 'PLATFORM', 'MANIFEST', 'CONFIG'], ...rows]).map((l) => `  ${l}`.trimEnd());
}

function configLines(manifest: string | undefined, configDigest: string | undefined, c: ConfigSummary): string[] {
  const json = (v: unknown) => (v === null ? '-' : JSON.stringify(v));
  const lines = [
    ['Manifest', manifest ?? '-'],
    ['Config', configDigest ?? '-'],
    ['Platform', c.platform ?? '-'],
    ['Created', c.created ?? '-'],
    ['Entrypoint', json(c.entrypoint)],
    ['Cmd', json(c.cmd)],
    ['WorkingDir', c.workingDir ?? '-'],
    ['User', c.user ?? '-'],
    ['ExposedPorts', c.exposedPorts.join(' ') || '-'],
    ['Volumes', c.volumes.join(' ') || '-'],
  ].map(([k, v]) => `  ${`${k}:`.padEnd(14)}${v}`);
  lines.push(`  ${'Env:'.padEnd(14)}${c.env.length ? '' : '-'}`.trimEnd(), ...c.env.map((e) => `    ${e}`));
  const labels = Object.entries(c.labels);
  lines.push(`  ${'Labels:'.padEnd(14)}${labels.length ? '' : '-'}`.trimEnd(), ...labels.map(([k, v]) => `    ${k}=${v}`));
  return lines;
}

/** Build times to the second: the fractions docker records only widen the table. */
function when(created: string | null): string {
  return created ? created.replace(/\.\d+(?=Z|[+-]\d\d:?\d\d$)/, '') : '-';
}

function layerTable(rows: HistoryRow[]): string[] {
  const cells = rows.map((r) => {
    if ('empty' in r) return ['-', '(no layer)', '', '', '', when(r.empty.created), oneLine(r.empty.createdBy ?? '-', 'cell')];
    const l = r.layer;
    return [
      `${l.position}${l.applied ? '' : '*'}`,
      shortDigest(l.diffId),
      humanSize(l.storedSize),
      humanSize(l.size),
      String(l.files),
      when(l.created),
      oneLine(l.createdBy ?? '-', 'cell'),
    ];
  });
  const lines = alignColumns([['#', 'DIFF_ID', 'STORED', 'SIZE', 'FILES', 'CREATED', 'CREATED_BY'], ...cells], [false, false, true, true, true]).map((l) => `  ${l}`);
  if (rows.some((r) => 'layer' in r && !r.layer.applied)) lines.push('  * not applied (--layers)');
  return lines;
}
