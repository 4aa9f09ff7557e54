/**
 * Indexing benchmark (issue 2): time and memory of `ImageView.open` on a generated image
 * (>= 1 GiB of file data, >= 100,000 entries), next to `tar -tf` on the same outer archive and on
 * each layer tar. Cold figures follow a page-cache drop (root only), warm ones a second run.
 *
 *   npm run build && node dist/bench/index.js [--image FILE] [--keep] [--dir DIR] [generator options]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { ImageView } from '../src/engine';
import { FileSource, SliceSource } from '../src/io/byte-source';
import { EntryType } from '../src/tar/entry';
import { describe, generateImage, genOptionsFrom } from './gen-image';
import {
  BenchError, COMMON_OPTIONS, coldCaches, fmtBytes, loadNote, fmtS, log, parse, runMain, scratchDir, table, timed, verdict, type Values,
} from './lib';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

export const BYTES_PER_ENTRY_TARGET = 200;

export interface IndexMeasure {
  seconds: number;
  layers: Array<{ diffId: string; compression: string; entries: number; indexBytes: number }>;
  /** Tar entries over all layers (what the index stores). */
  entries: number;
  mergedNodes: number;
  /** The engine's own account: every layer's index.byteSize() plus merged.byteSize(). */
  indexBytes: number;
  /** Measured after a forced GC, the view still alive: V8 heap + external (Buffers, typed arrays). */
  heapDelta: number;
  externalDelta: number;
  rssDelta: number;
  /** The largest regular file in the merged tree and where its bytes lie in the archive file. */
  big: { path: string; size: number; layer: number; compression: string; archiveOffset: number; exact: boolean };
}

/**
 * Opens the image once in a fresh Node process (so memory figures start clean and the time
 * includes a cold JIT, as a mount's would), measuring time and retained memory, and finds the
 * big file's offset.
 */
export async function measureIndex(archive: string): Promise<IndexMeasure> {
  const r = await timed(process.execPath, [__filename, '--probe', archive]);
  return JSON.parse(r.stdout) as IndexMeasure;
}

async function probe(archive: string): Promise<IndexMeasure> {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
  const m0 = process.memoryUsage();
  const t0 = process.hrtime.bigint();
  const view = await ImageView.open(archive, {});
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  try {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    gc();
    const m1 = process.memoryUsage();
    const tree = view.merged;
    let best = -1;
    let bestSize = -1;
    for (let n = 0; n < tree.nodeCount; n++) {
      if (tree.type(n) !== EntryType.File) continue;
      const size = tree.stat(n).size;
      if (size > bestSize) [best, bestSize] = [n, size];
    }
    if (best < 0) throw new BenchError(`${archive}: no regular file in the merged tree`);
    const src = tree.source(best)!;
    const layer = view.layers[src.layerSlot];
    // Uncompressed layer in an uncompressed archive: the file's bytes are one run of the archive.
    // Otherwise dd reads an equal-sized run from the start of the layer blob instead.
    let archiveOffset: number;
    let exact = false;
    const stream = layer.stream;
    if (layer.compression === 'none' && stream instanceof SliceSource && stream.parent instanceof FileSource) {
      archiveOffset = stream.start + layer.index.dataOffsets[src.entry];
      exact = true;
    } else {
      const blob = await view.archive.files.open(layer.descriptor.blobPath);
      archiveOffset = blob instanceof SliceSource ? blob.start : 0;
    }
    const layers = view.layers.map((l) => ({ diffId: l.descriptor.diffId, compression: l.compression, entries: l.index.count, indexBytes: l.index.byteSize() }));
    const entries = layers.reduce((s, l) => s + l.entries, 0);
    return {
      seconds,
      layers,
      entries,
      mergedNodes: tree.nodeCount,
      indexBytes: layers.reduce((s, l) => s + l.indexBytes, 0) + tree.byteSize(),
      heapDelta: m1.heapUsed - m0.heapUsed,
      externalDelta: m1.external - m0.external,
      rssDelta: m1.rss - m0.rss,
      big: { path: tree.path(best), size: bestSize, layer: src.layerSlot, compression: layer.compression, archiveOffset, exact },
    };
  } finally {
    await view.close();
  }
}

/** `tar -tf` timed, with its line count (a check that it listed what the engine indexed). */
async function tarList(file: string): Promise<{ seconds: number; lines: number }> {
  const r = await timed('tar', ['-tf', file]);
  return { seconds: r.seconds, lines: r.stdout.split('\n').length - 1 };
}

/** The image to measure: --image, or one generated into the scratch dir. */
export function imageFor(v: Values, scratch: string): string {
  if (v.image) {
    if (!fs.existsSync(v.image as string)) throw new BenchError(`--image ${v.image}: no such file`);
    return path.resolve(v.image as string);
  }
  const opts = genOptionsFrom(v, path.join(scratch, 'image.tar'));
  log(`generating ${opts.files} files, ${opts.dataMiB} MiB of data (big file ${opts.bigMiB} MiB), ${opts.compress} layers`);
  const r = generateImage(opts);
  log(describe(r));
  return r.path;
}

const USAGE = `usage: node dist/bench/index.js [--image FILE] [--keep] [--dir DIR]
                                  [--files N] [--big-mib N] [--data-mib N] [--compress none|gzip|zstd]
Without --image, generates the image into a scratch dir (--dir, $OCIMOUNT_BENCH_DIR or the temp
dir), removed at the end unless --keep.
`;

