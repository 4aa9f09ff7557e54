import { EntryType } from '../tar/entry';
import { displayName } from '../names';
import type { TarIndex } from '../tar/tar-index';
import { Tree, type NodeSource } from './tree';
import { whiteoutMeaning } from './whiteout';
import { warning, type Warning } from '../warnings';
import { collectGarbage, COLLECT_AFTER_ENTRIES } from '../io/collect-garbage';

export interface BuildOptions {
  /**
   * 'merged' applies the OCI layer rules (whiteouts delete from lower layers and are hidden);
   * 'single' shows one layer as its tar has it, whiteout markers included.
   */
  mode: 'merged' | 'single';
  /** Names the layer in warnings, by slot. */
  layerName?: (slot: number) => string;
  /**
   * A hard link whose target is not in the tree built so far resolves here ('single' mode: a
   * lower layer holds the target); returns the target's file object or undefined.
   */
  resolveOutside?: (path: string) => NodeSource | undefined;
}

export interface BuiltTree {
  tree: Tree;
  warnings: Warning[];
}

const SLASH = 0x2f;
/** `.wh.`, the whiteout prefix, as bytes. */
const WH = [0x2e, 0x77, 0x68, 0x2e];

/**
 * Builds the file tree of the layers in `apply` (slots of `layers`, bottom first), the way containerd's and go-containerregistry's
 * extractors apply them: per layer, first the opaque markers and whiteouts delete from what lower
 * layers left (so they can never touch the layer's own entries, wherever they sit in the tar),
 * then the layer's entries apply in tar order: a later duplicate wins, a directory over a
 * directory merges, anything else replaces the old path and its subtree.
 *
 * Built in typed-array columns (see Building), never an object or a string per entry: a tree of
 * two million paths would otherwise cost several hundred bytes per entry while it is built, and
 * Node's heap does not give that memory back.
 */
export function buildTree(layers: readonly TarIndex[], apply: readonly number[], opts: BuildOptions): BuiltTree {
  const warnings: Warning[] = [];
  const pass: Pass = { opts, warnings, name: opts.layerName ?? ((slot: number) => `layer ${slot}`), outsideObjs: new Map() };
  const b = new Building(layers, apply[0] ?? 0, apply.reduce((n, slot) => n + layers[slot].count, 0));

  for (const slot of apply) {
    const index = layers[slot];
    const pool = index.pathPool;
    const starts = index.pathStart;
    const { marker, opaque, whiteouts } = findMarkers(index, slot, pass);

    // Opaque: the marker's directory (its path up to the last slash) loses every child.
    for (const i of opaque) {
      const node = b.lookupBytes(pool, starts[i], parentEnd(pool, starts[i], starts[i + 1]));
      if (node >= 0 && b.isDirectory(node)) b.clearDir(node);
    }
    // `dir/.wh.name` deletes `dir/name`.
    for (const i of whiteouts) {
      const s = starts[i];
      const e = starts[i + 1];
      const dir = b.lookupBytes(pool, s, parentEnd(pool, s, e));
      if (dir >= 0 && b.isDirectory(dir)) b.remove(dir, pool, baseStart(pool, s, e) + WH.length, e);
    }
    // An opaque marker says its directory exists in this layer, even with nothing else in it.
    for (const i of opaque) b.ensureDir(slot, starts[i], parentEnd(pool, starts[i], starts[i + 1]));

    addEntries(b, index, slot, marker, pass);
  }

  return { tree: b.freeze(layers), warnings };
}

/** What a build's passes share. */
interface Pass {
  opts: BuildOptions;
  warnings: Warning[];
  name: (slot: number) => string;
  /** The file objects made for resolveOutside's answers. */
  outsideObjs: Map<NodeSource, number>;
}

/**
 * The layer's markers (whiteouts, opaque, AUFS, invalid), flagged in `marker` to be set aside
 * by addEntries; only 'merged' has any. Each pass of the build is a function of its own: a
 * loop that runs once is compiled on the spot, and code after it in the same function would
 * run in the interpreter again.
 */
