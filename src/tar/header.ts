import * as path from 'node:path';
import type { SparseExtent } from './entry';

/*
 * tar-stream decodes the fixed ustar/GNU header fields (octal and base-256 numbers, the ustar
 * prefix, the checksum). Its package exports only the stream API, so its header module is
 * loaded by file; pax records and GNU sparse maps are decoded here because tar-stream turns pax
 * values into UTF-8 strings (xattrs are binary) and does not know sparse files.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tarStreamHeaders: {
  decode(buf: Buffer, filenameEncoding: string, allowUnknownFormat: boolean): TarStreamHeader | null;
} = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js'));

interface TarStreamHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string | null;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export const BLOCK = 512;

/** The header of one 512-byte block, typeflag kept as the raw character. */
export interface RawHeader {
  typeflag: string;
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** Old GNU sparse ('S') only: the map in the header and whether extension blocks follow. */
  oldGnuSparse?: { extents: SparseExtent[]; extended: boolean; realSize: number };
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decodes one header block; throws on a bad checksum or an unreadable number field. */
export function decodeHeader(block: Buffer): RawHeader {
  let h: TarStreamHeader | null;
  try {
    h = tarStreamHeaders.decode(block, 'utf-8', true);
  } catch (err) {
    // tar-stream's only words for a bad checksum guess that the file is gzipped; in the middle of
    // a tar it is damage, so say what failed.
    if (!/Invalid tar header\. Maybe/.test((err as Error).message)) throw err;
    let sum = 8 * 0x20;
    for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i];
    const stored = block.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').replace(/\0/g, '\\0');
    throw new Error(`checksum mismatch (the header says ${JSON.stringify(stored)}, its bytes sum to ${sum.toString(8)} octal)`);
  }
  if (!h) throw new Error('unexpected zero block');
  const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156]);
  const mtime = h.mtime.getTime() / 1000;
  for (const [field, value] of [['size', h.size], ['mode', h.mode], ['uid', h.uid], ['gid', h.gid], ['mtime', mtime]] as const) {
    // A base-256 size can exceed 2^53; past that, offsets computed from it are no longer exact.
    if (!Number.isFinite(value) || (field === 'size' && !(Number.isSafeInteger(value) && value >= 0))) throw new Error(`invalid ${field} field`);
  }
  const raw: RawHeader = {
    typeflag,
    name: h.name,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size: h.size,
    mtime,
    linkname: h.linkname ?? '',
    uname: h.uname,
    gname: h.gname,
    devmajor: h.devmajor || 0,
    devminor: h.devminor || 0,
  };
  // A trailing slash on a plain-file entry is how pre-ustar tars marked directories.
  if (typeflag === '0' && raw.name.endsWith('/')) raw.typeflag = '5';
  if (typeflag === 'S') raw.oldGnuSparse = decodeOldGnuSparse(block);
  return raw;
}

function decodeNumber(buf: Buffer, offset: number, length: number): number {
  const field = buf.subarray(offset, offset + length);
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  const n = parseInt(text, 8);
  if (!Number.isFinite(n)) throw new Error('invalid number in sparse map');
  return n;
}

function readSparsePairs(buf: Buffer, offset: number, count: number): SparseExtent[] {
  const out: SparseExtent[] = [];
  for (let i = 0; i < count; i++) {
    const at = offset + i * 24;
    if (buf[at] === 0) break;
    out.push({ offset: decodeNumber(buf, at, 12), length: decodeNumber(buf, at + 12, 12) });
  }
  return out;
}

/** Old GNU sparse header: 4 (offset, numbytes) pairs at 386, isextended at 482, realsize at 483. */
function decodeOldGnuSparse(block: Buffer): RawHeader['oldGnuSparse'] {
  return { extents: readSparsePairs(block, 386, 4), extended: block[482] !== 0, realSize: decodeNumber(block, 483, 12) };
}

/** A GNU sparse extension block: 21 pairs then isextended at 504. */
export function decodeOldGnuSparseExtension(block: Buffer): { extents: SparseExtent[]; extended: boolean } {
  return { extents: readSparsePairs(block, 0, 21), extended: block[504] !== 0 };
}

/**
 * pax extended header records, `"%d %s=%s\n"`. Values stay bytes: `SCHILY.xattr.*` are binary,
 * and GNU sparse 0.0 repeats its keys, so every occurrence is kept in order.
 */
export type PaxRecords = Array<[key: string, value: Buffer]>;

export function parsePax(buf: Buffer): PaxRecords {
  const records: PaxRecords = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // NUL padding after the last record
    const space = buf.indexOf(0x20, pos);
    if (space < 0) throw new Error('invalid pax record (no length)');
    const len = parseInt(buf.toString('latin1', pos, space), 10);
    if (!Number.isInteger(len) || len <= space - pos || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) {
      throw new Error(`invalid pax record at byte ${pos}`);
    }
    const eq = buf.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= pos + len) throw new Error(`invalid pax record at byte ${pos} (no '=')`);
    records.push([buf.toString('utf8', space + 1, eq), buf.subarray(eq + 1, pos + len - 1)]);
    pos += len;
  }
  return records;
}
