import type { ScanSource } from '../io/byte-source';
import { normalizePath } from '../paths';
import { LocatedError } from '../errors';
import { EntryType, type SparseExtent, type TarEntry } from './entry';
import { BLOCK, decodeHeader, decodeOldGnuSparseExtension, isZeroBlock, type RawHeader } from './header';
import { parsePax, parsePaxCount, parsePaxTime, paxValue, paxXattrs, type PaxRecords } from './pax';
import { displayName } from '../names';
import { warning, type Warning, type WarningCode } from '../warnings';
import { TarIndexBuilder, type TarIndex } from './tar-index';
import { WindowReader } from './window-reader';
import { NativeHeaderRun, type FileStretch } from './native-scan';

/** A scanned tar stream: its index and what a user should hear about it. */
export interface TarStreamScan {
  index: TarIndex;
  /** Things a user should hear about that did not stop the scan (skipped entries, truncation). */
  warnings: Warning[];
  /** Where the archive ended: after the end-of-archive blocks, or at the last complete member. */
  endOffset: number;
  /** When the stream ends early: how, without the stream's name ("truncated: 3 stray bytes at byte 1024"). */
  truncation?: string;
}

/**
 * The scan with its warnings as text, for the modules that still keep text (open-archive.ts,
 * index-layer.ts and what they store in the index cache). `issues` and `truncation` carry the
 * same warnings as objects when the scan was just made (a cached scan has only the text).
 */
export interface TarScan {
  index: TarIndex;
  warnings: string[];
  endOffset: number;
  issues?: Warning[];
  truncation?: string;
}

const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

const typeOfFlag: Record<string, EntryType> = {
  '\0': EntryType.File, // pre-POSIX regular file (or a directory, by a trailing slash: see below)
  '0': EntryType.File,
  '7': EntryType.File, // contiguous file: a plain file everywhere but on one ancient system
  '1': EntryType.HardLink,
  '2': EntryType.Symlink,
  '3': EntryType.CharDevice,
  '4': EntryType.BlockDevice,
  '5': EntryType.Directory,
  '6': EntryType.Fifo,
  D: EntryType.Directory, // GNU dumpdir: a directory whose data is a listing we do not need
  S: EntryType.File, // old GNU sparse
};

/** Extension headers seen before a member, folded into it when it arrives. */
interface Pending {
  pax: PaxRecords;
  longName?: string;
  longLink?: string;
}

/** Where a scan runs and what it may use. */
export interface ScanOptions {
  /** Put on every warning. */
  layer?: string;
  /**
   * Where the stream's bytes sit in a file this process has open, when they do (an uncompressed
   * layer): runs of plain headers are then indexed by the native scan (native-scan.ts).
   */
  file?: FileStretch;
}

/** scanTarStream with the warnings as text as well (see TarScan). */
export async function scanTar(src: ScanSource, what: string, opts: ScanOptions = {}): Promise<TarScan> {
  const scan = await scanTarStream(src, what, opts);
  return { index: scan.index, warnings: scan.warnings.map((w) => w.text), endOffset: scan.endOffset, issues: scan.warnings, truncation: scan.truncation };
}

/**
 * Walks a tar stream header by header and records where each member's data lies, without
 * reading the data: after a header it jumps over the padded data to the next header. Reads
 * always move forward, so the same walk works over a decompressor that can only go forward.
 * `what` names the stream in messages ("layer sha256:ab12…").
 */