function findMarkers(index: TarIndex, slot: number, pass: Pass): { marker: Uint8Array; opaque: number[]; whiteouts: number[] } {
  const { warnings, name } = pass;
  const pool = index.pathPool;
  const starts = index.pathStart;
  const marker = new Uint8Array(index.count);
  const opaque: number[] = [];
  const whiteouts: number[] = [];
  if (pass.opts.mode !== 'merged') return { marker, opaque, whiteouts };
  for (let i = 0; i < index.count; i++) {
    if (!startsWhiteout(pool, starts[i], starts[i + 1])) continue;
    const path = index.path(i);
    const meaning = whiteoutMeaning(path);
    if (meaning.kind === 'entry') continue;
    marker[i] = 1;
    if (index.type(i) === EntryType.Directory || index.sizes[i] > 0) {
      const text = `whiteout ${displayName(path)} is a ${index.type(i) === EntryType.Directory ? 'directory' : 'non-empty file'}; applied by its name`;
      warnings.push(warning('whiteout', `${name(slot)}: ${text}`, { layer: name(slot), entry: path }));
    }
    if (meaning.kind === 'opaque') opaque.push(i);
    else if (meaning.kind === 'whiteout') whiteouts.push(i);
    else if (meaning.kind === 'invalid') warnings.push(warning('whiteout', `${name(slot)}: ignored invalid whiteout ${displayName(path)}`, { layer: name(slot), entry: path }));
  }
  return { marker, opaque, whiteouts };
}

/** Applies the layer's entries but its markers, in tar order. */
function addEntries(b: Building, index: TarIndex, slot: number, marker: Uint8Array, pass: Pass): void {
  const pool = index.pathPool;
  const starts = index.pathStart;
  const types = index.types;
  for (let i = 0; i < index.count; i++) {
    if (marker[i]) continue;
    const s = starts[i];
    const e = starts[i + 1];
    const type = types[i];
    if (s === e) {
      if (type === EntryType.Directory) b.setObj(b.root, slot, i);
      continue;
    }
    const k = lastSlash(pool, s, e);
    const parent = b.ensureDir(slot, s, k < 0 ? s : k);
    const base = k < 0 ? s : k + 1;
    // Found once: the entry is put in the same slot, if at all.
    const at = b.find(parent, pool, base, e);
    const existing = b.valueAt(at);
    if (type === EntryType.Directory) {
      if (existing >= 0 && b.isDirectory(existing)) b.setObj(existing, slot, i);
      else b.putAt(at, parent, slot, base, e, b.newObj(slot, i), true);
    } else if (type === EntryType.HardLink) {
      const obj = linkObj(b, index, slot, i, existing, pass);
      if (obj >= 0) b.putAt(at, parent, slot, base, e, obj, false);
    } else {
      b.putAt(at, parent, slot, base, e, b.newObj(slot, i), false);
    }
  }
}

/**
 * The file object hard link `i` is to share, or -1 when it is not placed: its target is
 * missing or a directory (a warning says so), or it is the link's own node already.
 */
function linkObj(b: Building, index: TarIndex, slot: number, i: number, existing: number, pass: Pass): number {
  const { opts, outsideObjs, warnings, name } = pass;
  const targetPath = index.extras.get(i)?.linkname ?? '';
  const target = b.lookupString(targetPath);
  let targetObj = target >= 0 && !b.isDirectory(target) ? b.nodeObj[target] : -1;
  if (target < 0 && opts.resolveOutside) {
    const outside = opts.resolveOutside(targetPath);
    if (outside) {
      let id = outsideObjs.get(outside);
      if (id === undefined) outsideObjs.set(outside, (id = b.newObj(outside.layerSlot, outside.entry)));
      targetObj = id;
    }
  }
  if (targetObj < 0) {
    const path = index.path(i);
    const text = `hard link ${displayName(path)} -> ${displayName(targetPath)}: target ${target >= 0 ? 'is a directory' : 'not found'}; skipped`;
    warnings.push(warning('hard-link', `${name(slot)}: ${text}`, { layer: name(slot), entry: path }));
    return -1;
  }
  // A link onto itself changes nothing; a target found only below (target < 0) is placed.
  return target >= 0 && existing === target ? -1 : targetObj;
}

/** Whether the last component of the path at pool[s, e) starts with `.wh.`. */
function startsWhiteout(pool: Buffer, s: number, e: number): boolean {
  const base = baseStart(pool, s, e);
  if (e - base < WH.length) return false;
  for (let k = 0; k < WH.length; k++) if (pool[base + k] !== WH[k]) return false;
  return true;
}

