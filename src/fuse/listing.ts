import { EntryType, statMode } from '../tar/entry';
import type { Tree } from '../union/tree';

/*
 * Directory listings in the packed form the native side takes for readdir
 * (native/fuse/fuse-native.c, readdir_packed): one buffer of the names, each ended by a NUL
 * byte, and one Uint32Array of SPAN_STAT_WORDS words per name. A tree's listing is written
 * straight from its columns, with no object per child: a first `find` over two million entries
 * lists every directory once, and per-child objects were most of its time and of the server's
 * memory growth.
 */

/** Number of uint32 words in a stat array. */
export const STAT_WORDS = 21;

/**
 * A stat array with the file's bytes as a span: words 21-22 their offset in the archive, word
 * 23 the id the native side gave the archive file (OpsOptions.spanFile). The native side then
 * answers this file's reads itself (a pread of its own duplicate of the descriptor, checked
 * with an fstat against the stamp the file was indexed with), without a hop onto the JS thread.
 */
export const SPAN_STAT_WORDS = 24;

/** st_rdev the way glibc's makedev packs it. */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)) >>> 0;
}

/** Two words, low then high; a negative number comes out as its two's complement. */
function put64(a: Uint32Array, i: number, n: number): void {
  // Nearly every size, block count and time fits one word: skip the two divisions (a first
  // `find` of 2M entries writes ~10M of these while priming).
  if (n >= 0 && n < 4294967296) {
    a[i] = n;
    a[i + 1] = 0;
    return;
  }
  const low = ((n % 4294967296) + 4294967296) % 4294967296;
  a[i] = low;
  a[i + 1] = (n - low) / 4294967296; // the Uint32Array stores -1 as 0xffffffff
}

/**
 * Writes one stat array at word `at` of `a`, the only stat layout in the project (read by
 * populate_stat in native/fuse/fuse-native.c for getattr, fgetattr and each readdir entry):
 *   0 mode, 1 uid, 2 gid, 3-4 size (low, high), 5 dev, 6 nlink, 7 ino, 8 rdev, 9 blksize,
 *   10-11 blocks (low, high), 12-13 atime seconds (signed 64-bit, two's complement, low then
 *   high), 14 atime nanoseconds, 15-16 + 17 mtime, 18-19 + 20 ctime.
 * atime and ctime are the mtime: an image records only that.
 */
export function writeStat(a: Uint32Array, at: number, mode: number, uid: number, gid: number, size: number, nlink: number, ino: number, rdev: number, sec: number, nsec: number): void {
  a[at] = mode;
  a[at + 1] = uid;
  a[at + 2] = gid;
  put64(a, at + 3, size);
  a[at + 5] = 0;
  a[at + 6] = nlink;
  a[at + 7] = ino;
  a[at + 8] = rdev;
  a[at + 9] = 4096;
  put64(a, at + 10, Math.ceil(size / 512));
  for (let i = at + 12; i <= at + 18; i += 3) {
    put64(a, i, sec);
    a[i + 2] = nsec;
  }
}

/** A listing as the native side takes it; `count` names, `.` and `..` included. */
export interface PackedListing {
  names: Buffer;
  stats: Uint32Array;
  count: number;
}

/**
 * Where one layer's bytes sit in an archive file the native side reads (its id), or null when
 * its files can not be served as spans (a compressed layer, no native reads, a changed file).
 */
export interface LayerSpan {
  /** The layer stream's offset in the archive file. */
  start: number;
  /** The native side's id for the archive file (never 0). */
  id: number;
  /** The layer stream's size: a member's data past it is no plain run. */
  streamSize: number;
}

/** Names FUSE tools can take: at most 255 bytes (the longest most tools handle), no NUL byte. */
const NAME_MAX = 255;

/**
 * The listing of directory `dir` of `tree` shown at inode base `inoBase`: `.` and `..` (both with
 * `self`, the directory's own stat words), then the children in tree order, each with the stat
 * Tree.stat gives it (inode `inoBase + object + 1`) and, for a plain file of a layer
 * `layerSpan` gives a span for, its span. A name over 255 bytes is left out and `skipped` told.
 */
