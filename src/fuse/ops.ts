import * as os from 'node:os';
import * as fs from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { ImageView } from '../engine';
import type { FileSource } from '../io/byte-source';
import { EntryType } from '../tar/entry';
import type { NodeStat, Tree } from '../union/tree';
import type { Namespace, Resolved, TreeSpace } from './namespace';
import { displayName } from '../names';
import { makedev, packEntries, packTree, SPAN_STAT_WORDS, STAT_WORDS, writeStat, type LayerSpan, type PackedListing } from './listing';

const { errno } = os.constants;

/** errno values as the native side wants them: negative, from Node's table for this platform. */
export const E = {
  ENOENT: -errno.ENOENT,
  EIO: -errno.EIO,
  EBADF: -errno.EBADF,
  EACCES: -errno.EACCES,
  EISDIR: -errno.EISDIR,
  EINVAL: -errno.EINVAL,
  EROFS: -errno.EROFS,
  ENODATA: -errno.ENODATA,
  ERANGE: -errno.ERANGE,
};

type Cb = (...args: any[]) => void;

export interface OpsOptions {
  log: (message: string) => void;
  /**
   * Give the native side each plain file's byte span with its listing (it then reads them
   * itself): registers an archive file with the native side (its descriptor and the stamp it was
   * indexed with, FileSource.identity) and returns the id listings name it by, or 0 when the
   * native side will not read it.
   */
  spanFile?: (file: FileSource) => number;
  /**
   * Caches a directory's listing in the native answer cache before the kernel asks for it
   * (Fuse.prime); false when it was not taken (no answer cache, unmounting).
   */
  prime?: (path: string, listing: PackedListing) => boolean;
  /** How many directory entries (names with their stats) to keep ready for readdir. */
  readdirCacheEntries?: number;
}

/** A path the kernel read from: what it resolved to, and where its bytes sit when they are one plain run. */
interface ReadTarget {
  resolved: Resolved;
  span?: { file: FileSource; offset: number; size: number };
}

/**
 * The file and byte range holding a node's content, when it is one plain run of an
 * uncompressed archive (not sparse, not compressed): reads are then served with one `fs.read`
 * each (or by the native side) instead of going through the layer's stream. `check` compares the
 * archive with what was indexed first; a directory listing checks once for all its files.
 */
function fileSpan(view: ImageView, tree: Tree, node: number, check = true): ReadTarget['span'] {
  const run = view.plainRun(tree, node);
  const range = run?.stream.fileRange?.();
  if (!run || !range) return undefined;
  if (check) range.file.verifyUnchanged();
  return { file: range.file, offset: range.start + run.offset, size: run.size };
}

/** How many directory entries one priming window lists ahead (about 6 MiB of the 64 MiB native answer cache). */
const PRIME_ENTRIES = 30_000;
/** How many entries are primed before the JS thread is let go to other requests (a few ms). */
const PRIME_SLICE = 2_000;

/** The directory after `node` in a depth-first walk of `tree` in name order, or -1 at the end. */
export function nextDirectory(tree: Tree, node: number): number {
  const firstDir = (from: number, to: number) => {
    for (let n = from; n < to; n++) if (tree.type(n) === EntryType.Directory) return n;
    return -1;
  };
  const below = firstDir(tree.childFirst[node], tree.childFirst[node] + tree.childCount[node]);
  if (below >= 0) return below;
  for (let n = node; n > 0; n = tree.parent[n]) {
    const p = tree.parent[n];
    const sibling = firstDir(n + 1, tree.childFirst[p] + tree.childCount[p]);
    if (sibling >= 0) return sibling;
  }
  return -1;
}

/** A path inside a tree (`a/b`, '' for its root) as the kernel names it below the tree's root path. */
function joinKernelPath(rootPath: string, rel: string): string {
  if (rel === '') return rootPath;
  return rootPath === '/' ? `/${rel}` : `${rootPath}/${rel}`;
}

/** How many paths `read` keeps resolved (reads arrive by path: opens are not sent, see `open`). */
const READ_TARGETS = 64;

export { STAT_WORDS, SPAN_STAT_WORDS } from './listing';