/** The last slash of the path at pool[s, e), or -1. */
function lastSlash(pool: Buffer, s: number, e: number): number {
  for (let k = e - 1; k >= s; k--) if (pool[k] === SLASH) return k;
  return -1;
}

/** Where the parent of the path at pool[s, e) ends (parentOf): its last slash, or `s` (the root) when it has none. */
function parentEnd(pool: Buffer, s: number, e: number): number {
  const k = lastSlash(pool, s, e);
  return k < 0 ? s : k;
}

/** Where the last component of the path at pool[s, e) starts (baseName). */
function baseStart(pool: Buffer, s: number, e: number): number {
  const k = lastSlash(pool, s, e);
  return k < 0 ? s : k + 1;
}

/** A column cut to `n` rows: as it is when exact, a view when a few rows are spare, else a copy. */
function fit<T extends Int32Array | Uint32Array | Uint16Array>(a: T, n: number): T {
  return a.length === n ? a : a.length - n <= n / 16 ? (a.subarray(0, n) as T) : (a.slice(0, n) as T);
}

/** Directories of at most this many children are sorted by comparisons (insertion), larger ones by digits. */
const FEW_TO_SORT = 8;
/** A digit sort key is a 4-byte digit times this plus the child's place: exact in a double (2^32 * 2^21 = 2^53) for up to 2^21 children. */
const PLACES = 2 ** 21;
/** Runs still alike past this many bytes are compared whole: it bounds the digit sort's recursion. */
const DEEPEST_DIGIT = 256;

/** A row's flags: it is a directory. */
const DIR = 1;
/** A row's flags: it is the node of some slot now (a child in the tree, unless an ancestor left it). */
const LIVE = 2;

/** The next size of a geometrically grown column. */
const grown = <T extends Int32Array | Uint32Array | Uint16Array | Uint8Array>(a: T, n: number): T => {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
};

/**
 * The tree while it is built, in columns. A node is a row: its parent, its name (a byte range of
 * one layer's path pool: every name is a component of some entry's path), its file object and
 * whether it is a directory. Children are found through one open-addressing hash of
 * (parent, name) -> node; a slot's key is the first node that had that parent and name (rows
 * never change parent or name) and its value the node there now, or -1 once deleted.
 * Replacing a node puts a new row in the slot; its old subtree stays behind unreachable.
 * Clearing a directory (opaque) replaces it by a fresh row for the same object, so its old
 * children, keyed by the old row, are unreachable too. `freeze` keeps what the root reaches.
 */
class Building {
  root = 0;
  nodes = 0;
  parent: Int32Array;
  namePool: Uint16Array;
  nameStart: Uint32Array;
  nameEnd: Uint32Array;
  nodeObj: Int32Array;
  /** DIR and LIVE bits. */
  private flags: Uint8Array;
  objs = 0;
  objLayer: Uint16Array;
  objEntry: Int32Array;
  private slotKey: Int32Array;
  private slotVal: Int32Array;
  private used = 0;
  /** Bumped whenever a directory leaves the tree: the remembered directories (ensureDir) are then stale. */
  private epoch = 0;
  /**
   * The directories along the path ensureDir last walked (pools[dirPool] from dirStart, dirLength
   * bytes), valid while `epoch` is `dirEpoch`: dirNode[d] is the one after component d, which
   * ends dirEnd[d] bytes into the path.
   */
  private dirNode = new Int32Array(16);
  private dirEnd = new Uint32Array(16);
  private dirDepth = 0;
  private dirPool = 0;
  private dirStart = 0;
  private dirLength = 0;
  private dirEpoch = -1;
  private readonly pools: Buffer[];
  private readonly views: DataView[];
  /** Scratch of the digit sort (sortByDigits), as long as the largest directory sorted so far. */
  private sortKeys = new Float64Array(0);
  private sortIds = new Int32Array(0);
  /** Set by freeze (groupEdges). */
  private head: Uint32Array = new Uint32Array(0);

