import * as fs from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import * as path from 'node:path';
import type { ArchiveFiles } from './archive/archive-files';
import { openArchiveFiles } from './archive/open-archive';
import { TarIndexer } from './archive/tar-indexer';
import { ArchiveError } from './errors';
import type { IndexCache } from './cache/index-cache';
import type { ByteSource } from './io/byte-source';
import { discoverImages } from './image/discover';
import { parseLayerSelection } from './image/layer-selection';
import { loadImage } from './image/load';
import type { Image, ImageRecord } from './image/model';
import { checkConfigPlatform, selectImage, type ImageSelector } from './image/select';
import { layerDigestProblems, metadataDigestProblems } from './image/verify';
import { indexLayer, type IndexedLayer } from './layers/index-layer';
import { buildTree } from './union/build';
import { mergedTree } from './cache/tree-snapshot';
import { readEntryContent } from './tar/entry-content';
import { nativeTarScanAvailable } from './tar/native-scan';
import { tarIndexPaths } from './tar/tar-index-codec';
import type { NodeSource, Tree } from './union/tree';
import { textWarning, warning, type Warning } from './warnings';

export type { Compression, IndexedLayer } from './layers/index-layer';

export interface OpenOptions extends ImageSelector {
  /** `--layers` selection (see parseLayerSelection); all layers when absent. */
  layers?: string;
  /** Called with every warning as it is found: its text (the CLI prints it on stderr) and the warning. */
  onWarning?: (text: string, warning: Warning) => void;
  /** Notes that are not problems: what is being cached and why something is slow. */
  onNote?: (message: string) => void;
  /** Progress of long sequential passes (compressed layers and archives), in stored bytes. */
  onProgress?: (what: string, done: number, total: number) => void;
  /** Where indexes are kept between runs; undefined = no cache. */
  cache?: IndexCache;
  /**
   * Do not wait for index cache files before returning the view (IndexCache.writeBehind): for
   * the mount, which serves first and then waits for them (ImageView.cacheWritten).
   */
  cacheWriteBehind?: boolean;
  /** Check every digest (manifest, config, layer blobs, diff_ids) and fail on a mismatch. */
  verify?: boolean;
  /** Memory for decompressed spans of compressed layers (default 256 MiB). */
  spanCacheBytes?: number;
  /** Largest decompressed copy of a single-frame zstd layer kept in the cache (default 8 GiB). */
  spillMaxBytes?: number;
}

/**
 * Layers at least this large are indexed on worker threads: plain ones scan there
 * (src/tar/scan-workers.ts), compressed ones pass there (src/archive/pass-workers.ts), side by
 * side; smaller ones on this thread, where a worker's start would cost more than the work.
 * Workers pay off only with a core to spare: each starts its own Node environment and warms its
 * own JIT (more CPU, and ~100 MiB more memory for two passes), which on a machine whose cores are
 * already busy made the open no faster in bench/README.md's runs. `variable` is for tests and
 * measurements (0: every layer on a worker; a huge value: none). `byDefault` false: none
 * unless the variable asks.
 */
function workerMinBytes(variable: string, byDefault = true): number | undefined {
  const set = Number(process.env[variable]);
  if (process.env[variable] !== undefined && Number.isFinite(set) && set >= 0) return set;
  if (!byDefault) return undefined;
  const cores = availableParallelism();
  return cores > 1 && loadavg()[0] + 1 <= cores ? 4 * 1024 * 1024 : undefined;
}

/** An opened archive: its files and the images found in it. */
export class ImageArchive {
  private constructor(
    readonly files: ArchiveFiles,
    readonly records: ImageRecord[],
  ) {}

  static async open(path: string, opts: Pick<OpenOptions, 'cache' | 'onNote' | 'onProgress'> = {}): Promise<ImageArchive> {
    const files = await openArchiveFiles(path, { cache: opts.cache, log: opts.onNote, onProgress: opts.onProgress });
    try {
      return new ImageArchive(files, await discoverImages(files));
    } catch (err) {
      await files.close();
      throw err;
    }
  }

  select(sel: ImageSelector): ImageRecord {
    return selectImage(this.records, sel, this.files.location);
  }

  close(): Promise<void> {
    return this.files.close();
  }
}

/**
 * The selected image with every layer indexed and its merged tree built. Per-layer trees are
 * built when first asked for. Reads go straight to the archive through each layer's stream.
 */
export class ImageView {
  private readonly layerTrees = new Map<number, Tree>();
  private readonly pathMaps = new Map<number, Map<string, number>>();

