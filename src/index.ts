/**
 * ocimount as a library: open an image archive, pick an image, walk its merged tree or any single
 * layer, and read file bytes lazily from the archive. The mount and the CLI are built on exactly
 * this.
 *
 *   const view = await ImageView.open('image.tar', { image: 'myapp:1.0' });
 *   const node = view.merged.lookup('etc/os-release');
 *   const text = (await view.readFile(view.merged, node)).toString();
 *   await view.close();
 */
export { ImageArchive, ImageView, type Compression, type IndexedLayer, type OpenOptions } from './engine';
export { defaultCacheDir, IndexCache } from './cache/index-cache';
export { ArchiveError, EnvironmentError, ExitCode, NotFoundError, OutputError, UsageError, UserError } from './errors';
export type { Warning, WarningCode } from './warnings';
export type { HistoryStep, Image, ImageConfig, ImageRecord, LayerDescriptor, Platform } from './image/model';
export type { ImageSelector } from './image/select';
export { EntryType } from './tar/entry';
export type { TarIndex } from './tar/tar-index';
export type { NodeStat, Tree } from './union/tree';