  constructor(layers: readonly TarIndex[], rootSlot: number, entries: number) {
    this.pools = layers.map((l) => l.pathPool);
    this.views = this.pools.map((p) => new DataView(p.buffer, p.byteOffset, p.byteLength));
    // Sized for every entry plus a few implied parents up front: growing would copy each column
    // and leave the old one behind as garbage at the point of peak memory.
    const cap = entries + 64;
    this.parent = new Int32Array(cap);
    this.namePool = new Uint16Array(cap);
    this.nameStart = new Uint32Array(cap);
    this.nameEnd = new Uint32Array(cap);
    this.nodeObj = new Int32Array(cap);
    this.flags = new Uint8Array(cap);
    this.objLayer = new Uint16Array(cap);
    this.objEntry = new Int32Array(cap);
    let slots = 256;
    while (slots < cap * 1.5) slots *= 2;
    this.slotKey = new Int32Array(slots).fill(-1);
    this.slotVal = new Int32Array(slots);
    this.root = this.newNode(-1, 0, 0, 0, this.newObj(rootSlot, -1), true);
  }

  newObj(slot: number, entry: number): number {
    if (this.objs === this.objLayer.length) {
      this.objLayer = grown(this.objLayer, this.objs * 2);
      this.objEntry = grown(this.objEntry, this.objs * 2);
    }
    this.objLayer[this.objs] = slot;
    this.objEntry[this.objs] = entry;
    return this.objs++;
  }

  setObj(node: number, slot: number, entry: number): void {
    this.nodeObj[node] = this.newObj(slot, entry);
  }

  isDirectory(node: number): boolean {
    return (this.flags[node] & DIR) !== 0;
  }

  private newNode(parent: number, pool: number, start: number, end: number, obj: number, dir: boolean): number {
    if (this.nodes === this.parent.length) {
      const n = this.nodes * 2;
      this.parent = grown(this.parent, n);
      this.namePool = grown(this.namePool, n);
      this.nameStart = grown(this.nameStart, n);
      this.nameEnd = grown(this.nameEnd, n);
      this.nodeObj = grown(this.nodeObj, n);
      this.flags = grown(this.flags, n);
    }
    const id = this.nodes++;
    this.parent[id] = parent;
    this.namePool[id] = pool;
    this.nameStart[id] = start;
    this.nameEnd[id] = end;
    this.nodeObj[id] = obj;
    this.flags[id] = dir ? DIR : 0;
    return id;
  }

  /** The slot for (parent, name bytes): its index, found or the empty one where it would go. */
  private slotOf(parent: number, pool: Buffer, s: number, e: number, h: number): number {
    const mask = this.slotKey.length - 1;
    for (let at = h & mask; ; at = (at + 1) & mask) {
      const key = this.slotKey[at];
      if (key < 0) return at;
      if (this.parent[key] === parent && this.sameName(key, pool, s, e)) return at;
    }
  }

  private sameName(node: number, pool: Buffer, s: number, e: number): boolean {
    const a = this.pools[this.namePool[node]];
    let i = this.nameStart[node];
    if (this.nameEnd[node] - i !== e - s) return false;
    for (let k = s; k < e; k++, i++) if (a[i] !== pool[k]) return false;
    return true;
  }

  /** The child named pool[s, e) of `dir`, or -1. */
  child(dir: number, pool: Buffer, s: number, e: number): number {
    const at = this.slotOf(dir, pool, s, e, hashBytes(dir, pool, s, e));
    return this.slotKey[at] < 0 ? -1 : this.slotVal[at];
  }

  /** The slot of the child named pool[s, e) of `dir`: for valueAt, and putAt until the hash next changes. */
  find(dir: number, pool: Buffer, s: number, e: number): number {
    return this.slotOf(dir, pool, s, e, hashBytes(dir, pool, s, e));
  }

  /** The node in slot `at` (find), or -1. */
  valueAt(at: number): number {
    return this.slotKey[at] < 0 ? -1 : this.slotVal[at];
  }

  /**
   * Sets the child named pools[poolId][s, e) of `dir`, whose slot `at` is (find), to a new node
   * for `obj`; returns it.
   */
  putAt(at: number, dir: number, poolId: number, s: number, e: number, obj: number, isDir: boolean): number {
    const node = this.newNode(dir, poolId, s, e, obj, isDir);
    if (this.slotKey[at] < 0) {
      if ((this.used + 1) * 2 > this.slotKey.length) {
        this.rehash();
        at = this.find(dir, this.pools[poolId], s, e);
      }
      this.slotKey[at] = node;
      this.used++;
    } else if (this.slotVal[at] >= 0) {
      this.leave(this.slotVal[at]);
    }
    this.slotVal[at] = node;
    this.flags[node] |= LIVE;
    return node;
  }

