import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ArchiveError } from '../errors';
import { FileSource, SliceSource, type ByteSource } from '../io/byte-source';
import { normalizePath, parentOf, joinPath } from '../paths';
import { nameToText } from '../names';
import { EntryType } from '../tar/entry';
import { oneLine, printableText } from '../text';
import type { TarScan } from '../tar/scan';
import { textWarning, type Warning } from '../warnings';
import type { TarIndex } from '../tar/tar-index';

/**
 * The files of an image archive, whatever holds them: a tar (docker save, oci-archive) or a
 * folder (an OCI layout on disk). Paths are archive-relative; nothing outside the archive can be
 * named, because every path is normalized and refused when it would climb out.
 */
export interface ArchiveFiles {
  /** The archive as the user named it, for messages. */
  readonly location: string;
  /** Identity of the archive file or folder, for cache keys: size and mtime. */
  readonly stamp: { size: number; mtimeMs: number };
  /**
   * What cached indexes that are tied to this archive (not to a proven digest) are keyed by,
   * when not its resolved path: a registry repository (`docker://host/repo`).
   */
  readonly cacheIdentity?: string;
  readonly warnings: Warning[];
  /** When the archive ends early: how ("truncated: 3 stray bytes at byte 1024"). */
  readonly truncation?: string;
  has(path: string): boolean;
  list(): string[];
  open(path: string): Promise<ByteSource>;
  /**
   * Only where layers are fetched lazily (a registry): the manifest's annotations of the layer
   * at `path`. Its presence is what lets a layer be read through its TOC instead of a pass.
   */
  layerAnnotations?(path: string): Record<string, string>;
  /** The files whose bytes the indexes point into, to watch for changes while mounted. */
  backingFiles(): FileSource[];
  close(): Promise<void>;
}

// open-archive.ts and index-layer.ts import it from here.
export { ArchiveError };

export async function readArchiveBytes(files: ArchiveFiles, path: string, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const src = await files.open(path);
  if (src.size > limit) throw new ArchiveError(`${files.location}: ${printableText(path)} is ${src.size} bytes, too large for metadata`);
  const buf = Buffer.alloc(src.size);
  const n = await src.read(buf, 0, src.size, 0);
  if (n !== src.size) throw new ArchiveError(`${files.location}: ${printableText(path)} is truncated`);
  return buf;
}

export async function readArchiveJson(files: ArchiveFiles, path: string): Promise<{ value: unknown; bytes: Buffer }> {
  const bytes = await readArchiveBytes(files, path);
  try {
    return { value: JSON.parse(bytes.toString('utf8')), bytes };
  } catch (err) {
    // V8 quotes the text around the error, newlines included: keep the message one line.
    throw new ArchiveError(`${files.location}: ${printableText(path)}: invalid JSON (${oneLine((err as Error).message)})`, { cause: err });
  }
}

/** A tar archive: one header scan gives every member's offset; members are slices of the file. */
export class TarArchiveFiles implements ArchiveFiles {
  private constructor(
    readonly location: string,
    private readonly source: ByteSource,
    private readonly closeSource: () => Promise<void>,
    private readonly index: TarIndex,
    private readonly byPath: Map<string, number>,
    readonly stamp: { size: number; mtimeMs: number },
    readonly warnings: Warning[],
    readonly truncation: string | undefined,
    private readonly backing?: FileSource,
  ) {}

  /**
   * `scanned` is the header scan of the tar stream; `source` reads that stream (for a compressed
   * archive, through its seek index); `close` releases what backs it.
   */
  static fromScan(
    location: string,
    scanned: TarScan,
    source: ByteSource,
    stamp: { size: number; mtimeMs: number },
    close: () => Promise<void>,
    backing?: FileSource,
  ): TarArchiveFiles {
    // Manifests name their files in JSON text, so the archive's member names are kept as text
    // here (a layer's own names stay bytes: src/names.ts).
    const byPath = new Map<string, number>();
    for (let i = 0; i < scanned.index.count; i++) byPath.set(nameToText(scanned.index.path(i)), i);
    // A scan from the index cache has its warnings as text only (see TarScan).
    const warnings = scanned.issues ?? scanned.warnings.map((text) => textWarning(text));
    const truncation = scanned.issues ? scanned.truncation : truncationOf(warnings, location);
    return new TarArchiveFiles(location, source, close, scanned.index, byPath, stamp, warnings, truncation, backing);
  }

  has(path: string): boolean {
    return this.resolve(path) !== undefined;
  }

  list(): string[] {
    return [...this.byPath.keys()];
  }

