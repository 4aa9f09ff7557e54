import { createHash } from 'node:crypto';
import { UnitReader, lastAtOrBefore, type Unit, type UnitCodec } from '../compress/unit-reader';
import type { ByteSource } from '../io/byte-source';
import { normalizePath } from '../paths';
import { EntryType, type TarEntry } from '../tar/entry';
import { TarIndexBuilder, type TarIndex } from '../tar/tar-index';

/*
 * A layer described by a table of contents (eStargz's stargz.index.json, zstd:chunked's
 * manifest) instead of by a pass over its tar: the TOC lists every tar entry and, for file data,
 * where in the compressed blob the independently decompressible piece holding each chunk starts.
 *
 * The TarIndex built from it has the columns a header scan would give, so the union, whiteouts,
 * blame and the mount use it unchanged. Its data offsets are not positions in the layer's tar
 * (the TOC does not give those) but in a "content stream": every regular file's bytes laid end
 * to end in TOC order. The stream is a UnitReader whose units are the TOC's chunks; a read
 * fetches and decompresses only the pieces holding the chunks it touches.
 */

/** One TOC entry, as eStargz and zstd:chunked spell it (JSON field names). */
export interface TocEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  offset?: number;
  /** zstd:chunked: where the piece ends. */
  endOffset?: number;
  innerOffset?: number;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
  digest?: string;
}

/** One chunk of file data: where its piece is in the blob and where the chunk lies in the content stream. */
export interface TocChunk extends Unit {
  /** Compressed offset of the piece holding it. */
  readonly offset: number;
  /** Compressed end of that piece. */
  readonly end: number;
  /** Where the chunk starts in the piece's decompressed bytes. */
  readonly innerOffset: number;
  readonly digest?: string;
  /** The file it belongs to, for messages. */
  readonly file: string;
  /** Bytes given by the TOC itself (its own entry), not fetched. */
  readonly inline?: Buffer;
}

/** A layer indexed without a pass (from a TOC or a seek table): what index-layer.ts needs. */
export interface LazyLayer {
  index: TarIndex;
  /** What the index's data offsets point into. */
  stream: ByteSource;
  /** The uncompressed tar's size, when `stream` is not the tar and the manifest says it. */
  tarSize?: number;
  warnings: string[];
}

export interface TocLayer {
  index: TarIndex;
  chunks: TocChunk[];
  /** Length of the content stream. */
  size: number;
  warnings: string[];
}

const TYPES: Record<string, EntryType> = {
  reg: EntryType.File,
  hardlink: EntryType.HardLink,
  symlink: EntryType.Symlink,
  char: EntryType.CharDevice,
  block: EntryType.BlockDevice,
  dir: EntryType.Directory,
  fifo: EntryType.Fifo,
};

/** A TOC that cannot be used: the caller falls back to reading the tar itself. */
export class TocError extends Error {}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
/** JSON strings are Unicode; the index keeps names as byte strings (one char per byte). */
const bytes = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

