import { TarIndex, type EntryExtras } from './tar-index';

/*
 * A TarIndex as bytes, for the on-disk cache: the columns are written as they sit in memory
 * (typed arrays, little-endian on every machine this runs on), the rare extras as JSON. Loading
 * is a few copies, no per-entry parsing.
 */

// 2: byte-string paths, signed whole-second mtimes with a nanosecond column.
// 3: the paths' count of '/' in the header (a mount's inode plan needs it).
const MAGIC = 'OCIMTIX3';

type Column = Uint8Array | Uint16Array | Uint32Array | Float64Array;

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

export function encodeTarIndex(ix: TarIndex): Buffer {
  const extras = Buffer.from(extrasToJson(ix.extras));
  const cols = columnsOf(ix).map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  const head = Buffer.alloc(8 + 4 + 4 + 4 + 4);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(ix.count, 8);
  head.writeUInt32LE(ix.pathPool.length, 12);
  head.writeUInt32LE(extras.length, 16);
  head.writeUInt32LE(ix.slashCount(), 20);
  return Buffer.concat([head, ix.pathPool, extras, ...cols]);
}

export function decodeTarIndex(buf: Buffer): TarIndex {
  if (buf.length < 24 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error('not a tar index');
  const count = buf.readUInt32LE(8);
  const poolLen = buf.readUInt32LE(12);
  const extrasLen = buf.readUInt32LE(16);
  const slashes = buf.readUInt32LE(20);
  let at = 24;
  const take = (n: number): Buffer => {
    if (at + n > buf.length) throw new Error('tar index truncated');
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  // Copy into fresh, aligned buffers: a view into `buf` may sit at an odd offset.
  const col = <T extends Column>(Ctor: { new (n: number): T; BYTES_PER_ELEMENT: number }, n: number): T => {
    const out = new Ctor(n);
    const src = take(n * Ctor.BYTES_PER_ELEMENT);
    new Uint8Array(out.buffer).set(src);
    return out;
  };
  const pool = Buffer.from(take(poolLen));
  const extras = extrasFromJson(take(extrasLen).toString('utf8'));
  const ix = new TarIndex(
    count,
    pool,
    col(Uint32Array, count + 1),
    col(Uint8Array, count),
    col(Uint16Array, count),
    col(Uint32Array, count),
    col(Uint32Array, count),
    col(Float64Array, count),
    col(Float64Array, count),
    col(Uint32Array, count),
    col(Float64Array, count),
    extras,
  );
  if (at !== buf.length) throw new Error('tar index has trailing bytes');
  if (ix.pathStart[count] !== poolLen) throw new Error('tar index path table is inconsistent');
  // An upper bound only (inode ranges): a damaged count could at worst overlap ranges, so it is
  // held to what the pool can have.
  if (slashes > poolLen) throw new Error('tar index slash count is inconsistent');
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
  const [pathStart, types, modes, uids, gids, sizes, mtimes, mtimeNsecs, dataOffsets] = m.columns;
  const kinds: Array<[Column, new (n: number) => Column, number]> = [
    [pathStart, Uint32Array, m.count + 1],
    [types, Uint8Array, m.count],
    [modes, Uint16Array, m.count],
    [uids, Uint32Array, m.count],
    [gids, Uint32Array, m.count],
    [sizes, Float64Array, m.count],
    [mtimes, Float64Array, m.count],
    [mtimeNsecs, Uint32Array, m.count],
    [dataOffsets, Float64Array, m.count],
  ];
  if (m.columns.length !== kinds.length || kinds.some(([c, Ctor, n]) => !(c instanceof Ctor) || c.length !== n)) throw new Error('moved tar index has the wrong columns');
  const pool = Buffer.from(m.pool.buffer, m.pool.byteOffset, m.pool.byteLength);
  if ((pathStart as Uint32Array)[m.count] !== pool.length) throw new Error('moved tar index path table is inconsistent');
  const ix = new TarIndex(
    m.count,
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
    extrasFromJson(m.extras),
  );
  ix.knownSlashCount(m.slashes);
  return ix;
}