  /** Deletes the child named pool[s, e) of `dir`, if any. */
  remove(dir: number, pool: Buffer, s: number, e: number): void {
    const at = this.slotOf(dir, pool, s, e, hashBytes(dir, pool, s, e));
    if (this.slotKey[at] < 0 || this.slotVal[at] < 0) return;
    this.leave(this.slotVal[at]);
    this.slotVal[at] = -1;
  }

  /** Takes `node` out of its slot's place. */
  private leave(node: number): void {
    this.flags[node] &= ~LIVE;
    if (this.flags[node] & DIR) this.epoch++;
  }

  /** Empties directory `node`: a fresh row takes its place (same name, same object), childless. */
  clearDir(node: number): void {
    const fresh = this.newNode(this.parent[node], this.namePool[node], this.nameStart[node], this.nameEnd[node], this.nodeObj[node], true);
    this.epoch++;
    if (node === this.root) {
      this.root = fresh;
      return;
    }
    const pool = this.pools[this.namePool[node]];
    const s = this.nameStart[node];
    const e = this.nameEnd[node];
    this.slotVal[this.slotOf(this.parent[node], pool, s, e, hashBytes(this.parent[node], pool, s, e))] = fresh;
    this.flags[node] &= ~LIVE;
    this.flags[fresh] |= LIVE;
  }

