import type { SparseExtent } from './entry';

/*
 * One 512-byte tar header, decoded the way Go's archive/tar decodes it, because Go's reader is
 * what Docker, BuildKit and containerd apply layers with: where tar readers disagree, an image
 * means what Go reads. This is written by hand rather than taken from tar-stream because
 * tar-stream differs from Go exactly where real layers need it: it decodes names as text (Linux
 * names are bytes), reads negative base-256 numbers one too high, ignores the base-256 sign bit
 * rule and star's prefix, and applies the old "trailing slash means directory" rule before a
 * long name is known.
 *
 * Names and other strings are "byte strings": one JavaScript char per byte (latin1), so every
 * byte round-trips; see src/names.ts.
 */

export const BLOCK = 512;

/** The header of one 512-byte block, typeflag kept as the raw character ('\0' for NUL). */
export interface RawHeader {
  typeflag: string;
  /** Byte string, with the ustar/star prefix joined. */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds, signed. */
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

/** A NUL-terminated field as a byte string (Go's parseString). */
function field(block: Buffer, offset: number, length: number): string {
  let end = offset;
  const stop = offset + length;
  while (end < stop && block[end] !== 0) end++;
  return block.toString('latin1', offset, end);
}

/**
 * Go's parseNumeric: base-256 when the first byte has its high bit set (two's complement, the
 * sign in bit 6 of the first byte), else octal with leading and trailing spaces and NULs trimmed
 * and the text cut at the first NUL. Throws on anything Go would call ErrHeader.
 */
export function parseNumeric(b: Buffer): number {
  return numericIn(b, 0, b.length);
}

/** parseNumeric of bytes start..end of `b`, without making a view of them (the scan's hot path). */
function numericIn(b: Buffer, start: number, end: number): number {
  if (end > start && b[start] & 0x80) {
    const inv = b[start] & 0x40 ? 0xff : 0;
    let x = 0n;
    for (let i = start; i < end; i++) {
      let c = b[i] ^ inv;
      if (i === start) c &= 0x7f;
      if (x >> 56n > 0n) throw new Error('base-256 number overflows 64 bits');
      x = (x << 8n) | BigInt(c);
    }
    if (x >> 63n > 0n) throw new Error('base-256 number overflows 64 bits');
    // -a-1 == ^a: inverting the bytes of a negative number gives its magnitude minus one.
    const n = inv ? -x - 1n : x;
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error('number too large');
    return Number(n);
  }
  return octalIn(b, start, end);
}

export function parseOctal(b: Buffer): number {
  return octalIn(b, 0, b.length);
}

/** Octal digits read byte by byte: no string per field, which was most of a header's cost. */
function octalIn(b: Buffer, from: number, to: number): number {
  let start = from;
  let end = to;
  while (start < end && (b[start] === 0x20 || b[start] === 0)) start++;
  while (end > start && (b[end - 1] === 0x20 || b[end - 1] === 0)) end--;
  if (start === end) return 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c === 0) break; // the text ends at the first NUL
    if (c < 0x30 || c > 0x37) {
      const nul = b.indexOf(0, start);
      throw new Error(`not an octal number: ${JSON.stringify(b.toString('latin1', start, nul >= 0 && nul < end ? nul : end))}`);
    }
    n = n * 8 + (c - 0x30);
  }
  if (!Number.isSafeInteger(n)) throw new Error('number too large');
  return n;
}

function numberAt(block: Buffer, name: string, offset: number, length: number): number {
  try {
    return numericIn(block, offset, offset + length);
  } catch (err) {
    throw new Error(`invalid ${name} field (${(err as Error).message})`);
  }
}

type Format = 'v7' | 'ustar' | 'gnu' | 'star';

