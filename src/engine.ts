import { ArchiveError, DirArchiveFiles, TarArchiveFiles, type ArchiveFiles } from './archive/archive-files';
import { detectCompression } from './compress/detect';
import { cacheKey, IndexCache, sampleDigest } from './cache/index-cache';
import { createSeekIndexBuilder, decodeSeekIndex, encodeSeekIndex, openRandomAccess, type SeekIndex } from './compress/stream';
import { FileSource, readExactly, type ByteSource } from './io/byte-source';
import { discoverImages } from './image/discover';
import { parseLayerSelection } from './image/layer-selection';
import { loadImage } from './image/load';
import type { Image, ImageRecord, LayerDescriptor } from './image/model';
import { selectImage, type ImageSelector } from './image/select';
import { layerDigestProblems, metadataDigestProblems } from './image/verify';
import { scanTar } from './tar/scan';
import type { TarIndex } from './tar/tar-index';
import { decodeTarIndex, encodeTarIndex } from './tar/tar-index-codec';
import { buildTree, type FileObj } from './union/build';
import { readEntryContent } from './union/content';
import type { Tree } from './union/tree';
import * as fs from 'node:fs';

export type Compression = 'none' | 'gzip' | 'zstd';

/** One layer of the selected image, indexed: its uncompressed tar stream and that stream's index. */
export interface IndexedLayer {
  descriptor: LayerDescriptor;
  compression: Compression;
  /** The uncompressed tar stream (a slice of the archive, or a decompressor with a seek index). */
  stream: ByteSource;
  index: TarIndex;
  /** The stored blob's size. */
  storedSize: number;
  warnings: string[];
}

export interface OpenOptions extends ImageSelector {
  /** `--layers` selection (see parseLayerSelection); all layers when absent. */
  layers?: string;
  /** Called with every warning as it is found (the CLI prints them on stderr). */
  onWarning?: (message: string) => void;
  /** Where indexes are kept between runs; undefined = no cache. */
  cache?: IndexCache;
  /** Check every digest (manifest, config, layer blobs, diff_ids) and fail on a mismatch. */
  verify?: boolean;
}

/** An opened archive: its files and the images found in it. */
export class ImageArchive {
  private constructor(
    readonly files: ArchiveFiles,
    readonly records: ImageRecord[],
  ) {}