  private rehash(): void {
    const keys = this.slotKey;
    const vals = this.slotVal;
    const size = keys.length * 2;
    this.slotKey = new Int32Array(size).fill(-1);
    this.slotVal = new Int32Array(size);
    const mask = size - 1;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key < 0) continue;
      let at = hashBytes(this.parent[key], this.pools[this.namePool[key]], this.nameStart[key], this.nameEnd[key]) & mask;
      while (this.slotKey[at] >= 0) at = (at + 1) & mask;
      this.slotKey[at] = key;
      this.slotVal[at] = vals[i];
    }
  }

  /** The node at the path pool[s, e) ('' is the root), split at every slash; -1 if absent. */
  lookupBytes(pool: Buffer, s: number, e: number): number {
    let node = this.root;
    if (s === e) return node;
    for (let p = s; ; ) {
      let q = p;
      while (q < e && pool[q] !== SLASH) q++;
      if (!this.isDirectory(node)) return -1;
      node = this.child(node, pool, p, q);
      if (node < 0 || q === e) return node;
      p = q + 1;
    }
  }

  /** lookupBytes for a byte string (a hard link's target). */
  lookupString(path: string): number {
    const bytes = Buffer.from(path, 'latin1');
    return this.lookupBytes(bytes, 0, bytes.length);
  }

  /**
   * The directory at the path pools[slot][s, e), created (or put in place of a non-directory)
   * where missing, each new one an implied directory of layer `slot`.
   */
  ensureDir(slot: number, s: number, e: number): number {
    if (s === e) return this.root;
    const pool = this.pools[slot];
    // Entries of one directory follow each other in a tar, and a subdirectory's after its
    // parent's: the directories of the leading components the last path shares are known.
    let depth = this.epoch === this.dirEpoch ? this.sharedDepth(slot, s, e) : 0;
    let dir = depth === 0 ? this.root : this.dirNode[depth - 1];
    if (depth > 0 && this.dirEnd[depth - 1] === e - s) return dir;
    for (let p = depth === 0 ? s : s + this.dirEnd[depth - 1] + 1; ; ) {
      let q = p;
      while (q < e && pool[q] !== SLASH) q++;
      const at = this.find(dir, pool, p, q);
      const found = this.valueAt(at);
      dir = found >= 0 && this.isDirectory(found) ? found : this.putAt(at, dir, slot, p, q, this.newObj(slot, -1), true);
      if (depth === this.dirNode.length) {
        this.dirNode = grown(this.dirNode, depth * 2);
        this.dirEnd = grown(this.dirEnd, depth * 2);
      }
      this.dirNode[depth] = dir;
      this.dirEnd[depth++] = q - s;
      if (q === e) break;
      p = q + 1;
    }
    this.dirDepth = depth;
    this.dirPool = slot;
    this.dirStart = s;
    this.dirLength = e - s;
    this.dirEpoch = this.epoch;
    return dir;
  }

  /** How many leading components of the path pools[slot][s, e) the last path ensureDir walked has. */
  private sharedDepth(slot: number, s: number, e: number): number {
    const pool = this.pools[slot];
    const length = e - s;
    const n = Math.min(length, this.dirLength);
    const from = this.dirStart;
    // Most paths are the last one again (entries of one directory): 4 bytes a step.
    const a = this.views[slot];
    const b = this.views[this.dirPool];
    let k = 0;
    while (k + 4 <= n && a.getInt32(s + k) === b.getInt32(from + k)) k += 4;
    const last = this.pools[this.dirPool];
    while (k < n && pool[s + k] === last[from + k]) k++;
    // A component is shared when both paths have it whole: it ends within the common bytes,
    // where this path ends or has a slash too.
    let depth = 0;
    while (depth < this.dirDepth) {
      const end = this.dirEnd[depth];
      if (end > k || (end !== length && pool[s + end] !== SLASH)) break;
      depth++;
    }
    return depth;
  }

  /** Numbers the nodes the root reaches breadth-first (children sorted by name bytes), file objects by first appearance. */
  freeze(layers: readonly TarIndex[]): Tree {
    const big = this.nodes >= COLLECT_AFTER_ENTRIES;
    const { order, childFirst, childCount, parents, count } = this.breadthFirst(big);
    // The edge lists, heads and sort scratch died with breadthFirst: for a big tree, collected before the final columns.
    if (big) collectGarbage();

    const nodeObj = new Int32Array(count);
    const objLayer = new Uint16Array(count);
    const objEntry = new Int32Array(count);
    const objNlink = new Uint32Array(count);
    const objs = this.numberObjects(order, count, nodeObj, objLayer, objEntry, objNlink);
    const nameStart = new Uint32Array(count + 1);
    const names = this.copyNames(order, count, nameStart);
    // Exact already unless some edges hung below replaced directories, or hard links share
    // objects: a few spare rows are kept as a view (a copy would sit beside the original at the
    // build's peak), many are copied away.
    return new Tree(
      layers,
      names,
      nameStart,
      fit(parents, count),
      fit(childFirst, count),
      fit(childCount, count),
      nodeObj,
      fit(objLayer, objs),
      fit(objEntry, objs),
      fit(objNlink, objs),
    );
  }

  /**
   * Final object numbers by first appearance in `order`, filled into the final columns; returns
   * how many. Its own function (as each pass of freeze): a loop run once per build is compiled
   * on the spot, and a long function around it would fall back to the interpreter after it.
   */
  private numberObjects(order: Int32Array, count: number, nodeObj: Int32Array, objLayer: Uint16Array, objEntry: Int32Array, objNlink: Uint32Array): number {
    const objId = new Int32Array(this.objs).fill(-1);
    let objs = 0;
    for (let n = 0; n < count; n++) {
      const obj = this.nodeObj[order[n]];
      let id = objId[obj];
      if (id < 0) {
        id = objId[obj] = objs++;
        objLayer[id] = this.objLayer[obj];
        objEntry[id] = this.objEntry[obj];
      }
      objNlink[id]++;
      nodeObj[n] = id;
    }
    return objs;
  }

  /**
   * The names of the nodes in `order` back to back (the root's is empty); fills `nameStart`.
   * Reads them in row order, which is about the order the layers' paths lie in, rather than at
   * random: the object column, done with (numberObjects), becomes each row's place in `order`.
   */
  private copyNames(order: Int32Array, count: number, nameStart: Uint32Array): Buffer {
    const place = this.nodeObj.fill(0);
    this.nodeObj = new Int32Array(0);
    for (let n = 1; n < count; n++) place[order[n]] = n;
    const starts = this.nameStart;
    const ends = this.nameEnd;
    for (let node = 0; node < this.nodes; node++) if (place[node] > 0) nameStart[place[node] + 1] = ends[node] - starts[node];
    for (let n = 1; n < count; n++) nameStart[n + 1] += nameStart[n];
    const names = Buffer.allocUnsafe(nameStart[count]);
    for (let node = 0; node < this.nodes; node++) {
      const n = place[node];
      if (n === 0) continue;
      const pool = this.pools[this.namePool[node]];
      const end = ends[node];
      // Names are short: a byte loop beats a Buffer.copy call per name.
      for (let i = starts[node], at = nameStart[n]; i < end; i++, at++) names[at] = pool[i];
    }
    return names;
  }

  /**
   * The nodes the root reaches, breadth-first, children sorted by name: `order[n]` is the
   * building row of final node n. Lets go of the hash and the parent and directory columns on
   * the way (collected at once for a big tree, before the next columns are allocated).
   */
  private breadthFirst(big: boolean): { order: Int32Array; childFirst: Int32Array; childCount: Int32Array; parents: Int32Array; count: number } {
    // Every live row is a (parent, child) edge: group them by parent (counting sort).
    const firstEdge = new Int32Array(this.nodes + 1);
    const edges = this.groupEdges(firstEdge);
    this.slotKey = this.slotVal = this.parent = new Int32Array(0);
    this.flags = new Uint8Array(0);
    if (big) collectGarbage();
    const order = new Int32Array(edges.length + 1);
    const childFirst = new Int32Array(order.length);
    const childCount = new Int32Array(order.length);
    const parents = new Int32Array(order.length);
    let count = 1;
    order[0] = this.root;
    parents[0] = -1;
    for (let n = 0; n < count; n++) {
      const node = order[n];
      const from = firstEdge[node];
      const to = firstEdge[node + 1];
      if (to - from > 1) this.sortByName(edges, from, to);
      childFirst[n] = count;
      childCount[n] = to - from;
      for (let k = from; k < to; k++) {
        order[count] = edges[k];
        parents[count++] = n;
      }
    }
    // The heads (the parent column's memory) and the sort's scratch are done with: let go, so
    // that they do not sit beside the final columns at the build's peak.
    this.head = new Uint32Array(0);
    this.sortKeys = new Float64Array(0);
    this.sortIds = new Int32Array(0);
    return { order, childFirst, childCount, parents, count };
  }

  /** Sorts edges[from, to) by name. */
  private sortByName(edges: Int32Array, from: number, to: number): void {
    // Often in order already: edges come in creation order, and many tars list a directory
    // sorted. Checking allocates nothing, sorting does.
    let k = from + 1;
    while (k < to && this.compareNames(edges[k - 1], edges[k]) < 0) k++;
    if (k === to) return;
    if (to - from > this.sortKeys.length) {
      this.sortKeys = new Float64Array(to - from);
      this.sortIds = new Int32Array(to - from);
    }
    this.sortRun(edges, from, to, 0, from);
  }

  /**
   * Sorts edges[from, to), whose names agree on their first `depth` bytes. A comparison reads
   * two names at random places of the layers' paths (a cache miss each); the digit sort
   * (sortByDigits) reads each name once per 4 bytes it looks at.
   */
  private sortRun(edges: Int32Array, from: number, to: number, depth: number, base: number): void {
    if (to - from <= FEW_TO_SORT) {
      for (let i = from + 1; i < to; i++) {
        const x = edges[i];
        let j = i;
        for (; j > from && this.compareNames(edges[j - 1], x) > 0; j--) edges[j] = edges[j - 1];
        edges[j] = x;
      }
    } else if (to - from > PLACES || depth >= DEEPEST_DIGIT || !this.anyLonger(edges, from, to, depth)) {
      // Too many for a key, or names alike this far (long shared prefixes, or zero bytes where
      // others end): compared whole.
      edges.subarray(from, to).sort((a, b) => this.compareNames(a, b));
    } else {
      this.sortByDigits(edges, from, to, depth, base);
    }
  }

  /**
   * Sorts edges[from, to) by the 4 name bytes from `depth` (big-endian, a name that ends there
   * padded with zeros, which keeps a prefix first) with the native numeric sort, each key being
   * digit * PLACES + the edge's place; then each run of one digit by the next 4 bytes. The
   * scratch columns are indexed from `base`, where the directory's edges start, so a run's
   * own sort overwrites only that run's part.
   */
  private sortByDigits(edges: Int32Array, from: number, to: number, depth: number, base: number): void {
    const keys = this.sortKeys;
    const ids = this.sortIds;
    const off = from - base;
    const m = to - from;
    for (let j = 0; j < m; j++) {
      const id = edges[from + j];
      ids[off + j] = id;
      keys[off + j] = (depth === 0 ? this.head[id] : this.digit(id, depth)) * PLACES + j;
    }
    keys.subarray(off, off + m).sort();
    for (let j = 0; j < m; j++) {
      // Not `key % PLACES`: on a double that is a call to fmod.
      const key = keys[off + j];
      const digit = Math.floor(key / PLACES);
      edges[from + j] = ids[off + key - digit * PLACES];
      keys[off + j] = digit;
    }
    for (let j = 0; j < m; ) {
      let r = j + 1;
      while (r < m && keys[off + r] === keys[off + j]) r++;
      if (r - j > 1) this.sortRun(edges, from + j, from + r, depth + 4, base);
      j = r;
    }
  }

  /** Name bytes depth..depth+3 of `node` as one number, zeros past its end. */
  private digit(node: number, depth: number): number {
    const pool = this.pools[this.namePool[node]];
    const at = this.nameStart[node] + depth;
    const end = this.nameEnd[node];
    let d = 0;
    for (let i = at; i < at + 4; i++) d = d * 256 + (i < end ? pool[i] : 0);
    return d;
  }

  /** Whether some name of edges[from, to) is longer than `depth` bytes. */
  private anyLonger(edges: Int32Array, from: number, to: number, depth: number): boolean {
    for (let k = from; k < to; k++) if (this.nameEnd[edges[k]] - this.nameStart[edges[k]] > depth) return true;
    return false;
  }

  /**
   * The live (parent, child) edges grouped by parent, each group in creation order (the order
   * a layer's tar listed them in): `firstEdge[p]` is where parent p's start. On the way, each
   * live row's first 4 name bytes (its digit at depth 0) go to `head`, in the parent column's
   * memory (a row's parent is read just before): read in row order, which is about the order
   * the layers' paths lie in, so that the sort compares most names without reading them at
   * random.
   */
  private groupEdges(firstEdge: Int32Array): Int32Array {
    const { parent, flags, nodes } = this;
    for (let n = 0; n < nodes; n++) if (flags[n] & LIVE) firstEdge[parent[n] + 1]++;
    for (let n = 0; n < nodes; n++) firstEdge[n + 1] += firstEdge[n];
    const edges = new Int32Array(firstEdge[nodes]);
    const head = new Uint32Array(parent.buffer, parent.byteOffset, nodes);
    // Each parent's start is used as its fill pointer, then put back (one column fewer at the peak).
    for (let n = 0; n < nodes; n++) {
      if (!(flags[n] & LIVE)) continue;
      edges[firstEdge[parent[n]]++] = n;
      head[n] = this.digit(n, 0);
    }
    firstEdge.copyWithin(1, 0, nodes);
    firstEdge[0] = 0;
    this.head = head;
    return edges;
  }

  /** Byte order of two live rows' names (heads first: valid once groupEdges has run). */
  private compareNames(a: number, b: number): number {
    const ha = this.head[a];
    const hb = this.head[b];
    return ha !== hb ? ha - hb : this.compareBytes(a, b);
  }

  private compareBytes(a: number, b: number): number {
    const pa = this.pools[this.namePool[a]];
    const pb = this.pools[this.namePool[b]];
    const ae = this.nameEnd[a];
    const be = this.nameEnd[b];
    for (let i = this.nameStart[a], j = this.nameStart[b]; ; i++, j++) {
      if (i === ae) return j === be ? 0 : -1;
      if (j === be) return 1;
      const d = pa[i] - pb[j];
      if (d !== 0) return d;
    }
  }
}

/** FNV-1a of the name bytes, mixed with the parent's row. */
function hashBytes(parent: number, pool: Buffer, s: number, e: number): number {
  let h = Math.imul(0x811c9dc5 ^ parent, 0x01000193);
  for (let k = s; k < e; k++) h = Math.imul(h ^ pool[k], 0x01000193);
  return (h ^ (h >>> 15)) >>> 0;
}
