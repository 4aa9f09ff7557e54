import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cacheKey, makeDirs, sampleDigest, type IndexCache } from '../cache/index-cache';
import { FileSource } from '../io/byte-source';
import { ArchiveError, DirArchiveFiles, TarArchiveFiles, type ArchiveFiles } from './archive-files';
import { locatedMessage } from '../errors';
import { isRegistryReference } from '../registry/reference';
import { oneLine } from '../text';
import { TarIndexer, detectTarCompression, isTarCompression, type CacheKeys } from './tar-indexer';

/** sniff.ts (and zstd-napi with it) only on the failure path that needs it. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const notATarMessage = () => (require('./sniff') as typeof import('./sniff')).notATarMessage;

export interface ArchiveOpenOptions {
  cache?: IndexCache;
  /** One-line notes for the user (what was cached, what is slow and why). */
  log?: (message: string) => void;
  /** Progress of a long sequential pass, in compressed bytes. */
  onProgress?: (what: string, done: number, total: number) => void;
}

/**
 * Opens whatever the user named: an OCI layout folder, or a tar that may itself be compressed
 * (`docker save | gzip`, `| zstd`, `| xz`). A compressed tar is read through a seek index built
 * in one pass and kept in the index cache, so a second open costs a cache read.
 */
export async function openArchiveFiles(location: string, opts: ArchiveOpenOptions = {}): Promise<ArchiveFiles> {
  // docker://HOST/REPO:TAG: the image in a registry, read lazily (src/registry/).
  // Loaded only here: the registry client is a good part of the CLI's start-up otherwise.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (isRegistryReference(location)) return (require('../registry/registry-files') as typeof import('../registry/registry-files')).openRegistryFiles(location, { cache: opts.cache, log: opts.log });
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(location);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ArchiveError(`${location}: ${code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  if (st.isDirectory()) return DirArchiveFiles.open(location);
  let file = await FileSource.open(location).catch((err: Error) => {
    // FileSource's own messages already start with the path: say it once.
    throw new ArchiveError(err.message.startsWith(`${location}: `) ? err.message : `${location}: ${err.message}`);
  });
  let sniffKind: 'gzip' | 'zstd' | undefined;
  try {
    let kind = await detectTarCompression(file);
    const stamp = { size: st.size, mtimeMs: st.mtimeMs };
    if (kind === 'xz') {
      // No seekable xz reader here: decompress once into the cache and read that copy.
      const plain = await xzCopy(file, location, opts);
      await file.close();
      file = plain;
      kind = 'none';
    }
    const close = () => file.close();
    if (isTarCompression(kind)) {
      // Only a compressed archive's index goes to the cache; a plain tar is scanned again on each open.
      const keys = kind !== 'none' ? await outerCacheKeys(file, kind, location, opts.cache) : undefined;
      const indexer = new TarIndexer({ cache: opts.cache, log: opts.log, onProgress: opts.onProgress });
      if (kind === 'gzip' || kind === 'zstd') sniffKind = kind;
      const tar = await indexer.index(file, kind, location, keys, `${path.basename(location)} (${kind})`);
      if (sniffKind && tar.scan.index.count === 0) {
        const notTar = await notATarMessage()(location, sniffKind);
        if (notTar) throw new ArchiveError(`${location}: ${notTar}`);
      }
      return TarArchiveFiles.fromScan(location, tar.scan, tar.stream, stamp, close, file);
    }
    throw new ArchiveError(
      kind === 'bzip2'
        ? `${location}: bzip2-compressed archives are not read directly; decompress it first (bunzip2 -k ${location})`
        : `${location}: not a tar archive, an OCI layout, or a gzip/zstd/xz-compressed tar`,
    );
  } catch (err) {
    await file.close();
    if (err instanceof ArchiveError) throw err;
    const notTar = sniffKind ? await notATarMessage()(location, sniffKind).catch(() => undefined) : undefined;
    if (notTar) throw new ArchiveError(`${location}: ${notTar}`, { cause: err });
    throw new ArchiveError(locatedMessage(err, location), { cause: err });
  }
}

/** An outer archive's index is tied to the file (path, size, mtime, sampled content). */
async function outerCacheKeys(file: FileSource, kind: 'gzip' | 'zstd', location: string, cache: IndexCache | undefined): Promise<CacheKeys | undefined> {
  if (!cache) return undefined;
  const key = cacheKey({ kind: 'archive', compression: kind, path: path.resolve(location), size: file.size, mtimeMs: file.mtimeMs, sample: await sampleDigest(file) });
  return { lookup: key, store: key, meta: { what: 'compressed archive index' } };
}

/** `xz -dc -- SRC > DEST`, without a shell: xz's output goes straight into the file. */
async function xzDecompress(src: string, dest: string): Promise<void> {
  const out = await fs.promises.open(dest, 'wx', 0o600);
  try {
    const child = spawn('xz', ['-dc', '--', src], { stdio: ['ignore', out.fd, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(stderr.trim() || `xz exited with ${code}`);
  } finally {
    await out.close();
  }
}

/** Decompresses an xz archive into the cache folder (or the temp dir) with the `xz` tool. */
async function xzCopy(file: FileSource, location: string, opts: ArchiveOpenOptions): Promise<FileSource> {
  const dir = opts.cache?.dir ?? path.join(require('node:os').tmpdir(), 'ocimount-xz');
  const key = cacheKey({ kind: 'xz-copy', path: path.resolve(location), size: file.size, mtimeMs: file.mtimeMs, sample: await sampleDigest(file) });
  const target = path.join(dir, 'xz', `${key}.tar`);
  if (!fs.existsSync(target)) {
    opts.log?.(`${location} is xz-compressed, which cannot be read at random: decompressing it once to ${target}`);
    await makeDirs(path.dirname(target));
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      await xzDecompress(location, tmp);
      await fs.promises.rename(tmp, target);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      const msg = (err as Error).message;
      throw new ArchiveError(`${location}: cannot decompress xz (${/ENOENT/.test(msg) ? 'install xz-utils' : oneLine(msg.split('\n')[0])})`, { cause: err });
    }
  }
  return FileSource.open(target);
}
