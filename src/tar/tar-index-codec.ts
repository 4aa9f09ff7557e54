import { TarIndex, type EntryExtras } from './tar-index';

/*
 * A TarIndex as byte sections, for the on-disk cache: a head (counts, then the rare extras as
 * JSON), the path bytes, and each column as it sits in memory (typed arrays, little-endian on
 * every machine this runs on), one section each. Stored as the columns' own buffers (nothing is
 * copied or joined to write it) and, when the cache hands each section back in a buffer of its
 * own (IndexCache.get does), taken back as views of those buffers: loading an index of millions
 * of entries allocates it once, never a file-sized buffer beside a copy. A column in a shared
 * or unaligned buffer (a whole file read at once) is copied instead.
 */

// 2: byte-string paths, signed whole-second mtimes with a nanosecond column.
// 3: the paths' count of '/' in the header (a mount's inode plan needs it).
// 4: one section per column (was: one section for the whole index).
const MAGIC = 'OCIMTIX4';

type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;
type ColumnType = { new (n: number): Column; new (buffer: ArrayBufferLike, byteOffset: number, length: number): Column; BYTES_PER_ELEMENT: number };

/** The columns in their stored order, with their element types. */
const COLUMNS: Array<[ColumnType, (count: number) => number]> = [
  [Uint32Array, (n) => n + 1], // pathStart
  [Uint8Array, (n) => n], // types
  [Uint16Array, (n) => n], // modes
  [Uint32Array, (n) => n], // uids
  [Uint32Array, (n) => n], // gids
  [Float64Array, (n) => n], // sizes
  [Float64Array, (n) => n], // mtimes
  [Uint32Array, (n) => n], // mtimeNsecs
  [Float64Array, (n) => n], // dataOffsets
];

/** How many cache sections a tar index takes: the head, the path bytes and the columns. */
export const TAR_INDEX_SECTIONS = 2 + COLUMNS.length;

function columnsOf(ix: TarIndex): Column[] {
  return [ix.pathStart, ix.types, ix.modes, ix.uids, ix.gids, ix.sizes, ix.mtimes, ix.mtimeNsecs, ix.dataOffsets];
}

function extrasToJson(extras: Map<number, EntryExtras>): string {
  const rows: Array<[number, Record<string, unknown>]> = [];
  for (const [i, x] of extras) {
    const { xattrs, ...rest } = x;
    rows.push([i, xattrs ? { ...rest, xattrs: Object.fromEntries(Object.entries(xattrs).map(([k, v]) => [k, v.toString('base64')])) } : rest]);
  }
  return JSON.stringify(rows);
}

function extrasFromJson(json: string): Map<number, EntryExtras> {
  const rows = JSON.parse(json) as Array<[number, EntryExtras & { xattrs?: Record<string, string> }]>;
  return new Map(
    rows.map(([i, x]) => [
      i,
      x.xattrs ? { ...x, xattrs: Object.fromEntries(Object.entries(x.xattrs).map(([k, v]) => [k, Buffer.from(v, 'base64')])) } : (x as EntryExtras),
    ]),
  );
}

const bytesOf = (c: Column): Buffer => Buffer.from(c.buffer, c.byteOffset, c.byteLength);

/** The index as TAR_INDEX_SECTIONS sections; all but the head are views of the index's own memory. */
export function tarIndexSections(ix: TarIndex): Buffer[] {
  const extras = Buffer.from(extrasToJson(ix.extras));
  const head = Buffer.alloc(24 + extras.length);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(ix.count, 8);
  head.writeUInt32LE(ix.pathPool.length, 12);
  head.writeUInt32LE(extras.length, 16);
  head.writeUInt32LE(ix.slashCount(), 20);
  extras.copy(head, 24);
  return [head, ix.pathPool, ...columnsOf(ix).map(bytesOf)];
}

/** The sections as one buffer (tests compare indexes with it). */
export function encodeTarIndex(ix: TarIndex): Buffer {
  return Buffer.concat(tarIndexSections(ix));
}

/** Whether `b` is all of its own buffer (so aligned for any column): then a view of it holds nothing else. */
function ownsBuffer(b: Buffer): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
}

