// Hand-crafted tar blocks for things tar-stream's pack() cannot write: GNU long name/link
// entries, binary pax values, global pax headers, base-256 numbers, sparse files, mode 0,
// names written verbatim. Every function returns whole 512-byte blocks so parts can be
// concatenated freely with concatTar().

export const BLOCK = 512;

export type NumericField = 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor';

export interface HeaderFields {
  name: string | Buffer;          // bytes of the 100-byte name field (truncated if longer)
  typeflag?: string;              // one character: '0' '1' '2' '3' '4' '5' '6' '7' 'x' 'g' 'L' 'K' 'S'; default '0'
  mode?: number;                  // default 0o644
  uid?: number;
  gid?: number;
  size?: number;                  // value of the size field (not necessarily the data written after)
  mtime?: number | Date;          // seconds since epoch, or a Date; default 0
  linkname?: string | Buffer;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  prefix?: string | Buffer;       // ustar prefix (155 bytes); ignored for the 'gnu' format
  format?: 'ustar' | 'gnu';       // magic "ustar\0" "00" (POSIX) or "ustar  \0" (GNU / old GNU); default 'ustar'
  base256?: NumericField[];       // force base-256 for these fields even when octal would fit
  /** Writes extra bytes into the header before the checksum (e.g. an old GNU sparse map). */
  extra?: (block: Buffer) => void;
}

// Offsets and widths of the numeric fields (POSIX ustar; identical in GNU headers).
const NUMERIC: Record<NumericField, [number, number]> = {
  mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12],
  devmajor: [329, 8], devminor: [337, 8],
};

const bytes = (v: string | Buffer): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

function writeBytes(block: Buffer, value: string | Buffer | undefined, offset: number, width: number): void {
  if (value === undefined) return;
  bytes(value).copy(block, offset, 0, width);
}

/**
 * Octal digits + NUL when they fit, otherwise (or when forced) GNU base-256: big-endian two's
 * complement with the high bit of the first byte set (0x80 for positive, 0xff for negative).
 */
export function writeNumber(block: Buffer, value: number, offset: number, width: number, forceBase256 = false): void {
  const octal = Math.trunc(value).toString(8);
  if (!forceBase256 && value >= 0 && octal.length <= width - 1) {
    block.write(octal.padStart(width - 1, '0') + '\0', offset, 'latin1');
    return;
  }
  const bits = BigInt(8 * width - 1);
  let v = BigInt(Math.trunc(value));
  if (v >= 1n << bits || v < -(1n << bits)) throw new Error(`${value} does not fit in ${width} bytes`);
  if (v < 0n) v += 1n << BigInt(8 * width);
  for (let i = width - 1; i >= 0; i--) {
    block[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] |= 0x80;
}

/** Sum of all header bytes with the checksum field counted as eight spaces. */
export function checksum(block: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i];
  return sum;
}