export async function scanTarStream(src: ScanSource, what: string, opts: ScanOptions = {}): Promise<TarStreamScan> {
  const where = opts.layer !== undefined ? { layer: opts.layer } : {};
  const builder = new TarIndexBuilder();
  const native = opts.file && NativeHeaderRun.over(opts.file);
  const warnings: Warning[] = [];
  let truncation: string | undefined;
  const warn = (code: WarningCode, text: string, entry?: string) => warnings.push(warning(code, `${what}: ${text}`, { ...where, entry }));
  const cut = (text: string) => {
    truncation = text;
    warn('truncated', text);
  };
  const reader = new WindowReader(src);
  const readData = async (pos: number, len: number, label: string): Promise<Buffer> => {
    // Extension headers are small; a huge one is a broken or hostile archive, not a big name.
    if (len > 8 * 1024 * 1024) throw new LocatedError(what, `${label} at byte ${pos} claims ${len} bytes`);
    const buf = await reader.bytes(pos, len);
    if (buf.length !== len) throw new LocatedError(what, `truncated in ${label} at byte ${pos}`);
    return buf;
  };

  let pending: Pending = { pax: [] };
  let pos = 0;
  for (;;) {
    // No extension header waits for a member: plain members from here on are the native scan's.
    if (native && !pending.pax.length && pending.longName === undefined && pending.longLink === undefined) pos = await native.run(builder, pos);
    const block = await reader.block(pos);
    const n = block.length;
    if (n === 0) break; // no end-of-archive blocks: tolerated, as GNU tar does
    if (n < BLOCK) {
      cut(`truncated: ${n} stray bytes at byte ${pos}`);
      break;
    }
    if (isZeroBlock(block)) {
      pos += BLOCK;
      break;
    }
    let header: RawHeader;
    try {
      header = decodeHeader(block);
    } catch (err) {
      throw new LocatedError(what, `invalid tar header at byte ${pos}: ${(err as Error).message}`);
    }
    const dataStart = pos + BLOCK;
    switch (header.typeflag) {
      case 'x':
        pending.pax.push(...parsePax(await readData(dataStart, header.size, 'pax header')));
        pos = dataStart + padded(header.size);
        continue;
      case 'g':
        // Go's reader hands a global header to its caller as an entry of its own, and Docker and
        // containerd skip it: its records never apply to the members that follow.
        pos = dataStart + padded(header.size);
        continue;
      case 'L':
        pending.longName = cString(await readData(dataStart, header.size, 'GNU long name'));
        pos = dataStart + padded(header.size);
        continue;
      case 'K':
        pending.longLink = cString(await readData(dataStart, header.size, 'GNU long link'));
        pos = dataStart + padded(header.size);
        continue;
      case 'V': // volume label: metadata of the tape, not a file
        pos = dataStart + padded(header.size);
        pending = { pax: [] };
        continue;
    }

    const local = pending;
    pending = { pax: [] };
    let type = typeOfFlag[header.typeflag];
    if (type === undefined) {
      // POSIX: an unknown typeflag is read as a regular file.
      warn('unknown-type', `unknown entry type ${JSON.stringify(header.typeflag)} for ${displayName(header.name)}, read as a file`, header.name);
      type = EntryType.File;
    }
    let entry: TarEntry;
    let dataSize: number;
    try {
      ({ entry, dataSize } = applyExtensions(header, type, local, dataStart, (text, entryPath) => warn('malformed-pax', text, entryPath)));
    } catch (err) {
      // A pax size we cannot trust (negative, fractional, not a number) leaves no way to find
      // the next header: stop here, naming the layer and the place.
      throw new LocatedError(what, `${(err as Error).message} in the extended header before byte ${pos}`);
    }
    type = entry.type;

    // Old GNU sparse members carry extension blocks between the header and the data.
    let dataRegion = dataStart;
    if (header.oldGnuSparse) {
      let ext = header.oldGnuSparse.extended;
      const extents = [...header.oldGnuSparse.extents];
      while (ext) {
        const extBlock = await readData(entry.dataOffset, BLOCK, 'GNU sparse extension');
        const decoded = decodeOldGnuSparseExtension(extBlock);
        extents.push(...decoded.extents);
        ext = decoded.extended;
        entry.dataOffset += BLOCK;
      }
      entry.sparse = extents;
      entry.size = header.oldGnuSparse.realSize;
      dataRegion = entry.dataOffset;
    } else if (paxValue(local.pax, 'GNU.sparse.major') === '1' && type === EntryType.File) {
      // A pax 1.0 map is the start of the member's data.
      const mapBlock = await readData(entry.dataOffset, Math.min(BLOCK, entry.storedSize), 'sparse map');
      const { extents, mapBytes } = await readSparse10Map(mapBlock, (at, len) => readData(entry.dataOffset + at, len, 'sparse map'));
      entry.sparse = extents;
      entry.dataOffset += mapBytes;
      entry.storedSize -= mapBytes;
    }
    validateSparse(entry, what);
    pos = dataRegion + padded(dataSize);

    const path = normalizePath(entry.path);
    if (entry.path.includes('\0') || (entry.linkname ?? '').includes('\0')) {
      // Only pax records can carry a NUL in a name. No system call can name such a file: the
      // mount would show it cut at the NUL (aliasing another name) and extract would refuse it.
      warn('skipped-entry', `skipped ${displayName(entry.path)}: a NUL byte in its ${entry.path.includes('\0') ? 'name' : 'link target'}`, entry.path);
    } else if (path === null) {
      warn('skipped-entry', `skipped ${displayName(entry.path)}: path leaves the root`, entry.path);
    } else if (path === '' && type !== EntryType.Directory) {
      warn('skipped-entry', `skipped a ${EntryType[type]} entry named as the root`, entry.path);
    } else if (type === EntryType.HardLink && normalizePath(entry.linkname ?? '') === null) {
      warn('skipped-entry', `skipped hard link ${displayName(path)}: target ${displayName(entry.linkname ?? '')} leaves the root`, path);
    } else {
      entry.path = path;
      if (type === EntryType.HardLink) entry.linkname = normalizePath(entry.linkname ?? '') ?? '';
      builder.add(entry);
    }

    if (src.size !== undefined && dataRegion + dataSize > src.size) {
      cut(`truncated in the data of ${displayName(entry.path)} (needs ${entry.dataOffset + entry.storedSize} bytes, have ${src.size})`);
      pos = src.size;
      break;
    }
  }
  return { index: builder.finish(), warnings, endOffset: pos, truncation };
}