async function main(): Promise<void> {
  const v = parse(COMMON_OPTIONS, USAGE);
  const startLoad = os.loadavg()[0];
  const scratch = scratchDir(v.dir as string | undefined, !!v.keep);
  const archive = imageFor(v, scratch);
  const archiveBytes = fs.statSync(archive).size;

  log('engine: ImageView.open, cold page cache');
  const cold = await coldCaches();
  const first = await measureIndex(archive);
  log('engine: ImageView.open, warm page cache');
  const warm = await measureIndex(archive);

  // The layer tars as files of their own, for tar -tf on each.
  const outer = path.join(scratch, 'outer');
  fs.mkdirSync(outer, { recursive: true });
  await timed('tar', ['-xf', archive, '-C', outer]);
  const manifest = JSON.parse(fs.readFileSync(path.join(outer, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const layerFiles = manifest[0].Layers.map((l) => path.join(outer, l));

  const tarRuns: Record<'cold' | 'warm', { outer: number; layers: number[]; lines: number }> = {
    cold: { outer: 0, layers: [], lines: 0 },
    warm: { outer: 0, layers: [], lines: 0 },
  };
  for (const when of ['cold', 'warm'] as const) {
    log(`tar -tf, ${when} page cache`);
    if (when === 'cold') await coldCaches();
    tarRuns[when].outer = (await tarList(archive)).seconds;
    for (const f of layerFiles) {
      if (when === 'cold') await coldCaches();
      const r = await tarList(f);
      tarRuns[when].layers.push(r.seconds);
      tarRuns[when].lines += r.lines;
    }
  }
  if (tarRuns.warm.lines !== first.entries) log(`note: tar -tf listed ${tarRuns.warm.lines} layer entries, the engine indexed ${first.entries}`);

  const sum = (a: number[]) => a.reduce((s, x) => s + x, 0);
  const tarAll = (w: 'cold' | 'warm') => tarRuns[w].outer + sum(tarRuns[w].layers);
  const perEntry = first.indexBytes / first.entries;
  const heapPerEntry = (first.heapDelta + first.externalDelta) / first.entries;
  const coldLabel = cold ? 'cold' : 'cold (cache not dropped)';

  const times = table([
    ['what', coldLabel, 'warm'],
    ['ImageView.open (all layers + merged tree)', fmtS(first.seconds), fmtS(warm.seconds)],
    ['tar -tf archive', fmtS(tarRuns.cold.outer), fmtS(tarRuns.warm.outer)],
    ...layerFiles.map((_, i) => [`tar -tf layer ${i} (${first.layers[i].entries} entries)`, fmtS(tarRuns.cold.layers[i]), fmtS(tarRuns.warm.layers[i])]),
    ['tar -tf archive + every layer', fmtS(tarAll('cold')), fmtS(tarAll('warm'))],
    ['ratio open / (tar -tf archive + layers)', (first.seconds / tarAll('cold')).toFixed(2), (warm.seconds / tarAll('warm')).toFixed(2)],
  ]);
  const mem = table([
    ['memory', 'total', 'per entry', `target <= ${BYTES_PER_ENTRY_TARGET} B`],
    ['index.byteSize() + merged.byteSize()', fmtBytes(first.indexBytes), `${perEntry.toFixed(1)} B`, verdict(perEntry <= BYTES_PER_ENTRY_TARGET)],
    ['retained heap + external after GC', fmtBytes(first.heapDelta + first.externalDelta), `${heapPerEntry.toFixed(1)} B`, verdict(heapPerEntry <= BYTES_PER_ENTRY_TARGET)],
    ['RSS delta', fmtBytes(first.rssDelta), `${(first.rssDelta / first.entries).toFixed(1)} B`, ''],
  ]);
  process.stdout.write(
    `\nimage: ${archive} (${fmtBytes(archiveBytes)}), ${first.layers.length} layers, ${first.entries} tar entries, ` +
      `${first.mergedNodes} merged paths\n\n${times}\n\n${mem}\n(per entry = divided by the ${first.entries} tar entries of all layers)\n\n`,
  );
  const load = loadNote(startLoad);
  process.stdout.write(`${load.note}\n`);
  const json = {
    bench: 'index',
    loadAverage: load.load,
    archive,
    archiveBytes,
    entries: first.entries,
    mergedNodes: first.mergedNodes,
    cacheDropped: cold,
    openSeconds: { cold: first.seconds, warm: warm.seconds },
    tarListSeconds: { cold: { archive: tarRuns.cold.outer, layers: tarRuns.cold.layers }, warm: { archive: tarRuns.warm.outer, layers: tarRuns.warm.layers } },
    indexBytes: first.indexBytes,
    indexBytesPerEntry: perEntry,
    retainedBytesPerEntry: heapPerEntry,
    rssDeltaBytes: first.rssDelta,
    targetBytesPerEntry: BYTES_PER_ENTRY_TARGET,
    pass: perEntry <= BYTES_PER_ENTRY_TARGET && heapPerEntry <= BYTES_PER_ENTRY_TARGET,
  };
  process.stdout.write(`${JSON.stringify(json)}\n`);
}

if (require.main === module) {
  if (process.argv[2] === '--probe') {
    probe(process.argv[3]).then(
      (m) => process.stdout.write(`${JSON.stringify(m)}\n`),
      (err: Error) => {
        process.stderr.write(`${err.message}\n`);
        process.exitCode = 1;
      },
    );
  } else runMain(main);
}
