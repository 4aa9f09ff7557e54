import { EntryType, type SparseExtent, type TarEntry } from './entry';

/** The rarely-present parts of an entry, kept aside so common entries cost only their columns. */
export interface EntryExtras {
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
  sparse?: SparseExtent[];
  storedSize?: number;
}

/**
 * The offset index of one tar stream, stored as columns (ratarmount keeps a table; this is the
 * in-memory equivalent). An entry is a row number; paths live in one pool of their bytes. Keeping rows
 * as typed-array slots instead of objects is what holds the index near 100 bytes per entry.
 */
export class TarIndex {
  private pool: Buffer | undefined;
  private starts: Uint32Array | undefined;
  /** Set while the paths are released (releasePaths): how to get them back. */
  private reloadPaths?: () => { pool: Buffer; pathStart: Uint32Array };

  constructor(
    readonly count: number,
    pathPool: Buffer,
    pathStart: Uint32Array,
    readonly types: Uint8Array,
    readonly modes: Uint16Array,
    readonly uids: Uint32Array,
    readonly gids: Uint32Array,
    readonly sizes: Float64Array,
    /** Whole seconds, signed. */
    readonly mtimes: Float64Array,
    readonly mtimeNsecs: Uint32Array,
    readonly dataOffsets: Float64Array,
    readonly extras: Map<number, EntryExtras>,
  ) {
    this.pool = pathPool;
    this.starts = pathStart;
  }

  /** Every path's bytes back to back (loaded again first if they were released). */
  get pathPool(): Buffer {
    return this.pool ?? this.loadPaths().pool;
  }

  /** Where each path starts in pathPool; entry `count` is the pool's end. */
  get pathStart(): Uint32Array {
    return this.starts ?? this.loadPaths().starts;
  }

  /**
   * Lets go of the paths (half of the index's memory): a mount whose merged tree is built needs
   * them only for a layer's own view, which may never be opened. `reload` gives back the same
   * paths (from the index cache) when something asks for them; it throws when it cannot, and the
   * asker then fails (a layer view answers EIO). The slash count is kept.
   */
  releasePaths(reload: () => { pool: Buffer; pathStart: Uint32Array }): void {
    this.slashCount();
    this.reloadPaths = reload;
    this.pool = undefined;
    this.starts = undefined;
  }

  /** Whether the paths are in memory now. */
  get pathsLoaded(): boolean {
    return this.pool !== undefined;
  }

  private loadPaths(): { pool: Buffer; starts: Uint32Array } {
    const got = this.reloadPaths!();
    if (got.pathStart.length !== this.count + 1 || got.pathStart[this.count] !== got.pool.length) throw new Error('the reloaded paths do not fit this index');
    this.pool = got.pool;
    this.starts = got.pathStart;
    this.reloadPaths = undefined;
    return { pool: got.pool, starts: got.pathStart };
  }

  /** The entry's path as a byte string. */
  path(i: number): string {
    return this.pathPool.toString('latin1', this.pathStart[i], this.pathStart[i + 1]);
  }

  type(i: number): EntryType {
    return this.types[i] as EntryType;
  }

  entry(i: number): TarEntry {
    const x = this.extras.get(i);
    return {
      path: this.path(i),
      type: this.types[i],
      mode: this.modes[i],
      uid: this.uids[i],
      gid: this.gids[i],
      size: this.sizes[i],
      mtime: this.mtimes[i],
      mtimeNsec: this.mtimeNsecs[i],
      dataOffset: this.dataOffsets[i],
      storedSize: x?.storedSize ?? this.sizes[i],
      ...(x?.linkname !== undefined && { linkname: x.linkname }),
      ...(x?.devmajor !== undefined && { devmajor: x.devmajor, devminor: x.devminor }),
      ...(x?.xattrs && { xattrs: x.xattrs }),
      ...(x?.sparse && { sparse: x.sparse }),
    };
  }

  /** Approximate bytes held, for the memory-per-entry figure. */
  /**
   * At most how many directories a tree of these entries can hold: every entry may be one, and
   * every `/` in a path may imply one more (a parent the tar never lists).
   */
  directoryCountUpperBound(): number {
    return this.count + this.slashCount();
  }

  private slashes?: number;

  /**
   * How many `/` the paths hold: counted once, and kept by the index codec so that a mount
   * from the cache does not walk every path for it.
   */
  slashCount(): number {
    if (this.slashes === undefined) {
      let n = 0;
      const pool = this.pathPool;
      for (let i = 0; i < pool.length; i++) if (pool[i] === 0x2f) n++;
      this.slashes = n;
    }
    return this.slashes;
  }

  private sparse?: boolean;

  /** Whether any entry is sparse: listings skip a lookup of the extras per file when none is. */
  hasSparse(): boolean {
    if (this.sparse === undefined) {
      this.sparse = false;
      for (const x of this.extras.values()) if (x.sparse) this.sparse = true;
    }
    return this.sparse;
  }

  /** For the codec: the count it kept (see slashCount). */
  knownSlashCount(n: number): void {
    this.slashes = n;
  }

  byteSize(): number {
    const cols = (this.pool?.length ?? 0) + (this.starts?.byteLength ?? 0) + this.types.byteLength + this.modes.byteLength +
      this.uids.byteLength + this.gids.byteLength + this.sizes.byteLength + this.mtimes.byteLength + this.mtimeNsecs.byteLength + this.dataOffsets.byteLength;
    return cols + this.extras.size * 64;
  }
}

