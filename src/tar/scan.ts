import type { ScanSource } from '../io/byte-source';
import { normalizePath } from '../paths';
import { EntryType, type SparseExtent, type TarEntry } from './entry';
import { BLOCK, decodeHeader, decodeOldGnuSparseExtension, isZeroBlock, parsePax, type PaxRecords, type RawHeader } from './header';
import { printable } from './printable';
import { TarIndexBuilder, type TarIndex } from './tar-index';
import { WindowReader } from './window-reader';

export interface TarScan {
  index: TarIndex;
  /** Things a user should hear about that did not stop the scan (skipped entries, truncation). */
  warnings: string[];
  /** Where the archive ended: after the end-of-archive blocks, or at the last complete member. */
  endOffset: number;
}

const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

const typeOfFlag: Record<string, EntryType> = {
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

/**
 * Walks a tar stream header by header and records where each member's data lies, without
 * reading the data: after a header it jumps over the padded data to the next header. Reads
 * always move forward, so the same walk works over a decompressor that can only go forward.
 * `what` names the stream in messages ("layer sha256:ab12…").
 */
export async function scanTar(src: ScanSource, what: string): Promise<TarScan> {
  const builder = new TarIndexBuilder();
  const warnings: string[] = [];
  const reader = new WindowReader(src);
  const readData = async (pos: number, len: number, label: string): Promise<Buffer> => {
    // Extension headers are small; a huge one is a broken or hostile archive, not a big name.
    if (len > 8 * 1024 * 1024) throw new Error(`${what}: ${label} at byte ${pos} claims ${len} bytes`);
    const buf = await reader.bytes(pos, len);
    if (buf.length !== len) throw new Error(`${what}: truncated in ${label} at byte ${pos}`);
    return buf;
  };

  let globalPax: PaxRecords = [];
  let pending: Pending = { pax: [] };
  let pos = 0;
  for (;;) {
    const block = await reader.block(pos);
    const n = block.length;
    if (n === 0) break; // no end-of-archive blocks: tolerated, as GNU tar does
    if (n < BLOCK) {
      warnings.push(`${what}: truncated: ${n} stray bytes at byte ${pos}`);
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
      throw new Error(`${what}: invalid tar header at byte ${pos}: ${(err as Error).message}`);
    }
    const dataStart = pos + BLOCK;
    switch (header.typeflag) {
      case 'x':
        pending.pax.push(...parsePax(await readData(dataStart, header.size, 'pax header')));
        pos = dataStart + padded(header.size);
        continue;
      case 'g':
        globalPax = mergePax(globalPax, parsePax(await readData(dataStart, header.size, 'pax global header')));
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
      warnings.push(`${what}: unknown entry type ${JSON.stringify(header.typeflag)} for ${printable(header.name)}, read as a file`);
      type = EntryType.File;
    }
    const pax = mergePax(globalPax, local.pax);
    let entry: TarEntry;
    try {
      entry = applyExtensions(header, type, pax, local, dataStart);
    } catch (err) {
      // A pax number we cannot trust (a negative or fractional size) leaves no way to find the
      // next header: stop here, naming the layer and the place.
      throw new Error(`${what}: ${(err as Error).message} in the extended header before byte ${pos}`);
    }

    // Old GNU sparse members carry extension blocks between the header and the data.
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
    } else if (paxString(pax, 'GNU.sparse.major') === '1') {
      const mapBlock = await readData(entry.dataOffset, Math.min(BLOCK, entry.storedSize), 'sparse map');
      const { extents, mapBytes } = await readSparse10Map(mapBlock, (at, len) => readData(entry.dataOffset + at, len, 'sparse map'));
      entry.sparse = extents;
      entry.dataOffset += mapBytes;
      entry.storedSize -= mapBytes;
    }
    validateSparse(entry, what);

    // Old GNU sparse data starts after its extension blocks; a pax 1.0 map is part of the data.
    const dataRegion = header.oldGnuSparse ? entry.dataOffset : dataStart;
    pos = dataRegion + padded(hasData(type, header) ? header.size : 0);

    const path = normalizePath(entry.path);
    if (entry.path.includes('\0') || (entry.linkname ?? '').includes('\0')) {
      // Only pax records can carry a NUL in a name. No system call can name such a file: the
      // mount would show it cut at the NUL (aliasing another name) and extract would refuse it.
      warnings.push(`${what}: skipped ${JSON.stringify(entry.path)}: a NUL byte in its ${entry.path.includes('\0') ? 'name' : 'link target'}`);
    } else if (path === null) {
      warnings.push(`${what}: skipped ${JSON.stringify(entry.path)}: path leaves the root`);
    } else if (path === '' && type !== EntryType.Directory) {
      warnings.push(`${what}: skipped a ${EntryType[type]} entry named as the root`);
    } else if (type === EntryType.HardLink && normalizePath(entry.linkname ?? '') === null) {
      warnings.push(`${what}: skipped hard link ${printable(path)}: target ${JSON.stringify(entry.linkname)} leaves the root`);
    } else {
      entry.path = path;
      if (type === EntryType.HardLink) entry.linkname = normalizePath(entry.linkname ?? '') ?? '';
      builder.add(entry);
    }

    if (src.size !== undefined && entry.dataOffset + entry.storedSize > src.size && hasData(type, header)) {
      warnings.push(`${what}: truncated in the data of ${printable(entry.path)} (needs ${entry.dataOffset + entry.storedSize} bytes, have ${src.size})`);
      pos = src.size;
      break;
    }
  }
  return { index: builder.finish(), warnings, endOffset: pos };
}