/**
 * Go's header-only typeflags: their members never have data, whatever the size field says. A
 * GNU dumpdir ('D', a directory here) does carry data: its listing.
 */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

/** A GNU long name or link: bytes up to the first NUL. */
function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('latin1', 0, nul < 0 ? buf.length : nul);
}

/**
 * Folds a member's extension headers into it, in Go's order: pax records over the header's
 * fields, then GNU long names, then the pre-POSIX rule that a NUL-typeflag member whose (full)
 * name ends in `/` is a directory. Returns the entry and how many data bytes follow the header
 * in the stream. A malformed pax number other than `size` is reported through `warn` and the
 * header's own field is used, as GNU tar and bsdtar do; an unusable `size` throws, since the next
 * header can then not be found.
 */
function applyExtensions(
  h: RawHeader,
  flagType: EntryType,
  ext: Pending,
  dataStart: number,
  warn: (text: string, entryPath: string) => void,
): { entry: TarEntry; dataSize: number } {
  const pax = ext.pax;
  const path = paxValue(pax, 'GNU.sparse.name') ?? ext.longName ?? paxValue(pax, 'path') ?? h.name;
  const linkname = ext.longLink ?? paxValue(pax, 'linkpath') ?? h.linkname;
  let type = flagType;
  const oldStyleDir = h.typeflag === '\0' && path.endsWith('/');
  if (oldStyleDir) type = EntryType.Directory;
  const bad = (key: string, value: string) => warn(`${displayName(path)}: ignored malformed pax ${key}=${JSON.stringify(value)}, used the header's field`, path);
  const count = (key: string, fallback: number): number => {
    const text = paxValue(pax, key);
    if (text === undefined) return fallback;
    const n = parsePaxCount(text);
    if (n === undefined) bad(key, text);
    return n ?? fallback;
  };

  const sizeText = paxValue(pax, 'size');
  let size = h.size;
  if (sizeText !== undefined) {
    const n = parsePaxCount(sizeText);
    if (n === undefined) throw new Error(`invalid pax size=${JSON.stringify(sizeText)}`);
    size = n;
  }
  const mtimeText = paxValue(pax, 'mtime');
  let mtime = { sec: h.mtime, nsec: 0 };
  if (mtimeText !== undefined) {
    const t = parsePaxTime(mtimeText);
    if (t) mtime = t;
    else bad('mtime', mtimeText);
  }
  const dataSize = HEADER_ONLY.has(h.typeflag) || oldStyleDir ? 0 : size;
  const isFile = type === EntryType.File;
  const entry: TarEntry = {
    path,
    type,
    mode: h.mode,
    uid: count('uid', h.uid),
    gid: count('gid', h.gid),
    size: isFile ? size : 0,
    mtime: mtime.sec,
    mtimeNsec: mtime.nsec,
    dataOffset: dataStart,
    storedSize: isFile ? size : 0,
  };
  if (type === EntryType.Symlink || type === EntryType.HardLink) entry.linkname = linkname;
  if (type === EntryType.CharDevice || type === EntryType.BlockDevice) {
    entry.devmajor = h.devmajor;
    entry.devminor = h.devminor;
  }
  const uname = paxValue(pax, 'uname') ?? h.uname;
  const gname = paxValue(pax, 'gname') ?? h.gname;
  if (uname) entry.uname = uname;
  if (gname) entry.gname = gname;
  const xattrs = paxXattrs(pax);
  if (xattrs) entry.xattrs = xattrs;
  if (isFile) applyPaxSparse(entry, pax);
  return { entry, dataSize };
}