  static async open(path: string): Promise<ImageArchive> {
    const files = await openArchiveFiles(path);
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

async function openArchiveFiles(path: string): Promise<ArchiveFiles> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(path);
  } catch (err) {
    throw new ArchiveError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  if (st.isDirectory()) return DirArchiveFiles.open(path);
  const file = await FileSource.open(path).catch((err: Error) => {
    throw new ArchiveError(`${path}: ${err.message}`);
  });
  try {
    const head = await readExactly(file, 0, Math.min(1024, file.size), path);
    const kind = detectCompression(head);
    const stamp = { size: st.size, mtimeMs: st.mtimeMs };
    const close = () => file.close();
    if (kind === 'none') return TarArchiveFiles.fromScan(path, await scanTar(file, path), file, stamp, close, file);
    if (kind === 'gzip' || kind === 'zstd') {
      // `docker save | gzip`: one pass indexes the outer tar and records seek points.
      const builder = createSeekIndexBuilder(kind, file);
      const scanned = await scanTar(builder, path);
      const seek = await builder.finish();
      return TarArchiveFiles.fromScan(path, scanned, openRandomAccess(kind, file, seek), stamp, close, file);
    }
    throw new ArchiveError(`${path}: the archive is ${kind}-compressed, which ocimount cannot read yet; decompress it first`);
  } catch (err) {
    await file.close();
    throw err instanceof ArchiveError ? err : new ArchiveError((err as Error).message);
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
    readonly warnings: string[],
  ) {}

  static async open(archivePath: string, opts: OpenOptions = {}): Promise<ImageView> {
    const archive = await ImageArchive.open(archivePath);
    try {
      return await ImageView.fromArchive(archive, opts);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  static async fromArchive(archive: ImageArchive, opts: OpenOptions = {}): Promise<ImageView> {
    const warn = (m: string) => {
      warnings.push(m);
      opts.onWarning?.(m);
    };
    const warnings: string[] = [];
    archive.files.warnings.forEach(warn);
    const record = archive.select(opts);
    const image = await loadImage(archive.files, record);
    image.warnings.forEach(warn);
    const metaProblems = metadataDigestProblems(image);
    if (opts.verify && metaProblems.length) throw new ArchiveError(`${archive.files.location}: ${metaProblems[0]}`);
    metaProblems.forEach(warn);
    const layers: IndexedLayer[] = [];
    const byBlob = new Map<string, IndexedLayer>();
    for (const d of image.layers) {
      // The same blob may serve several positions (an empty layer twice): index it once.
      const seen = byBlob.get(d.blobPath);
      const layer = seen ? { ...seen, descriptor: d } : await indexLayer(archive.files, d, opts.cache);
      if (!seen) layer.warnings.forEach(warn);
      byBlob.set(d.blobPath, layer);
      layers.push(layer);
    }
    if (opts.verify) {
      const problems = await layerDigestProblems(
        await Promise.all(
          layers.map(async (l) => ({ ...l.descriptor, blob: await archive.files.open(l.descriptor.blobPath), stream: l.stream, compressed: l.compression !== 'none' })),
        ),
      );
      if (problems.length) throw new ArchiveError(`${archive.files.location}: ${problems.join('; ')}`);
    }
    const applied = opts.layers ? parseLayerSelection(opts.layers, layers.length) : layers.map((_, i) => i);
    const { tree, warnings: treeWarnings } = buildTree(
      layers.map((l) => l.index),
      applied,
      { mode: 'merged', layerName: (slot) => `layer ${slot} (${layers[slot].descriptor.diffId})` },
    );
    treeWarnings.forEach(warn);
    return new ImageView(archive, image, layers, applied, tree, warnings);
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
  private findBelow(position: number, path: string): FileObj | undefined {
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
   * The file and byte range holding a node's content, when it is one plain run of an
   * uncompressed archive (not sparse, not compressed): the mount then serves reads with one
   * `fs.read` each instead of going through the layer's stream.
   */
  fileSpan(tree: Tree, node: number): { file: FileSource; offset: number; size: number } | undefined {
    const src = tree.source(node);
    if (!src) return undefined;
    const layer = this.layers[src.layerSlot];
    if (layer.index.extras.get(src.entry)?.sparse) return undefined;
    const range = layer.stream.fileRange?.();
    if (!range) return undefined;
    return { file: range.file, offset: range.start + layer.index.dataOffsets[src.entry], size: layer.index.sizes[src.entry] };
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

  close(): Promise<void> {
    return this.archive.close();
  }
}

interface LayerIndexes {
  index: TarIndex;
  seek?: SeekIndex;
  warnings: string[];
}

/**
 * Indexes one layer blob: its compression by magic bytes, its tar entries, and for a compressed
 * blob the seek index that makes random reads cheap. A cached index is used when the cache holds
 * one for this very blob (digest, size and sampled content all agree).
 */
async function indexLayer(files: ArchiveFiles, d: LayerDescriptor, cache: IndexCache | undefined): Promise<IndexedLayer> {
  const blob = await files.open(d.blobPath);
  const head = Buffer.alloc(Math.min(1024, blob.size));
  await blob.read(head, 0, head.length, 0);
  const kind = detectCompression(head);
  const what = `layer ${d.position} (${d.diffId})`;
  if (kind !== 'none' && kind !== 'gzip' && kind !== 'zstd') {
    throw new ArchiveError(`${files.location}: ${what} is ${kind === 'unknown' ? 'neither a tar nor in a known compression' : `${kind}-compressed, which ocimount does not read in layers`}`);
  }
  const key = cache && cacheKey({ kind: 'layer', id: d.digest ?? d.diffId, compression: kind, sample: await sampleDigest(blob) });
  let found = key ? await loadCachedLayer(cache!, key, kind !== 'none') : undefined;
  if (!found) {
    found = await scanLayer(blob, kind, what).catch((err: Error) => {
      throw err instanceof ArchiveError ? err : new ArchiveError(`${files.location}: ${err.message}`);
    });
    if (key) {
      await cache!.put(key, {
        meta: { what: 'layer index', diffId: d.diffId, warnings: found.warnings },
        sections: [encodeTarIndex(found.index), ...(found.seek ? [encodeSeekIndex(found.seek)] : [])],
      });
    }
  }
  const stream = kind === 'none' ? blob : openRandomAccess(kind, blob, found.seek!);
  return { descriptor: d, compression: kind, stream, index: found.index, storedSize: blob.size, warnings: found.warnings };
}

async function scanLayer(blob: ByteSource, kind: Compression, what: string): Promise<LayerIndexes> {
  if (kind === 'none') {
    const scan = await scanTar(blob, what);
    return { index: scan.index, warnings: scan.warnings };
  }
  // One pass over the compressed blob gives both the tar index and the seek points.
  const builder = createSeekIndexBuilder(kind, blob);
  const scan = await scanTar(builder, what);
  const seek = await builder.finish();
  return { index: scan.index, seek, warnings: scan.warnings };
}

async function loadCachedLayer(cache: IndexCache, key: string, needsSeek: boolean): Promise<LayerIndexes | undefined> {
  const entry = await cache.get(key);
  if (!entry || (needsSeek && !entry.sections[1])) return undefined;
  try {
    return {
      index: decodeTarIndex(entry.sections[0]),
      seek: entry.sections[1] ? decodeSeekIndex(entry.sections[1]) : undefined,
      warnings: Array.isArray(entry.meta.warnings) ? (entry.meta.warnings as string[]) : [],
    };
  } catch {
    return undefined;
  }
}