/** A builder's columns as openColumns hands them to an in-place writer. */
export interface AppendableColumns {
  pool: Buffer;
  poolUsed: number;
  pathStart: Uint32Array;
  types: Uint8Array;
  modes: Uint16Array;
  uids: Uint32Array;
  gids: Uint32Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  mtimeNsecs: Uint32Array;
  dataOffsets: Float64Array;
}

/** Appends rows, doubling its columns as needed, then hands out a right-sized TarIndex. */
export class TarIndexBuilder {
  private count = 0;
  private capacity = 256;
  private pool = Buffer.allocUnsafe(16 * 1024);
  private poolUsed = 0;
  private pathStart = new Uint32Array(this.capacity + 1);
  private types = new Uint8Array(this.capacity);
  private modes = new Uint16Array(this.capacity);
  private uids = new Uint32Array(this.capacity);
  private gids = new Uint32Array(this.capacity);
  private sizes = new Float64Array(this.capacity);
  private mtimes = new Float64Array(this.capacity);
  private mtimeNsecs = new Uint32Array(this.capacity);
  private dataOffsets = new Float64Array(this.capacity);
  private readonly extras = new Map<number, EntryExtras>();
  /** The paths' slashes, counted as they arrive: a walk over the finished pool cost ~20 ms a layer of 60k paths. */
  private slashes = 0;

  add(e: TarEntry): number {
    if (this.count === this.capacity) this.grow();
    const i = this.count++;
    this.growPool(e.path.length);
    this.poolUsed += this.pool.write(e.path, this.poolUsed, 'latin1');
    for (let k = e.path.indexOf('/'); k >= 0; k = e.path.indexOf('/', k + 1)) this.slashes++;
    this.pathStart[i + 1] = this.poolUsed;
    this.types[i] = e.type;
    this.modes[i] = e.mode & 0o7777;
    this.uids[i] = e.uid >>> 0;
    this.gids[i] = e.gid >>> 0;
    this.sizes[i] = e.size;
    this.mtimes[i] = e.mtime;
    this.mtimeNsecs[i] = e.mtimeNsec;
    this.dataOffsets[i] = e.dataOffset;
    const x: EntryExtras = {};
    if (e.linkname !== undefined && (e.type === EntryType.Symlink || e.type === EntryType.HardLink)) x.linkname = e.linkname;
    if (e.type === EntryType.CharDevice || e.type === EntryType.BlockDevice) {
      x.devmajor = e.devmajor ?? 0;
      x.devminor = e.devminor ?? 0;
    }
    if (e.xattrs && Object.keys(e.xattrs).length) x.xattrs = e.xattrs;
    if (e.sparse) {
      x.sparse = e.sparse;
      x.storedSize = e.storedSize;
    }
    if (Object.keys(x).length) this.extras.set(i, x);
    return i;
  }

  /** Rows added so far. */
  get rows(): number {
    return this.count;
  }

  /**
   * The columns, with room for at least `rows` more rows and `poolBytes` more path bytes, for a
   * writer that appends rows in place (the native header scan, src/tar/native-scan.ts); it then
   * reports what it wrote with appended(). Valid until the next call that adds rows.
   */
  openColumns(rows: number, poolBytes: number): AppendableColumns {
    while (this.count + rows > this.capacity) this.grow();
    this.growPool(poolBytes);
    return {
      pool: this.pool,
      poolUsed: this.poolUsed,
      pathStart: this.pathStart,
      types: this.types,
      modes: this.modes,
      uids: this.uids,
      gids: this.gids,
      sizes: this.sizes,
      mtimes: this.mtimes,
      mtimeNsecs: this.mtimeNsecs,
      dataOffsets: this.dataOffsets,
    };
  }

  /**
   * Takes the rows written through openColumns: the row count, pool use and slashes in the
   * paths after them, and the link targets of those rows (symlinks and hard links, as add()
   * keeps them).
   */
  appended(rows: number, poolUsed: number, slashes: number, links: Iterable<[row: number, linkname: string]>): void {
    if (rows < this.count || rows > this.capacity || poolUsed < this.poolUsed || poolUsed > this.pool.length) throw new Error('appended rows do not fit the columns');
    this.count = rows;
    this.poolUsed = poolUsed;
    this.slashes += slashes;
    for (const [row, linkname] of links) this.extras.set(row, { linkname });
  }

  private growPool(more: number): void {
    if (this.poolUsed + more <= this.pool.length) return;
    let size = this.pool.length * 2;
    while (this.poolUsed + more > size) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.pool.copy(bigger, 0, 0, this.poolUsed);
    this.pool = bigger;
  }

  private grow(): void {
    this.capacity *= 2;
    const widen = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.pathStart = widen(this.pathStart, this.capacity + 1);
    this.types = widen(this.types, this.capacity);
    this.modes = widen(this.modes, this.capacity);
    this.uids = widen(this.uids, this.capacity);
    this.gids = widen(this.gids, this.capacity);
    this.sizes = widen(this.sizes, this.capacity);
    this.mtimes = widen(this.mtimes, this.capacity);
    this.mtimeNsecs = widen(this.mtimeNsecs, this.capacity);
    this.dataOffsets = widen(this.dataOffsets, this.capacity);
  }

  finish(): TarIndex {
    const n = this.count;
    const index = new TarIndex(
      n,
      Buffer.from(this.pool.subarray(0, this.poolUsed)),
      this.pathStart.slice(0, n + 1),
      this.types.slice(0, n),
      this.modes.slice(0, n),
      this.uids.slice(0, n),
      this.gids.slice(0, n),
      this.sizes.slice(0, n),
      this.mtimes.slice(0, n),
      this.mtimeNsecs.slice(0, n),
      this.dataOffsets.slice(0, n),
      this.extras,
    );
    index.knownSlashCount(this.slashes);
    return index;
  }
}