export function statArray(st: NodeStat, span?: { offset: number; id: number }): Uint32Array {
  const a = new Uint32Array(span ? SPAN_STAT_WORDS : STAT_WORDS);
  const rdev = st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice ? makedev(st.devmajor, st.devminor) : 0;
  writeStat(a, 0, st.mode, st.uid, st.gid, st.size, st.nlink, st.ino, rdev, st.mtime, st.mtimeNsec);
  if (span) {
    a[21] = span.offset % 4294967296;
    a[22] = Math.floor(span.offset / 4294967296);
    a[23] = span.id;
  }
  return a;
}

/**
 * The operation table the native fork (native/fuse) calls, over a Namespace. Paths and names
 * are byte strings (names.ts). Every handler answers exactly once, also when something throws:
 * an unanswered request would hang its reader until the per-operation timeout. Reads fail with
 * EIO for that file only and say why in the log.
 */
export function makeOps(ns: Namespace, view: ImageView, opts: OpsOptions): Record<string, Cb> {
  // Reads arrive by path (fh 0): the last few paths stay resolved, so a file read in many
  // requests (a cat) resolves once.
  const readTargets = new Map<string, ReadTarget>();
  const spanOf = (r: Resolved, check = true) => (r.kind === 'tree' ? fileSpan(view, r.space.tree(), r.node, check) : undefined);
  const readTarget = (path: string): ReadTarget | undefined => {
    let t = readTargets.get(path);
    if (t) return t;
    const resolved = ns.resolve(path);
    if (!resolved) return undefined;
    t = { resolved, span: spanOf(resolved) };
    readTargets.set(path, t);
    if (readTargets.size > READ_TARGETS) readTargets.delete(readTargets.keys().next().value!);
    return t;
  };
  // libfuse 2 lets the kernel cache attributes and lookups but never directory listings, so a
  // second `find` lists every directory again; an image never changes, so each listing is built
  // once (names plus ready-made stat arrays) and kept.
  const readdirCache = new LRUCache<string, PackedListing>({
    maxSize: opts.readdirCacheEntries ?? 2_000_000,
    sizeCalculation: (v) => v.count + 1,
  });

  const guard = (name: string, fn: (...args: any[]) => void, onError: (cb: Cb) => void) =>
    (...args: any[]) => {
      const cb = args[args.length - 1] as Cb;
      try {
        fn(...args);
      } catch (err) {
        opts.log(`${name} ${displayName(String(args[0]))}: ${(err as Error).message}`);
        onError(cb);
      }
    };
  const fail = (errno: number) => (cb: Cb) => cb(errno);
  const readOnly = (cb: Cb) => cb(E.EROFS);
  const keyOf = (r: Resolved) => (r.kind === 'tree' ? `${r.space.inoBase}:${r.node}` : `v${r.entry.ino}`);

  // Each archive file is registered with the native side once, after one more check that it
  // is still the file that was indexed; the native side then checks every read it serves
  // against that same stamp (each layer of an OCI layout is a file of its own).
  const spanIds = new Map<FileSource, number>();
  const spanId = (file: FileSource): number => {
    let id = spanIds.get(file);
    if (id === undefined) {
      id = file.verifyUnchanged() ? 0 : opts.spanFile!(file);
      spanIds.set(file, id);
    }
    return id;
  };

  // Per layer: where its plain files' bytes are for the native side (null: not served there).
  const layerSpans = new Map<number, LayerSpan | null>();
  const layerSpan = (slot: number): LayerSpan | null => {
    let span = layerSpans.get(slot);
    if (span === undefined) {
      const stream = view.layers[slot].stream;
      const range = opts.spanFile ? stream.fileRange?.() : undefined;
      const id = range ? spanId(range.file) : 0;
      span = id ? { start: range!.start, id, streamSize: stream.size } : null;
      layerSpans.set(slot, span);
    }
    return span;
  };
  // A name over 255 bytes breaks most tools that meet it (it can still be opened by its exact
  // name, up to FUSE's 1,024): list none, and say so. Names are byte strings, so their length is
  // their size in bytes.
  const skipped = (bytes: number) => opts.log(`readdir: left out a ${bytes}-byte name (longer than 255)`);
  // A child of a virtual directory that is a tree's root (a layer view) is stat'ed from its
  // tree, which a layer view builds on first use (and may fail to: its paths could not be read
  // back, ImageView.releaseLayerPaths). Then that one entry is listed as a bare directory and
  // fails on its own when entered, instead of failing the whole listing of layers/.
  const childStat = (entry: Resolved): NodeStat => {
    try {
      return ns.stat(entry);
    } catch (err) {
      if (entry.kind !== 'tree') throw err;
      opts.log(`listing a layer view: ${(err as Error).message}`);
      return { ino: entry.space.inoBase + 1, mode: 0o40555, type: EntryType.Directory, uid: 0, gid: 0, size: 0, mtime: ns.mtime, mtimeNsec: 0, nlink: 2, devmajor: 0, devminor: 0 };
    }
  };
  const listing = (r: Resolved): PackedListing => {
    const key = keyOf(r);
    let hit = readdirCache.get(key);
    if (!hit) {
      const self = statArray(ns.stat(r));
      if (r.kind === 'tree') {
        // Straight from the tree's columns: no object per child (listing.ts).
        hit = packTree(r.space.tree(), r.node, r.space.inoBase, self, layerSpan, skipped);
      } else {
        const children = ns.list(r).filter((c) => c.name.length <= 255 || (skipped(c.name.length), false));
        hit = packEntries([{ name: '.', stat: self }, { name: '..', stat: self }, ...children.map((c) => ({ name: c.name, stat: statArray(childStat(c.entry)) }))]);
      }
      readdirCache.set(key, hit);
    }
    return hit;
  };

  // Priming: after JS lists a directory, the directories that follow it in a depth-first walk
  // (its own subdirectories first, then its next siblings', then its parent's, in name order, the
  // order `find`, `ls -R` and `grep -r` walk in) are listed into the native answer cache ahead
  // of the kernel's requests, PRIME_ENTRIES entries at a time, in slices that leave the JS thread
  // free in between. Their READDIRs and LOOKUPs are then answered on libfuse's threads: a first
  // `find` of 2M entries reaches JS about once per PRIME_ENTRIES entries instead of once per
  // directory (~120,000 hops of ~100 µs each, more under load). A READDIR that still reaches JS
  // (priming fell behind, or the listing was evicted) restarts the window after that directory.
  let cursor: { space: TreeSpace; node: number; rootPath: string } | undefined;
  let primeLeft = 0;
  let pumping = false;
  const pump = () => {
    pumping = false;
    for (let done = 0; cursor && primeLeft > 0 && done < PRIME_SLICE; ) {
      const { space, node, rootPath } = cursor;
      const tree = space.tree();
      const self = statArray(ns.stat({ kind: 'tree', space, node }));
      const packed = packTree(tree, node, space.inoBase, self, layerSpan, skipped);
      if (!opts.prime!(joinKernelPath(rootPath, tree.path(node)), packed)) {
        cursor = undefined;
        break;
      }
      done += packed.count;
      primeLeft -= packed.count;
      const next = nextDirectory(tree, node);
      cursor = next < 0 ? undefined : { space, node: next, rootPath };
    }
    if (cursor && primeLeft > 0) {
      pumping = true;
      setImmediate(pumpSafely);
    }
  };
  // Priming is only ahead-of-time work: a failure ends it (and is logged); requests go to JS as before.
  const pumpSafely = () => {
    try {
      pump();
    } catch (err) {
      cursor = undefined;
      pumping = false;
      opts.log(`priming listings: ${(err as Error).message}`);
    }
  };
  const primeAfter = (path: string, r: Resolved) => {
    if (!opts.prime || r.kind !== 'tree') return;
    const tree = r.space.tree();
    const next = nextDirectory(tree, r.node);
    if (next < 0) return;
    // The kernel's path of the tree's root: `path` less this directory's path inside the tree.
    const rootPath = r.node === 0 ? path : path.slice(0, path.length - tree.path(r.node).length - 1) || '/';
    cursor = { space: r.space, node: next, rootPath };
    primeLeft = PRIME_ENTRIES;
    if (!pumping) {
      pumping = true;
      setImmediate(pumpSafely);
    }
  };

  const totalSize = view.layers.reduce((sum, l) => sum + l.storedSize, 0);
  const ops: Record<string, Cb> = {
    init: (cb: Cb) => cb(0),
    statfs: guard('statfs', (_path: string, cb: Cb) => {
      const bsize = 4096;
      cb(0, {
        bsize,
        frsize: bsize,
        blocks: Math.ceil(totalSize / bsize),
        bfree: 0,
        bavail: 0,
        files: view.merged.nodeCount,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: 1, // ST_RDONLY
        namemax: 255,
      });
    }, fail(E.EIO)),
    getattr: guard('getattr', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      cb(0, statArray(ns.stat(r)));
    }, fail(E.EIO)),
    fgetattr: guard('fgetattr', (path: string, _fd: number, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      cb(0, statArray(ns.stat(r)));
    }, fail(E.EIO)),
    access: guard('access', (path: string, mode: number, cb: Cb) => {
      if (!ns.resolve(path)) return cb(E.ENOENT);
      cb(mode & 2 ? E.EROFS : 0);
    }, fail(E.EIO)),
    readlink: guard('readlink', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const target = ns.symlinkTarget(r);
      if (target === undefined) return cb(E.EINVAL);
      cb(0, target);
    }, fail(E.EIO)),
    // Answered with ready-made stat arrays, which the native side takes as they are, so `find`
    // and `ls -l` need no getattr per entry and a repeated listing costs one cache lookup.
    readdir: guard('readdir', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const { names, stats } = listing(r);
      cb(0, names, stats);
      primeAfter(path, r);
    }, fail(E.EIO)),
    // Zero-message opens: ENOSYS tells the kernel (no_open) to stop sending OPEN and RELEASE for
    // the whole mount, and to keep cached pages across opens (FOPEN_KEEP_CACHE). Reads then come
    // with fh 0 and the path. Writing opens never get here: the mount is `ro`, so the kernel
    // refuses them (EROFS) itself.
    open: (_path: string, _flags: number, cb: Cb) => cb(-38),
    read: (path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      const failRead = (err: Error) => {
        opts.log(`read ${displayName(path)} at ${pos}: ${err.message}`);
        cb(E.EIO);
      };
      try {
        const target = readTarget(path);
        if (!target) return cb(E.ENOENT);
        const r = target.resolved;
        if (r.kind === 'virtual') {
          const content = r.entry.content;
          if (!content) return cb(E.EISDIR);
          return cb(pos >= content.length ? 0 : content.copy(buf, 0, pos, Math.min(content.length, pos + len)));
        }
        const span = target.span;
        if (span) {
          // The common case, kept to one fs.read: a plain file in an uncompressed archive.
          const want = Math.max(0, Math.min(len, span.size - pos));
          if (want === 0) return cb(0);
          if (span.file.stale) return failRead(new Error(span.file.stale));
          return fs.read(span.file.fd, buf, 0, want, span.offset + pos, (err, n) => {
            if (err) return failRead(err);
            if (n < want) return failRead(new Error(`${span.file.path}: archive ends early (got ${n} of ${want} bytes)`));
            const stale = span.file.verifyUnchanged(); // the bytes must come from the indexed archive
            if (stale) return failRead(new Error(stale));
            cb(n);
          });
        }
        view.read(r.space.tree(), r.node, buf, 0, len, pos).then((n) => cb(n), failRead);
      } catch (err) {
        failRead(err as Error);
      }
    },
    // Names are byte strings; the whole list or value is answered and the native side applies
    // the size protocol (size 0 asks the length, a short buffer is ERANGE).
    listxattr: guard('listxattr', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      cb(0, ns.xattrNames(r));
    }, fail(E.EIO)),
    getxattr: guard('getxattr', (path: string, name: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const value = ns.xattr(r, name);
      if (!value) return cb(E.ENODATA);
      cb(0, value);
    }, fail(E.EIO)),
  };
  // Writes: the kernel already refuses them on a `ro` mount; answering EROFS here as well keeps
  // that true if the option were ever lost.
  for (const name of ['write', 'create', 'mkdir', 'mknod', 'unlink', 'rmdir', 'rename', 'link', 'symlink', 'chmod', 'chown', 'truncate', 'ftruncate', 'utimens', 'setxattr', 'removexattr', 'fsync', 'flush']) {
    ops[name] = (...args: any[]) => {
      const cb = args[args.length - 1] as Cb;
      // FLUSH comes on every close(2) of a file, one hop each; ENOSYS makes the kernel stop
      // sending it for the whole mount (no_flush). Nothing is ever written, so nothing is lost.
      if (name === 'flush') return cb(-38);
      if (name === 'fsync') return cb(0);
      if (name === 'write') return cb(E.EROFS);
      readOnly(cb);
    };
  }
  return ops;
}