/** The JSON `entries` array, checked for the shape every later step relies on. */
export function parseTocJson(json: Buffer): TocEntry[] {
  let v: { entries?: unknown };
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new TocError(`TOC is not JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (!v || !Array.isArray(v.entries)) throw new TocError('TOC has no entries array');
  for (const e of v.entries as TocEntry[]) {
    if (!e || typeof e.name !== 'string' || typeof e.type !== 'string') throw new TocError('TOC entry without a name or type');
    for (const k of ['size', 'mode', 'uid', 'gid', 'devMajor', 'devMinor', 'offset', 'endOffset', 'innerOffset', 'chunkOffset', 'chunkSize'] as const) {
      if (e[k] !== undefined && !isCount(e[k])) throw new TocError(`TOC entry ${JSON.stringify(e.name)}: bad ${k}`);
    }
  }
  return v.entries as TocEntry[];
}

/**
 * An RFC 3339 time as whole seconds and nanoseconds (zstd:chunked writes them to the
 * nanosecond, eStargz to the second); 0 when absent (Go leaves a zero time out).
 */
function time(modtime: string | undefined, name: string): { sec: number; nsec: number } {
  if (!modtime) return { sec: 0, nsec: 0 };
  const frac = /\.(\d{1,9})/.exec(modtime);
  const ms = Date.parse(frac ? modtime.replace(frac[0], '') : modtime);
  if (Number.isNaN(ms)) throw new TocError(`TOC entry ${JSON.stringify(name)}: bad modtime ${JSON.stringify(modtime)}`);
  return { sec: Math.floor(ms / 1000), nsec: frac ? Number(frac[1].padEnd(9, '0')) : 0 };
}

export interface TocLayerOptions {
  /** Where the pieces end: the compressed offset after `offset` (eStargz: the next piece or the TOC). */
  pieceEnd: (offset: number, entry: TocEntry) => number;
  /** The digest a chunk's bytes must have (default: its chunkDigest). */
  chunkDigest?: (entry: TocEntry) => string | undefined;
  /** Entries the tar holds that the TOC does not list (eStargz: the TOC's own file, last). */
  trailing?: Array<{ entry: TarEntry; content: Buffer }>;
}

/**
 * The TarIndex and chunk list of a TOC. Entries are taken in TOC order (the tar's order); names
 * are normalized and refused as a header scan refuses them. Each regular file's chunks must
 * cover it exactly, in order, or the TOC is not used.
 */
export function buildTocLayer(entries: TocEntry[], opts: TocLayerOptions): TocLayer {
  const builder = new TarIndexBuilder();
  const chunks: TocChunk[] = [];
  const warnings: string[] = [];
  let pos = 0;
  /** The regular file whose chunks are being read: its content-stream start, size, and bytes covered. */
  let open: { name: string; start: number; size: number; covered: number } | undefined;
  const close = () => {
    if (open && open.covered !== open.size) throw new TocError(`TOC chunks of ${JSON.stringify(open.name)} cover ${open.covered} of its ${open.size} bytes`);
    open = undefined;
  };
  const addChunk = (e: TocEntry) => {
    if (!open || e.name !== open.name) throw new TocError(`TOC chunk of ${JSON.stringify(e.name)} outside its file`);
    const from = e.chunkOffset ?? 0;
    // A chunkSize of 0 (or none) means "to the end of the file".
    const length = e.chunkSize ? e.chunkSize : open.size - from;
    if (from !== open.covered || length <= 0 || from + length > open.size) throw new TocError(`TOC chunk of ${JSON.stringify(e.name)} at ${from} does not follow the previous one`);
    if (!isCount(e.offset) || e.offset === 0) throw new TocError(`TOC chunk of ${JSON.stringify(e.name)} has no offset`);
    const end = opts.pieceEnd(e.offset, e);
    if (!(end > e.offset)) throw new TocError(`TOC chunk of ${JSON.stringify(e.name)}: no end for the piece at ${e.offset}`);
    chunks.push({ id: String(chunks.length), start: open.start + from, length, offset: e.offset, end, innerOffset: e.innerOffset ?? 0, digest: opts.chunkDigest ? opts.chunkDigest(e) : e.chunkDigest, file: e.name });
    open.covered += length;
  };
  for (const e of entries) {
    if (e.type === 'chunk') {
      addChunk(e);
      continue;
    }
    close();
    const type = TYPES[e.type];
    if (type === undefined) throw new TocError(`TOC entry ${JSON.stringify(e.name)} has unknown type ${JSON.stringify(e.type)}`);
    const raw = bytes(e.name);
    const path = normalizePath(raw);
    const size = type === EntryType.File ? e.size ?? 0 : 0;
    const link = e.linkName !== undefined ? bytes(e.linkName) : undefined;
    const mtime = time(e.modtime, e.name);
    const entry: TarEntry = {
      path: path ?? raw,
      type,
      mode: (e.mode ?? 0) & 0o7777,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size,
      mtime: mtime.sec,
      mtimeNsec: mtime.nsec,
      dataOffset: pos,
      storedSize: size,
      ...(link !== undefined && { linkname: type === EntryType.HardLink ? normalizePath(link) ?? link : link }),
      ...((type === EntryType.CharDevice || type === EntryType.BlockDevice) && { devmajor: e.devMajor ?? 0, devminor: e.devMinor ?? 0 }),
      ...(e.xattrs && Object.keys(e.xattrs).length > 0 && { xattrs: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [bytes(k), Buffer.from(v, 'base64')])) }),
    };
    // The same refusals as the header scan (src/tar/scan.ts), so both views hold the same entries.
    if (raw.includes('\0') || (link ?? '').includes('\0')) warnings.push(`skipped ${JSON.stringify(e.name)}: a NUL byte in its name or link target`);
    else if (path === null) warnings.push(`skipped ${JSON.stringify(e.name)}: path leaves the root`);
    else if (path === '' && type !== EntryType.Directory) warnings.push(`skipped a ${e.type} entry named as the root`);
    else if (type === EntryType.HardLink && normalizePath(link ?? '') === null) warnings.push(`skipped hard link ${JSON.stringify(e.name)}: target leaves the root`);
    else builder.add(entry);
    if (type === EntryType.File && size > 0) {
      // Its bytes stay in the content stream even when the entry was skipped: chunks follow.
      open = { name: e.name, start: pos, size, covered: 0 };
      pos += size;
      addChunk(e);
    }
  }
  close();
  for (const t of opts.trailing ?? []) {
    builder.add({ ...t.entry, dataOffset: pos, size: t.content.length, storedSize: t.content.length });
    if (t.content.length) chunks.push({ id: String(chunks.length), start: pos, length: t.content.length, offset: 0, end: 0, innerOffset: 0, file: t.entry.path, inline: t.content });
    pos += t.content.length;
  }
  return { index: builder.finish(), chunks, size: pos, warnings };
}

/**
 * The content stream of a TOC layer. `inflate` decompresses a piece's compressed bytes far
 * enough to give `want` bytes (the chunk at its inner offset); each chunk is checked against its
 * chunkDigest when the TOC gives one, so a corrupt piece fails the read (EIO on that file)
 * instead of returning wrong bytes.
 */
export function tocContentSource(
  blob: ByteSource,
  layer: TocLayer,
  inflate: (compressed: Buffer, want: number) => Promise<Buffer>,
  opts: { name: string; cacheKey?: string },
): ByteSource {
  const chunks = layer.chunks;
  const codec: UnitCodec<TocChunk> = {
    name: opts.name,
    size: layer.size,
    unitAt: (pos) => chunks[lastAtOrBefore(chunks, pos, (c) => c.start)],
    async decode(c) {
      if (c.inline) return c.inline;
      const compressed = Buffer.allocUnsafe(c.end - c.offset);
      const n = await blob.read(compressed, 0, compressed.length, c.offset);
      if (n !== compressed.length) throw new Error(`${opts.name}: blob ends inside the piece of ${c.file} at ${c.offset}`);
      const out = await inflate(compressed, c.innerOffset + c.length).catch((err: Error) => {
        throw new Error(`${opts.name}: piece of ${c.file} at ${c.offset}: ${err.message}`);
      });
      if (out.length < c.innerOffset + c.length) throw new Error(`${opts.name}: piece of ${c.file} at ${c.offset} is shorter than the TOC says`);
      const data = out.subarray(c.innerOffset, c.innerOffset + c.length);
      if (c.digest) {
        const [algo, hex] = c.digest.split(':');
        if (algo !== 'sha256' || createHash('sha256').update(data).digest('hex') !== hex) {
          throw new Error(`${opts.name}: chunk of ${c.file} at ${c.offset} does not match its digest ${c.digest}`);
        }
      }
      return Buffer.from(data);
    },
  };
  const largest = chunks.reduce((m, c) => Math.max(m, c.length), 0);
  const reader = new UnitReader(codec, { largestUnit: largest, cacheKey: opts.cacheKey });
  return {
    size: layer.size,
    read: (buf, offset, length, position) => reader.read(buf, offset, length, position),
  };
}
