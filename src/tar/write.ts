import { EntryType, typeflagOf } from './entry';
import { BLOCK } from './header';
import { encodeXattrName, formatPaxTime, paxRecord, type ExactTime } from './pax';

/*
 * Writing tar headers, for `export`. By hand rather than with tar-stream's pack because an image
 * holds what tar-stream writes as text: names that are bytes (not UTF-8), binary xattr values
 * (security.capability) and times before 1970 or to the nanosecond. Values a ustar header cannot
 * hold go into a pax header before the member, as GNU tar's posix format and Go do.
 */

export interface TarWriteEntry {
  /** Byte string; a directory's ends in `/`. */
  name: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow (regular files only). */
  size: number;
  mtime: ExactTime;
  /** Byte string: a symlink's target or a hard link's first path. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Names are byte strings. */
  xattrs?: Record<string, Buffer>;
}

/** Whether `n` fits a `width`-byte octal field (width-1 digits and a NUL). */
function fitsOctal(n: number, width: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n < 8 ** (width - 1);
}

function putOctal(block: Buffer, n: number, offset: number, width: number): void {
  block.write(`${n.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
}

function putString(block: Buffer, s: string, offset: number, width: number): void {
  block.write(s.slice(0, width), offset, width, 'latin1');
}

function ustarHeader(f: { name: string; typeflag: string; mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; devmajor: number; devminor: number }): Buffer {
  const block = Buffer.alloc(BLOCK);
  putString(block, f.name, 0, 100);
  putOctal(block, f.mode & 0o7777, 100, 8);
  putOctal(block, f.uid, 108, 8);
  putOctal(block, f.gid, 116, 8);
  putOctal(block, f.size, 124, 12);
  putOctal(block, f.mtime, 136, 12);
  block.fill(0x20, 148, 156);
  block.write(f.typeflag, 156, 1, 'latin1');
  putString(block, f.linkname, 157, 100);
  block.write('ustar\x0000', 257, 8, 'latin1');
  putOctal(block, f.devmajor, 329, 8);
  putOctal(block, f.devminor, 337, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i];
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** The header blocks of one member: a pax header first when needed, then the ustar header. */
export function encodeEntry(e: TarWriteEntry): Buffer {
  const records: Buffer[] = [];
  const ascii = (s: string) => s.length <= 100;
  const linkname = e.linkname ?? '';
  if (!ascii(e.name)) records.push(paxRecord('path', Buffer.from(e.name, 'latin1')));
  if (!ascii(linkname)) records.push(paxRecord('linkpath', Buffer.from(linkname, 'latin1')));
  if (!fitsOctal(e.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if (!fitsOctal(e.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  if (!fitsOctal(e.size, 12)) records.push(paxRecord('size', Buffer.from(String(e.size))));
  if (e.mtime.nsec !== 0 || !fitsOctal(e.mtime.sec, 12)) records.push(paxRecord('mtime', Buffer.from(formatPaxTime(e.mtime))));
  for (const [name, value] of Object.entries(e.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${encodeXattrName(name)}`, value));
  const header = ustarHeader({
    name: e.name.slice(0, 100),
    typeflag: typeflagOf(e.type),
    mode: e.mode,
    uid: fitsOctal(e.uid, 8) ? e.uid : 0,
    gid: fitsOctal(e.gid, 8) ? e.gid : 0,
    size: fitsOctal(e.size, 12) ? e.size : 0,
    mtime: fitsOctal(e.mtime.sec, 12) ? e.mtime.sec : 0,
    linkname: linkname.slice(0, 100),
    devmajor: fitsOctal(e.devmajor ?? 0, 8) ? e.devmajor ?? 0 : 0,
    devminor: fitsOctal(e.devminor ?? 0, 8) ? e.devminor ?? 0 : 0,
  });
  if (records.length === 0) return header;
  const body = Buffer.concat(records);
  const base = e.name.replace(/\/$/, '').split('/').pop() ?? '';
  const paxName = `PaxHeaders.0/${/^[\x20-\x7e]{1,80}$/.test(base) ? base : 'entry'}`;
  const pax = ustarHeader({ name: paxName, typeflag: 'x', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, linkname: '', devmajor: 0, devminor: 0 });
  return Buffer.concat([pax, body, padding(body.length), header]);
}

/** Two zero blocks: the end of an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