/** GNU sparse 0.0 and 0.1 describe the map in pax records; 1.0 puts it in the data (read later). */
function applyPaxSparse(entry: TarEntry, pax: PaxRecords): void {
  const sizeText = paxValue(pax, 'GNU.sparse.realsize') ?? paxValue(pax, 'GNU.sparse.size');
  const map01 = paxValue(pax, 'GNU.sparse.map');
  const offsets00 = pax.filter(([k]) => k === 'GNU.sparse.offset').map(([, v]) => Number(v.toString('latin1')));
  const lengths00 = pax.filter(([k]) => k === 'GNU.sparse.numbytes').map(([, v]) => Number(v.toString('latin1')));
  if (pax.some(([k]) => k === 'GNU.sparse.map')) {
    const nums = map01 === undefined ? [] : map01.split(',').map(Number);
    entry.sparse = [];
    for (let i = 0; i + 1 < nums.length; i += 2) entry.sparse.push({ offset: nums[i], length: nums[i + 1] });
  } else if (offsets00.length) {
    entry.sparse = offsets00.map((offset, i) => ({ offset, length: lengths00[i] }));
  }
  if (sizeText !== undefined) {
    const realSize = parsePaxCount(sizeText);
    if (realSize === undefined) throw new Error(`invalid pax GNU.sparse size ${JSON.stringify(sizeText)}`);
    entry.size = realSize;
  }
}

/** GNU sparse 1.0: decimal lines at the start of the data: count, then offset/length pairs. */
async function readSparse10Map(
  first: Buffer,
  readMore: (at: number, len: number) => Promise<Buffer>,
): Promise<{ extents: SparseExtent[]; mapBytes: number }> {
  let text = first.toString('latin1');
  let have = first.length;
  const numbers: number[] = [];
  let cursor = 0;
  const next = async (): Promise<number> => {
    for (;;) {
      const nl = text.indexOf('\n', cursor);
      if (nl >= 0) {
        const n = Number(text.slice(cursor, nl));
        if (!Number.isSafeInteger(n) || n < 0) throw new Error('invalid GNU sparse 1.0 map');
        cursor = nl + 1;
        return n;
      }
      if (have > 1024 * 1024) throw new Error('GNU sparse 1.0 map too long');
      const more = await readMore(have, BLOCK);
      text += more.toString('latin1');
      have += BLOCK;
    }
  };
  const count = await next();
  const extents: SparseExtent[] = [];
  for (let i = 0; i < count; i++) extents.push({ offset: await next(), length: await next() });
  return { extents, mapBytes: padded(cursor) };
}

function validateSparse(entry: TarEntry, what: string): void {
  if (!entry.sparse) return;
  // Old GNU headers give the real size in a free-form number field: keep it exact and positive.
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new LocatedError(what, `invalid sparse size for ${displayName(entry.path)}`);
  let stored = 0;
  for (const x of entry.sparse) {
    if (!Number.isSafeInteger(x.offset) || !Number.isSafeInteger(x.length) || x.offset < 0 || x.length < 0 || x.offset + x.length > entry.size) {
      throw new LocatedError(what, `invalid sparse map for ${displayName(entry.path)}`);
    }
    stored += x.length;
  }
  if (stored > entry.storedSize) throw new LocatedError(what, `sparse map of ${displayName(entry.path)} needs more data than stored`);
}