/** Go's getFormat, after the checksum: which fields beyond v7 the block has. */
function formatOf(block: Buffer): Format {
  // "ustar" then NUL (POSIX) or space (GNU), compared as bytes: no strings per header.
  const ustar = block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72;
  if (ustar && block[262] === 0) {
    return block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0 ? 'star' : 'ustar';
  }
  if (ustar && block[262] === 0x20 && block[263] === 0x20 && block[264] === 0) return 'gnu';
  return 'v7';
}

/** Go accepts either sum: some old writers summed the bytes as signed chars. */
function checksums(block: Buffer): [unsigned: number, signed: number] {
  // The checksum field itself counts as eight spaces. A signed sum differs from the unsigned
  // one by 256 for each byte with its high bit set, so one pass gives both.
  let unsigned = 8 * 0x20;
  let high = 0;
  for (let i = 0; i < 148; i++) {
    unsigned += block[i];
    high += block[i] >> 7;
  }
  for (let i = 156; i < BLOCK; i++) {
    unsigned += block[i];
    high += block[i] >> 7;
  }
  return [unsigned, unsigned - 256 * high];
}

/** Decodes one header block; throws on a bad checksum or an unreadable number field. */
export function decodeHeader(block: Buffer): RawHeader {
  const [unsigned, signed] = checksums(block);
  let stored: number | undefined;
  try {
    stored = octalIn(block, 148, 156);
  } catch {
    stored = undefined;
  }
  if (stored !== unsigned && stored !== signed) {
    const text = block.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').replace(/\0/g, '\\0');
    throw new Error(`checksum mismatch (the header says ${JSON.stringify(text)}, its bytes sum to ${unsigned.toString(8)} octal)`);
  }
  const format = formatOf(block);
  const typeflag = String.fromCharCode(block[156]);
  const raw: RawHeader = {
    typeflag,
    name: field(block, 0, 100),
    mode: numberAt(block, 'mode', 100, 8),
    uid: numberAt(block, 'uid', 108, 8),
    gid: numberAt(block, 'gid', 116, 8),
    size: numberAt(block, 'size', 124, 12),
    mtime: numberAt(block, 'mtime', 136, 12),
    linkname: field(block, 157, 100),
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  };
  if (raw.size < 0) throw new Error('invalid size field (negative)');
  if (format !== 'v7') {
    raw.uname = field(block, 265, 32);
    raw.gname = field(block, 297, 32);
    raw.devmajor = numberAt(block, 'devmajor', 329, 8);
    raw.devminor = numberAt(block, 'devminor', 337, 8);
    // The prefix is ustar's 155 bytes, star's 131 (its atime and ctime follow); GNU uses that
    // area for other things and has no prefix.
    const prefix = format === 'ustar' ? field(block, 345, 155) : format === 'star' ? field(block, 345, 131) : '';
    if (prefix) raw.name = `${prefix}/${raw.name}`;
  }
  if (typeflag === 'S') raw.oldGnuSparse = decodeOldGnuSparse(block);
  return raw;
}

function readSparsePairs(buf: Buffer, offset: number, count: number): SparseExtent[] {
  const out: SparseExtent[] = [];
  for (let i = 0; i < count; i++) {
    const at = offset + i * 24;
    if (buf[at] === 0) break;
    out.push({ offset: numberAt(buf, 'sparse offset', at, 12), length: numberAt(buf, 'sparse length', at + 12, 12) });
  }
  return out;
}

/** Old GNU sparse header: 4 (offset, numbytes) pairs at 386, isextended at 482, realsize at 483. */
function decodeOldGnuSparse(block: Buffer): RawHeader['oldGnuSparse'] {
  return { extents: readSparsePairs(block, 386, 4), extended: block[482] !== 0, realSize: numberAt(block, 'realsize', 483, 12) };
}

/** A GNU sparse extension block: 21 pairs then isextended at 504. */
export function decodeOldGnuSparseExtension(block: Buffer): { extents: SparseExtent[]; extended: boolean } {
  return { extents: readSparsePairs(block, 0, 21), extended: block[504] !== 0 };
}