  /** Follows member symlinks and hard links (docker save dedupes layers with them), bounded. */
  private resolve(path: string): number | undefined {
    let p = normalizePath(path);
    for (let hops = 0; p !== null && hops < 16; hops++) {
      const i = this.byPath.get(p);
      if (i === undefined) return undefined;
      const t = this.index.type(i);
      if (t === EntryType.File) return i;
      const link = nameToText(this.index.extras.get(i)?.linkname ?? '');
      if (t === EntryType.HardLink) p = normalizePath(link);
      else if (t === EntryType.Symlink) p = normalizePath(link.startsWith('/') ? link : joinPath(parentOf(p), link));
      else return undefined;
    }
    return undefined;
  }

  async open(path: string): Promise<ByteSource> {
    const i = this.resolve(path);
    if (i === undefined) {
      const norm = normalizePath(path);
      if (norm === null) throw new ArchiveError(`${this.location}: refused ${JSON.stringify(path)}: it points outside the archive`);
      const what = this.byPath.has(norm) ? 'not a regular file' : 'missing from the archive';
      // A member after the point where the archive was cut is missing because of the cut.
      const cut = this.truncation !== undefined && !this.byPath.has(norm) ? ` (the archive ends early: ${this.truncation})` : '';
      throw new ArchiveError(`${this.location}: ${printableText(path)}: ${what}${cut}`);
    }
    return new SliceSource(this.source, this.index.dataOffsets[i], this.index.sizes[i]);
  }

  backingFiles(): FileSource[] {
    return this.backing ? [this.backing] : [];
  }

  close(): Promise<void> {
    return this.closeSource();
  }
}

/**
 * How a scan kept as text says the archive was cut: its truncation warning without the
 * archive's name (the scanner writes `<location>: <how>`). Only for scans from the index cache.
 */
function truncationOf(warnings: Warning[], location: string): string | undefined {
  const text = warnings.find((w) => w.code === 'truncated')?.text;
  if (text === undefined) return undefined;
  return text.startsWith(`${location}: `) ? text.slice(location.length + 2) : text;
}

/** An OCI image layout unpacked on disk. Opened paths must stay inside the folder, links included. */
export class DirArchiveFiles implements ArchiveFiles {
  readonly warnings: Warning[] = [];
  readonly truncation = undefined;
  private readonly opened: FileSource[] = [];

  private constructor(
    readonly location: string,
    private readonly realRoot: string,
    readonly stamp: { size: number; mtimeMs: number },
  ) {}

  static async open(dir: string): Promise<DirArchiveFiles> {
    const realRoot = await fs.promises.realpath(dir);
    const st = await fs.promises.stat(realRoot);
    return new DirArchiveFiles(dir, realRoot, { size: 0, mtimeMs: st.mtimeMs });
  }

  private locate(path: string): string | null {
    return this.where(path).real ?? null;
  }

  /** The real path of an archive path inside the folder, or why there is none. */
  private where(path: string): { real?: string; outside?: boolean } {
    const norm = normalizePath(path);
    if (norm === null) return { outside: true };
    if (norm === '') return {};
    const full = nodePath.join(this.realRoot, norm);
    let real: string;
    try {
      real = fs.realpathSync(full);
    } catch {
      return {};
    }
    return real === this.realRoot || real.startsWith(this.realRoot + nodePath.sep) ? { real } : { outside: true };
  }

  has(path: string): boolean {
    const p = this.locate(path);
    return p !== null && fs.statSync(p).isFile();
  }

  list(): string[] {
    const out: string[] = [];
    const walk = (rel: string) => {
      for (const d of fs.readdirSync(nodePath.join(this.realRoot, rel), { withFileTypes: true })) {
        const r = joinPath(rel, d.name);
        if (d.isDirectory()) walk(r);
        else out.push(r);
      }
    };
    walk('');
    return out;
  }

  async open(path: string): Promise<ByteSource> {
    const { real, outside } = this.where(path);
    if (real === undefined) {
      // `outside` also covers a symlink in the folder that resolves out of it: say so, rather
      // than calling the file missing.
      throw new ArchiveError(`${this.location}: ${printableText(path)}: ${outside ? 'refused: it points outside the layout' : 'missing from the layout'}`);
    }
    // Only regular files: a folder, FIFO or device where a blob should be is the layout's fault,
    // reported like a missing file (and a device is never opened, opening one can act on it).
    const st = await fs.promises.stat(real).catch(() => undefined);
    if (!st?.isFile()) throw new ArchiveError(`${this.location}: ${printableText(path)}: not a regular file`);
    const src = await FileSource.open(real).catch((err: Error) => {
      throw new ArchiveError(`${this.location}: ${printableText(path)}: ${oneLine(err.message)}`, { cause: err });
    });
    this.opened.push(src);
    return src;
  }

  backingFiles(): FileSource[] {
    return [...this.opened];
  }

  async close(): Promise<void> {
    await Promise.all(this.opened.map((s) => s.close()));
  }
}