/** One 512-byte header with a correct checksum. */
export function header(f: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  const force = new Set(f.base256 ?? []);
  const mtime = f.mtime instanceof Date ? Math.floor(f.mtime.getTime() / 1000) : f.mtime ?? 0;
  const numbers: Record<NumericField, number> = {
    mode: f.mode ?? 0o644, uid: f.uid ?? 0, gid: f.gid ?? 0, size: f.size ?? 0, mtime,
    devmajor: f.devmajor ?? 0, devminor: f.devminor ?? 0,
  };
  writeBytes(block, f.name, 0, 100);
  for (const key of Object.keys(NUMERIC) as NumericField[]) {
    const [off, width] = NUMERIC[key];
    writeNumber(block, numbers[key], off, width, force.has(key));
  }
  block.write((f.typeflag ?? '0').slice(0, 1), 156, 'latin1');
  writeBytes(block, f.linkname, 157, 100);
  if (f.format === 'gnu') {
    block.write('ustar  \0', 257, 'latin1');
  } else {
    block.write('ustar\0' + '00', 257, 'latin1');
    writeBytes(block, f.prefix, 345, 155);
  }
  writeBytes(block, f.uname, 265, 32);
  writeBytes(block, f.gname, 297, 32);
  f.extra?.(block);
  // GNU tar writes the checksum as six octal digits, NUL, space.
  block.write(checksum(block).toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return block;
}

/** Data padded with zeros to a whole number of blocks. */
export function pad(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

/** A header (size taken from data unless given) followed by its padded data. */
export function entry(f: HeaderFields, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([header({ size: data.length, ...f }), pad(data)]);
}

/** GNU `L` (long name) or `K` (long link name) entry; it applies to the next header. */
export function gnuLong(kind: 'L' | 'K', value: string | Buffer): Buffer {
  const data = Buffer.concat([bytes(value), Buffer.from([0])]);
  return entry({ name: '././@LongLink', typeflag: kind, mode: 0, format: 'gnu' }, data);
}

export type PaxRecord = [key: string, value: string | Buffer];

/**
 * Encodes pax records as "<len> <key>=<value>\n" with byte-exact lengths, so binary values
 * (xattrs) survive. The length counts its own digits, hence the fix-up loop.
 */
export function paxRecords(records: PaxRecord[]): Buffer {
  return Buffer.concat(records.map(([key, value]) => {
    const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), bytes(value), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    return Buffer.concat([Buffer.from(String(len)), body]);
  }));
}

/** A pax extended header `x` (next entry) or global header `g` (all following entries). */
export function paxHeader(records: PaxRecord[], opts: { global?: boolean; name?: string; mtime?: number } = {}): Buffer {
  const typeflag = opts.global ? 'g' : 'x';
  const name = opts.name ?? (opts.global ? 'pax_global_header' : 'PaxHeaders/entry');
  return entry({ name, typeflag, mode: 0o644, mtime: opts.mtime ?? 0 }, paxRecords(records));
}

/** A sparse file's stored chunks; everything between them (and after the last) is a hole of zeros. */
export interface SparseChunk { offset: number; data: Buffer }

/** The full logical content of a sparse file, for comparing with what tar extracts. */
export function sparseContent(realSize: number, chunks: SparseChunk[]): Buffer {
  const out = Buffer.alloc(realSize);
  for (const c of chunks) c.data.copy(out, c.offset);
  return out;
}

/**
 * GNU tar reads each stored chunk starting at a block boundary, while Go's archive/tar reads
 * them back to back; the two agree only when every chunk but the last fills whole blocks (as
 * GNU tar itself writes them). So short chunks are padded with zeros, which must fall in a hole.
 */
function blockAlignedChunks(given: SparseChunk[], realSize: number): SparseChunk[] {
  // A trailing hole is declared GNU-style with an empty chunk at realsize; without it GNU tar
  // stops the file after the last stored byte.
  const last = given[given.length - 1];
  const trailingHole = !last || last.offset + last.data.length < realSize;
  const chunks = trailingHole ? [...given, { offset: realSize, data: Buffer.alloc(0) }] : given;
  return chunks.map((c, i) => {
    if (i === chunks.length - 1) return c;
    const padded = pad(c.data);
    if (c.offset + padded.length > chunks[i + 1].offset) {
      throw new Error(`sparse chunk at ${c.offset} needs ${padded.length} bytes before the next chunk`);
    }
    return { offset: c.offset, data: padded };
  });
}

/**
 * Old GNU sparse entry (typeflag `S`): the map of (offset, numbytes) lives in the header at
 * byte 386 (4 slots), with 21-slot extension blocks after the header when there are more;
 * `size` is the stored byte count, `realsize` (byte 483) the logical size.
 */
export function oldGnuSparse(name: string, realSize: number, given: SparseChunk[], fields: Partial<HeaderFields> = {}): Buffer {
  const chunks = blockAlignedChunks(given, realSize);
  const map = chunks.map((c) => [c.offset, c.data.length]);
  const writeSlots = (block: Buffer, start: number, slots: number[][]): void => {
    slots.forEach(([off, len], i) => {
      writeNumber(block, off, start + i * 24, 12);
      writeNumber(block, len, start + i * 24 + 12, 12);
    });
  };
  const inHeader = map.slice(0, 4);
  const rest = map.slice(4);
  const extensions: Buffer[] = [];
  for (let i = 0; i < rest.length; i += 21) {
    const ext = Buffer.alloc(BLOCK);
    writeSlots(ext, 0, rest.slice(i, i + 21));
    ext[504] = i + 21 < rest.length ? 1 : 0; // isextended: another extension block follows
    extensions.push(ext);
  }
  const data = Buffer.concat(chunks.map((c) => c.data));
  const head = header({
    ...fields, name, typeflag: 'S', format: 'gnu', size: data.length,
    extra: (block) => {
      writeSlots(block, 386, inHeader);
      block[482] = extensions.length > 0 ? 1 : 0;
      writeNumber(block, realSize, 483, 12);
    },
  });
  return Buffer.concat([head, ...extensions, pad(data)]);
}

/**
 * PAX sparse format 1.0: pax records GNU.sparse.{major=1,minor=0,name,realsize}; the ustar
 * header carries a placeholder name and its data starts with the map as decimal lines
 * (count, then offset/size pairs), padded to a block, followed by the stored chunks.
 */
export function paxSparse10(name: string, realSize: number, given: SparseChunk[], fields: Partial<HeaderFields> = {}): Buffer {
  const chunks = blockAlignedChunks(given, realSize);
  const lines = [chunks.length, ...chunks.flatMap((c) => [c.offset, c.data.length])];
  const map = pad(Buffer.from(lines.map((n) => `${n}\n`).join(''), 'latin1'));
  const data = Buffer.concat([map, ...chunks.map((c) => c.data)]);
  const base = name.split('/').pop() ?? name;
  const pax = paxHeader([
    ['GNU.sparse.major', '1'],
    ['GNU.sparse.minor', '0'],
    ['GNU.sparse.name', name],
    ['GNU.sparse.realsize', String(realSize)],
  ]);
  return Buffer.concat([pax, entry({ ...fields, name: `GNUSparseFile.0/${base}`, typeflag: '0' }, data)]);
}

/** Two zero blocks: the end-of-archive marker. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

/** Joins block-aligned parts and (unless end: false) appends the end-of-archive marker. */
export function concatTar(parts: Buffer[], opts: { end?: boolean } = {}): Buffer {
  for (const p of parts) if (p.length % BLOCK !== 0) throw new Error(`tar part of ${p.length} bytes is not block-aligned`);
  return Buffer.concat(opts.end === false ? parts : [...parts, endOfArchive()]);
}

/** A tar held in memory as the scanner's source (ScanSource): random async reads, known size. */
export function bufferSource(buf: Buffer) {
  return {
    size: buf.length,
    read: async (out: Buffer, offset: number, length: number, position: number) => buf.copy(out, offset, position, Math.min(buf.length, position + length)),
  };
}