/** Hard links, symlinks and directories carry no data even when a header claims a size. */
function hasData(type: EntryType, header: RawHeader): boolean {
  return header.size > 0 && (type === EntryType.File || header.typeflag === 'D');
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('utf8', 0, nul < 0 ? buf.length : nul);
}

/** Local records override global ones key by key (except repeated sparse keys, kept in order). */
function mergePax(base: PaxRecords, over: PaxRecords): PaxRecords {
  if (over.length === 0) return base;
  if (base.length === 0) return over;
  const overKeys = new Set(over.map(([k]) => k));
  return [...base.filter(([k]) => !overKeys.has(k)), ...over];
}

function paxString(pax: PaxRecords, key: string): string | undefined {
  for (let i = pax.length - 1; i >= 0; i--) if (pax[i][0] === key) return pax[i][1].toString('utf8');
  return undefined;
}

function paxNumber(pax: PaxRecords, key: string): number | undefined {
  const s = paxString(pax, key);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new Error(`invalid pax ${key}=${JSON.stringify(s)}`);
  return n;
}

/**
 * Sizes and ids must be whole, non-negative and exact in a double: a pax `size=-5` would
 * otherwise make a file of negative length (shown as 16 EiB through FUSE) and `size=1.5` would
 * put the next header off the block grid.
 */
function paxCount(pax: PaxRecords, key: string): number | undefined {
  const n = paxNumber(pax, key);
  if (n !== undefined && !(Number.isSafeInteger(n) && n >= 0)) throw new Error(`invalid pax ${key}=${JSON.stringify(paxString(pax, key))}`);
  return n;
}

function applyExtensions(h: RawHeader, type: EntryType, pax: PaxRecords, ext: Pending, dataStart: number): TarEntry {
  const size = paxCount(pax, 'size') ?? h.size;
  const entry: TarEntry = {
    path: paxString(pax, 'GNU.sparse.name') ?? paxString(pax, 'path') ?? ext.longName ?? h.name,
    type,
    mode: h.mode,
    uid: paxCount(pax, 'uid') ?? h.uid,
    gid: paxCount(pax, 'gid') ?? h.gid,
    size: type === EntryType.File ? size : 0,
    mtime: paxNumber(pax, 'mtime') ?? h.mtime,
    dataOffset: dataStart,
    storedSize: type === EntryType.File ? size : 0,
  };
  h.size = size;
  const linkname = paxString(pax, 'linkpath') ?? ext.longLink ?? h.linkname;
  if (type === EntryType.Symlink || type === EntryType.HardLink) entry.linkname = linkname;
  if (type === EntryType.CharDevice || type === EntryType.BlockDevice) {
    entry.devmajor = h.devmajor;
    entry.devminor = h.devminor;
  }
  const uname = paxString(pax, 'uname') ?? h.uname;
  const gname = paxString(pax, 'gname') ?? h.gname;
  if (uname) entry.uname = uname;
  if (gname) entry.gname = gname;
  for (const [key, value] of pax) {
    if (key.startsWith('SCHILY.xattr.')) (entry.xattrs ??= {})[key.slice(13)] = Buffer.from(value);
  }
  // GNU sparse 0.0 and 0.1 describe the map in pax records; 1.0 puts it in the data (read later).
  const realSize = paxCount(pax, 'GNU.sparse.realsize') ?? paxCount(pax, 'GNU.sparse.size');
  const map01 = paxString(pax, 'GNU.sparse.map');
  const offsets00 = pax.filter(([k]) => k === 'GNU.sparse.offset').map(([, v]) => Number(v.toString()));
  const lengths00 = pax.filter(([k]) => k === 'GNU.sparse.numbytes').map(([, v]) => Number(v.toString()));
  if (map01 !== undefined) {
    const nums = map01 === '' ? [] : map01.split(',').map(Number);
    entry.sparse = [];
    for (let i = 0; i + 1 < nums.length; i += 2) entry.sparse.push({ offset: nums[i], length: nums[i + 1] });
  } else if (offsets00.length) {
    entry.sparse = offsets00.map((offset, i) => ({ offset, length: lengths00[i] }));
  }
  if (realSize !== undefined && type === EntryType.File) entry.size = realSize;
  return entry;
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
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new Error(`${what}: invalid sparse size for ${printable(entry.path)}`);
  let stored = 0;
  for (const x of entry.sparse) {
    if (!Number.isSafeInteger(x.offset) || !Number.isSafeInteger(x.length) || x.offset < 0 || x.length < 0 || x.offset + x.length > entry.size) {
      throw new Error(`${what}: invalid sparse map for ${printable(entry.path)}`);
    }
    stored += x.length;
  }
  if (stored > entry.storedSize) throw new Error(`${what}: sparse map of ${printable(entry.path)} needs more data than stored`);
}