  private constructor(
    readonly archive: ImageArchive,
    readonly image: Image,
    readonly layers: IndexedLayer[],
    /** Positions applied to the merged tree (all, unless `--layers` chose fewer). */
    readonly applied: number[],
    readonly merged: Tree,
    /** Every warning of the open, in order. */
    readonly issues: readonly Warning[],
    /** Where the layer indexes were cached, if anywhere (releaseLayerPaths reads them back). */
    private readonly cache?: IndexCache,
  ) {}

  /** The texts of `issues`. */
  get warnings(): string[] {
    return this.issues.map((w) => w.text);
  }

  static async open(archivePath: string, opts: OpenOptions = {}): Promise<ImageView> {
    const archive = await ImageArchive.open(archivePath, opts);
    try {
      return await ImageView.fromArchive(archive, opts);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  static async fromArchive(archive: ImageArchive, opts: OpenOptions = {}): Promise<ImageView> {
    if (opts.cacheWriteBehind) opts.cache?.writeBehind();
    const warn = (w: Warning) => {
      warnings.push(w);
      opts.onWarning?.(w.text, w);
    };
    const warnings: Warning[] = [];
    archive.files.warnings.forEach(warn);
    const record = archive.select(opts);
    const image = await loadImage(archive.files, record);
    image.warnings.forEach(warn);
    // --platform is checked against the config itself, never only against what the archive's
    // index claims or leaves out: a wrong platform must not quietly serve another image's bytes.
    if (opts.platform) {
      const unchecked = checkConfigPlatform(image.config, opts.platform, record.position, archive.files.location);
      if (unchecked) warn(unchecked);
    }
    const metaProblems = metadataDigestProblems(image);
    if (opts.verify && metaProblems.length) throw new ArchiveError(`${archive.files.location}: ${metaProblems[0]}`);
    for (const p of metaProblems) warn(warning('digest', p));
    const indexer = new TarIndexer({
      cache: opts.cache,
      spanCacheBytes: opts.spanCacheBytes ?? 256 * 1024 * 1024,
      spillMaxBytes: opts.spillMaxBytes ?? 8 * 1024 ** 3,
      readAhead: true,
      log: opts.onNote,
      onProgress: opts.onProgress,
      // The native header scan indexes a layer here faster than a worker starts (about 1 us a
      // header): workers scan only where it is missing.
      scanWorkerMinBytes: workerMinBytes('OCIMOUNT_SCAN_WORKER_MIN_BYTES', !nativeTarScanAvailable()),
      passWorkerMinBytes: workerMinBytes('OCIMOUNT_PASS_WORKER_MIN_BYTES'),
    });
    // Every layer is indexed at once: plain layers scan and compressed ones pass side by side
    // on worker threads (small compressed ones pass here, one at a time). Results, warnings and the first failure
    // are then taken in layer order, as when layers were indexed one after another.
    const byBlob = new Map<string, Promise<IndexedLayer>>();
    const pending = image.layers.map((d) => {
      // The same blob may serve several positions (an empty layer twice): index it once.
      const seen = byBlob.get(d.blobPath);
      const indexed = seen ? seen.then((l) => ({ ...l, descriptor: d })) : indexLayer(archive.files, d, indexer, { toc: !opts.verify });
      if (!seen) byBlob.set(d.blobPath, indexed);
      return { d, first: !seen, indexed };
    });
    const settled = await Promise.allSettled(pending.map((p) => p.indexed));
    const layers: IndexedLayer[] = [];
    for (const [i, { d, first }] of pending.entries()) {
      const outcome = settled[i];
      if (outcome.status === 'rejected') throw outcome.reason;
      // index-layer.ts keeps its warnings (and the cache stores them) as text.
      if (first) for (const t of outcome.value.warnings) warn(textWarning(t, { layer: `layer ${d.position} (${d.diffId})` }));
      layers.push(outcome.value);
    }
    if (opts.verify) {
      const problems = await layerDigestProblems(layers.map((l) => ({ ...l.descriptor, blob: l.blob, stream: l.stream, compressed: l.compression !== 'none' })));
      if (problems.length) throw new ArchiveError(`${archive.files.location}: ${problems.join('; ')}`);
    }
    const applied = opts.layers ? parseLayerSelection(opts.layers, layers.length) : layers.map((_, i) => i);
    const build = () => buildTree(layers.map((l) => l.index), applied, { mode: 'merged', layerName: (slot) => `layer ${slot} (${layers[slot].descriptor.diffId})` });
    // A snapshot in the cache saves applying every entry again (see cache/tree-snapshot.ts).
    const { tree, warnings: treeWarnings } = await mergedTree(layers, applied, opts.cache, build);
    treeWarnings.forEach(warn);
    return new ImageView(archive, image, layers, applied, tree, warnings, opts.cache);
  }

  /**
   * Lets go of every layer index's paths that the index cache can give back: with the merged
   * tree built (it has its own names), only a layer's own view (layerTree) reads them, and it
   * reads them back from the cache entry the index came from or was stored in, checked against
   * the checksum it had (a different entry fails that view, EIO, rather than show other paths).
   * For a long-running server (the mount): half of each index's memory. Not done unless the
   * cache folder is outside the mountpoint (cacheOutside): once mounted, reading it back would
   * be a read of the process's own mount from its only JS thread (a deadlock). Returns the bytes
   * let go.
   */
  releaseLayerPaths(cacheOutsideMount: boolean): number {
    const cache = this.cache;
    if (!cache || !cacheOutsideMount) return 0;
    let bytes = 0;
    for (const [position, l] of this.layers.entries()) {
      const ix = l.index;
      if (!l.cached || !ix.pathsLoaded || !cache.has(l.cached.key)) continue;
      const { key, sum } = l.cached;
      bytes += ix.pathPool.length + ix.pathStart.byteLength;
      ix.releasePaths(() => {
        const entry = cache.getSync(key);
        if (entry.sum !== sum) throw new Error(`layer ${position} (${l.descriptor.diffId}): its index in the cache changed since it was mounted; remount to see this layer`);
        return tarIndexPaths(entry.sections);
      });
    }
    return bytes;
  }

  /**
   * Whether the index cache folder lies outside `mountpoint`. Resolves both paths: call it
   * before mounting there, never after (a lookup of one's own mountpoint from the thread that
   * serves it never returns).
   */
  cacheOutside(mountpoint: string): boolean {
    if (!this.cache) return false;
    const real = (p: string) => {
      try {
        return fs.realpathSync(p);
      } catch {
        return path.resolve(p);
      }
    };
    const dir = real(this.cache.dir);
    const mnt = real(mountpoint);
    return !(dir === mnt || dir.startsWith(mnt.endsWith(path.sep) ? mnt : mnt + path.sep));
  }

  /** Layer `position` alone, whiteout markers shown as its tar has them. */
  layerTree(position: number): Tree {
    let tree = this.layerTrees.get(position);
    if (!tree) {
      const built = buildTree(
        this.layers.map((l) => l.index),
        [position],
        { mode: 'single', resolveOutside: (path) => this.findBelow(position, path) },
      );
      tree = built.tree;
      this.layerTrees.set(position, tree);
    }
    return tree;
  }

  /** For a layer's own view: the nearest lower layer holding `path` as a non-directory. */
  private findBelow(position: number, path: string): NodeSource | undefined {
    for (let p = position - 1; p >= 0; p--) {
      let map = this.pathMaps.get(p);
      if (!map) {
        map = new Map();
        const idx = this.layers[p].index;
        for (let i = 0; i < idx.count; i++) map.set(idx.path(i), i);
        this.pathMaps.set(p, map);
      }
      const entry = map.get(path);
      if (entry !== undefined) return { layerSlot: p, entry };
    }
    return undefined;
  }

  /** Reads file bytes of `node` in `tree` (the merged tree or a layer tree). */
  read(tree: Tree, node: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const src = tree.source(node);
    if (!src) return Promise.resolve(0);
    const layer = this.layers[src.layerSlot];
    return readEntryContent(layer.stream, layer.index, src.entry, buf, offset, length, position);
  }

  /**
   * Where a node's bytes are when they are one plain run of its layer's stream: not sparse, and
   * all inside the stream (a layer cut inside the file's data has no such run; read() fails
   * there at the blob's end). Undefined otherwise, and for nodes that are not files.
   */
  plainRun(tree: Tree, node: number): { stream: ByteSource; offset: number; size: number } | undefined {
    const src = tree.source(node);
    if (!src) return undefined;
    const layer = this.layers[src.layerSlot];
    if (layer.index.extras.get(src.entry)?.sparse) return undefined;
    const offset = layer.index.dataOffsets[src.entry];
    const size = layer.index.sizes[src.entry];
    if (offset + size > layer.stream.size) return undefined;
    return { stream: layer.stream, offset, size };
  }

  /** Reads a whole file (for the CLI's cat and for tests); refuses directories. */
  async readFile(tree: Tree, node: number): Promise<Buffer> {
    const size = tree.stat(node).size;
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = await this.read(tree, node, buf, done, Math.min(size - done, 8 * 1024 * 1024), done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  }

  /** Resolves once the index cache files of this open are on disk (see cacheWriteBehind). */
  async cacheWritten(): Promise<void> {
    await this.cache?.flush();
  }

  async close(): Promise<void> {
    await this.cacheWritten();
    return this.archive.close();
  }
}