/** A column over `bytes`: a view when `bytes` owns its buffer, else a copy. */
function column(Ctor: ColumnType, bytes: Buffer, n: number): Column {
  if (bytes.length !== n * Ctor.BYTES_PER_ELEMENT) throw new Error('tar index column has the wrong length');
  if (ownsBuffer(bytes)) return new Ctor(bytes.buffer, 0, n);
  const out = new Ctor(n);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** The path bytes and their start column, checked against the head (see tarIndexSections). */
export function tarIndexPaths(sections: readonly Buffer[]): { pool: Buffer; pathStart: Uint32Array } {
  const { count, poolLen } = readHead(sections);
  const pool = ownsBuffer(sections[1]) ? sections[1] : Buffer.from(sections[1]);
  if (pool.length !== poolLen) throw new Error('tar index path bytes have the wrong length');
  const pathStart = column(Uint32Array, sections[2], count + 1) as Uint32Array;
  if (pathStart[count] !== poolLen) throw new Error('tar index path table is inconsistent');
  return { pool, pathStart };
}

function readHead(sections: readonly Buffer[]): { count: number; poolLen: number; extrasLen: number; slashes: number } {
  const head = sections[0];
  if (sections.length < TAR_INDEX_SECTIONS || !head || head.length < 24 || head.toString('latin1', 0, 8) !== MAGIC) throw new Error('not a tar index');
  const out = { count: head.readUInt32LE(8), poolLen: head.readUInt32LE(12), extrasLen: head.readUInt32LE(16), slashes: head.readUInt32LE(20) };
  if (head.length !== 24 + out.extrasLen) throw new Error('tar index head has the wrong length');
  return out;
}

/** The index in the first TAR_INDEX_SECTIONS of `sections`; throws when they cannot be one. */
export function tarIndexFromSections(sections: readonly Buffer[]): TarIndex {
  const { count, poolLen, slashes } = readHead(sections);
  const { pool, pathStart } = tarIndexPaths(sections);
  const cols = COLUMNS.slice(1).map(([Ctor, n], i) => column(Ctor, sections[3 + i], n(count)));
  // An upper bound only (inode ranges): a damaged count could at worst overlap ranges, so it is
  // held to what the pool can have.
  if (slashes > poolLen) throw new Error('tar index slash count is inconsistent');
  return indexOf(count, pool, [pathStart, ...cols], extrasFromJson(sections[0].toString('utf8', 24)), slashes);
}

/** A TarIndex over `columns` in COLUMNS' order, already checked against `count`. */
function indexOf(count: number, pool: Buffer, columns: Column[], extras: Map<number, EntryExtras>, slashes: number): TarIndex {
  const [pathStart, types, modes, uids, gids, sizes, mtimes, mtimeNsecs, dataOffsets] = columns;
  const ix = new TarIndex(
    count,
    pool,
    pathStart as Uint32Array,
    types as Uint8Array,
    modes as Uint16Array,
    uids as Uint32Array,
    gids as Uint32Array,
    sizes as Float64Array,
    mtimes as Float64Array,
    mtimeNsecs as Uint32Array,
    dataOffsets as Float64Array,
    extras,
  );
  ix.knownSlashCount(slashes);
  return ix;
}

/**
 * A TarIndex as its own buffers, for another thread: posted with `transfer`, the columns move
 * without a copy on either side (the encoded form would be one copy to encode and one to decode,
 * each as large as the index: 200 MB apiece for 2 million entries, all alive at once).
 */
export interface MovableTarIndex {
  count: number;
  pool: Uint8Array;
  columns: Column[];
  extras: string;
  slashes: number;
}

/** A view that owns its whole buffer, so that moving the buffer moves nothing else. */
function owned<T extends Column>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

export function toMovable(ix: TarIndex): { movable: MovableTarIndex; transfer: ArrayBuffer[] } {
  const pool = owned(new Uint8Array(ix.pathPool.buffer, ix.pathPool.byteOffset, ix.pathPool.byteLength));
  const columns = columnsOf(ix).map(owned);
  const transfer = [...new Set([pool, ...columns].map((a) => a.buffer as ArrayBuffer))];
  return { movable: { count: ix.count, pool, columns, extras: extrasToJson(ix.extras), slashes: ix.slashCount() }, transfer };
}

export function fromMovable(m: MovableTarIndex): TarIndex {
  const wrong = m.columns.length !== COLUMNS.length || COLUMNS.some(([Ctor, n], i) => !(m.columns[i] instanceof Ctor) || m.columns[i].length !== n(m.count));
  if (wrong) throw new Error('moved tar index has the wrong columns');
  const pool = Buffer.from(m.pool.buffer, m.pool.byteOffset, m.pool.byteLength);
  if ((m.columns[0] as Uint32Array)[m.count] !== pool.length) throw new Error('moved tar index path table is inconsistent');
  return indexOf(m.count, pool, m.columns, extrasFromJson(m.extras), m.slashes);
}