export function packTree(tree: Tree, dir: number, inoBase: number, self: Uint32Array, layerSpan: (slot: number) => LayerSpan | null, skipped: (bytes: number) => void): PackedListing {
  const first = tree.childFirst[dir];
  const kids = tree.childCount[dir];
  let nameBytes = 5; // ".\0..\0"
  for (let n = first; n < first + kids; n++) nameBytes += tree.nameLength(n) + 1;
  const names = Buffer.allocUnsafe(nameBytes);
  const stats = new Uint32Array((kids + 2) * SPAN_STAT_WORDS);
  names.write('.\0..\0', 0, 'latin1');
  stats.set(self.subarray(0, Math.min(self.length, SPAN_STAT_WORDS)), 0);
  stats.set(self.subarray(0, Math.min(self.length, SPAN_STAT_WORDS)), SPAN_STAT_WORDS);
  let at = 5;
  let count = 2;
  // Each layer's span, asked once per listing rather than once per file.
  const spans: Array<LayerSpan | null | undefined> = [];
  for (let n = first; n < first + kids; n++) {
    const len = tree.nameLength(n);
    if (len > NAME_MAX) {
      skipped(len);
      continue;
    }
    const start = at;
    at += tree.copyName(n, names, at);
    let nul = false;
    for (let k = start; k < at; k++) if (names[k] === 0) nul = true;
    if (nul) {
      at = start; // a NUL inside the name: no tool could ask for it (the native side skips it too)
      continue;
    }
    names[at++] = 0;
    writeChild(tree, n, inoBase, stats, count * SPAN_STAT_WORDS, spans, layerSpan);
    count++;
  }
  return { names: names.subarray(0, at), stats: stats.subarray(0, count * SPAN_STAT_WORDS), count };
}

/** Child `node`'s stat words (as Tree.stat and statArray give them) and span, at word `w`. */
function writeChild(tree: Tree, node: number, inoBase: number, a: Uint32Array, w: number, spans: Array<LayerSpan | null | undefined>, layerSpan: (slot: number) => LayerSpan | null): void {
  const obj = tree.nodeObj[node];
  const entry = tree.objEntry[obj];
  const ino = inoBase + obj + 1;
  if (entry < 0) {
    writeStat(a, w, statMode(EntryType.Directory, 0o755), 0, 0, 0, tree.dirLinks(node), ino, 0, 0, 0);
    return;
  }
  const slot = tree.objLayer[obj];
  const idx = tree.layers[slot];
  const stored = idx.types[entry] as EntryType;
  // A hard link node takes its target's identity; the target is always a non-directory.
  const type = stored === EntryType.HardLink ? EntryType.File : stored;
  const x = type === EntryType.File || type === EntryType.Directory || idx.extras.size === 0 ? undefined : idx.extras.get(entry);
  const size = type === EntryType.File ? idx.sizes[entry] : type === EntryType.Symlink ? (x?.linkname ?? '').length : 0;
  const rdev = type === EntryType.CharDevice || type === EntryType.BlockDevice ? makedev(x?.devmajor ?? 0, x?.devminor ?? 0) : 0;
  writeStat(
    a, w,
    // Linux symlinks have no permissions of their own: lstat always says 0777.
    statMode(type, type === EntryType.Symlink ? 0o777 : idx.modes[entry]),
    idx.uids[entry], idx.gids[entry], size,
    type === EntryType.Directory ? tree.dirLinks(node) : tree.objNlink[obj],
    ino, rdev, idx.mtimes[entry], idx.mtimeNsecs[entry],
  );
  if (type !== EntryType.File) return;
  // A plain run of an uncompressed layer (engine.ts, plainRun): not sparse, all inside the stream.
  let span = spans[slot];
  if (span === undefined) span = spans[slot] = layerSpan(slot);
  if (!span) return;
  const offset = idx.dataOffsets[entry];
  if (offset + size > span.streamSize) return;
  if (idx.hasSparse() && idx.extras.get(entry)?.sparse) return;
  put64(a, w + 21, span.start + offset);
  a[w + 23] = span.id;
}

/** The packed form of a listing given as names and stat arrays (the virtual directories). */
export function packEntries(entries: ReadonlyArray<{ name: string; stat: Uint32Array }>): PackedListing {
  const names = Buffer.from(entries.map((e) => `${e.name}\0`).join(''), 'latin1');
  const stats = new Uint32Array(entries.length * SPAN_STAT_WORDS);
  entries.forEach((e, i) => stats.set(e.stat.subarray(0, SPAN_STAT_WORDS), i * SPAN_STAT_WORDS));
  return { names, stats, count: entries.length };
}
