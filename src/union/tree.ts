import { EntryType, statMode } from '../tar/entry';
import type { TarIndex } from '../tar/tar-index';

/** What `stat` needs of one node; `ino` is shared by hard links. */
export interface NodeStat {
  ino: number;
  mode: number;
  type: EntryType;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds, signed. */
  mtime: number;
  /** 0..999,999,999. */
  mtimeNsec: number;
  nlink: number;
  devmajor: number;
  devminor: number;
}

/**
 * Where a node's bytes and metadata come from: a row of one layer's tar index (several
 * hard-linked nodes share one). `entry` -1 while building: a directory only implied by paths.
 */
export interface NodeSource {
  layerSlot: number;
  entry: number;
}

/** A Tree's columns as they sit in memory (see Tree.columns). */
export interface TreeColumns {
  namePool: Buffer;
  nameStart: Uint32Array;
  parent: Int32Array;
  childFirst: Int32Array;
  childCount: Int32Array;
  nodeObj: Int32Array;
  objLayer: Uint16Array;
  objEntry: Int32Array;
  objNlink: Uint32Array;
}

/**
 * A finished, read-only file tree over one or more layers' tar indexes. Nodes are numbered
 * breadth-first with each directory's children sorted by name (byte order), so a
 * directory's children are a contiguous id range (no child lists) and a name is found by binary
 * search. Hard links are two
 * nodes sharing one file object; the object number is the inode number, stable for a given image.
 */
export class Tree {
  constructor(
    /** The tar indexes the nodes point into, by slot. */
    readonly layers: readonly TarIndex[],
    /** Every node's name, its bytes back to back: one buffer instead of a string object per node. */
    private readonly namePool: Buffer,
    private readonly nameStart: Uint32Array,
    readonly parent: Int32Array,
    readonly childFirst: Int32Array,
    readonly childCount: Int32Array,
    readonly nodeObj: Int32Array,
    readonly objLayer: Uint16Array,
    /** Row in the layer's index, or -1 for a directory no layer wrote (an implied parent). */
    readonly objEntry: Int32Array,
    readonly objNlink: Uint32Array,
  ) {}

  get nodeCount(): number {
    return this.parent.length;
  }

  name(node: number): string {
    return this.namePool.toString('latin1', this.nameStart[node], this.nameStart[node + 1]);
  }

  /** The node at `path` ('' or '/' is the root), never following symlinks; -1 if absent. */
  lookup(path: string): number {
    let node = 0;
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      node = this.child(node, part);
      if (node < 0) return -1;
    }
    return node;
  }

  child(dir: number, name: string): number {
    let lo = this.childFirst[dir];
    let hi = lo + this.childCount[dir] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const n = this.name(mid);
      if (n === name) return mid;
      if (n < name) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  children(dir: number): number[] {
    const out: number[] = [];
    for (let i = 0, first = this.childFirst[dir]; i < this.childCount[dir]; i++) out.push(first + i);
    return out;
  }

  path(node: number): string {
    const parts: string[] = [];
    for (let n = node; n > 0; n = this.parent[n]) parts.push(this.name(n));
    return parts.reverse().join('/');
  }

  source(node: number): NodeSource | undefined {
    const obj = this.nodeObj[node];
    const entry = this.objEntry[obj];
    return entry < 0 ? undefined : { layerSlot: this.objLayer[obj], entry };
  }

  type(node: number): EntryType {
    const src = this.source(node);
    if (!src) return EntryType.Directory;
    const t = this.layers[src.layerSlot].type(src.entry);
    // A hard link node takes its target's identity; the target is always a non-directory.
    return t === EntryType.HardLink ? EntryType.File : t;
  }

  isDir(node: number): boolean {
    return this.type(node) === EntryType.Directory;
  }

  stat(node: number): NodeStat {
    const obj = this.nodeObj[node];
    const src = this.source(node);
    const ino = obj + 1;
    if (!src) {
      return { ino, mode: statMode(EntryType.Directory, 0o755), type: EntryType.Directory, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, nlink: this.dirLinks(node), devmajor: 0, devminor: 0 };
    }
    const idx = this.layers[src.layerSlot];
    const type = this.type(node);
    const x = idx.extras.get(src.entry);
    return {
      ino,
      // Linux symlinks have no permissions of their own: lstat always says 0777.
      mode: statMode(type, type === EntryType.Symlink ? 0o777 : idx.modes[src.entry]),
      type,
      uid: idx.uids[src.entry],
      gid: idx.gids[src.entry],
      size: type === EntryType.File ? idx.sizes[src.entry] : type === EntryType.Symlink ? (x?.linkname ?? '').length : 0,
      mtime: idx.mtimes[src.entry],
      mtimeNsec: idx.mtimeNsecs[src.entry],
      nlink: type === EntryType.Directory ? this.dirLinks(node) : this.objNlink[obj],
      devmajor: x?.devmajor ?? 0,
      devminor: x?.devminor ?? 0,
    };
  }

  /** A directory's link count the Unix way: itself, its entry in the parent, each subdirectory's `..`. */
  private dirLinks(node: number): number {
    let subdirs = 0;
    for (let i = 0, first = this.childFirst[node]; i < this.childCount[node]; i++) if (this.isDir(first + i)) subdirs++;
    return 2 + subdirs;
  }

  symlinkTarget(node: number): string | undefined {
    const src = this.source(node);
    if (!src || this.type(node) !== EntryType.Symlink) return undefined;
    return this.layers[src.layerSlot].extras.get(src.entry)?.linkname;
  }

  xattrs(node: number): Record<string, Buffer> {
    const src = this.source(node);
    return (src && this.layers[src.layerSlot].extras.get(src.entry)?.xattrs) || {};
  }

  /** Depth-first walk below `start` (inclusive), parents before children, children by name. */
  *walk(start = 0): Generator<number> {
    const stack = [start];
    while (stack.length) {
      const n = stack.pop()!;
      yield n;
      for (let i = this.childCount[n] - 1; i >= 0; i--) stack.push(this.childFirst[n] + i);
    }
  }

  /**
   * Every column, for a snapshot on disk (src/union/tree-codec.ts); `fromColumns` takes them
   * back. Kept next to the constructor so the two change together.
   */
  columns(): TreeColumns {
    return {
      namePool: this.namePool, nameStart: this.nameStart, parent: this.parent, childFirst: this.childFirst, childCount: this.childCount,
      nodeObj: this.nodeObj, objLayer: this.objLayer, objEntry: this.objEntry, objNlink: this.objNlink,
    };
  }

  static fromColumns(layers: readonly TarIndex[], c: TreeColumns): Tree {
    return new Tree(layers, c.namePool, c.nameStart, c.parent, c.childFirst, c.childCount, c.nodeObj, c.objLayer, c.objEntry, c.objNlink);
  }

  byteSize(): number {
    return this.namePool.length + this.nameStart.byteLength + this.parent.byteLength + this.childFirst.byteLength + this.childCount.byteLength +
      this.nodeObj.byteLength + this.objLayer.byteLength + this.objEntry.byteLength + this.objNlink.byteLength;
  }
}
