import type { ImageView } from '../engine';
import { EntryType } from '../tar/entry';
import type { NodeStat } from '../union/tree';
import type { Namespace, Resolved } from './namespace';

/** errno values as fuse-native wants them (negative). */
export const E = { ENOENT: -2, EIO: -5, EBADF: -9, EACCES: -13, EISDIR: -21, EINVAL: -22, EROFS: -30, ENODATA: -61, ERANGE: -34 };

type Cb = (...args: any[]) => void;

export interface OpsOptions {
  log: (message: string) => void;
}

/** st_rdev the way glibc's makedev packs it. */
function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)) >>> 0;
}

function toFuseStat(st: NodeStat): Record<string, unknown> {
  const ms = st.mtime * 1000;
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    nlink: st.nlink,
    ino: st.ino,
    rdev: st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice ? makedev(st.devmajor, st.devminor) : 0,
    blksize: 4096,
    blocks: Math.ceil(st.size / 512),
    mtime: ms,
    atime: ms,
    ctime: ms,
  };
}

/**
 * The fuse-native operation table over a Namespace. Every handler answers exactly once, also
 * when something throws: an unanswered request would hang its reader until fuse-native's
 * timeout. Reads fail with EIO for that file only and say why in the log.
 */
export function makeOps(ns: Namespace, view: ImageView, opts: OpsOptions): Record<string, Cb> {
  const handles = new Map<number, Resolved>();
  let nextHandle = 1;

  const guard = (name: string, fn: (...args: any[]) => void, onError: (cb: Cb) => void) =>
    (...args: any[]) => {
      const cb = args[args.length - 1] as Cb;
      try {
        fn(...args);
      } catch (err) {
        opts.log(`${name} ${String(args[0])}: ${(err as Error).message}`);
        onError(cb);
      }
    };
  const fail = (errno: number) => (cb: Cb) => cb(errno);
  const readOnly = (cb: Cb) => cb(E.EROFS);

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
      cb(0, toFuseStat(ns.stat(r)));
    }, fail(E.EIO)),
    fgetattr: guard('fgetattr', (path: string, fd: number, cb: Cb) => {
      const r = handles.get(fd) ?? ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      cb(0, toFuseStat(ns.stat(r)));
    }, fail(E.EIO)),
    access: guard('access', (path: string, mode: number, cb: Cb) => {
      if (!ns.resolve(path)) return cb(E.ENOENT);
      cb(mode & 2 ? E.EROFS : 0);
    }, fail(E.EIO)),
    readlink: guard('readlink', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const target = r.kind === 'tree' ? r.space.tree().symlinkTarget(r.node) : r.entry.target;
      if (target === undefined) return cb(E.EINVAL);
      cb(0, target);
    }, fail(E.EIO)),
    opendir: guard('opendir', (path: string, _flags: number, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const fd = nextHandle++;
      handles.set(fd, r);
      cb(0, fd);
    }, fail(E.EIO)),
    releasedir: guard('releasedir', (_path: string, fd: number, cb: Cb) => {
      handles.delete(fd);
      cb(0);
    }, fail(0)),
    readdir: guard('readdir', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      // Stats ride along with the names so `find` and `ls -l` need no getattr per entry.
      // A name over 255 bytes can never be looked up, and one over the kernel's 1024-byte limit
      // would fail the whole listing: leave those out, and say so.
      const children = ns.list(r).filter((c) => {
        if (Buffer.byteLength(c.name) <= 255) return true;
        opts.log(`readdir ${path}: left out a ${Buffer.byteLength(c.name)}-byte name (longer than 255)`);
        return false;
      });
      const names = ['.', '..', ...children.map((c) => c.name)];
      const self = toFuseStat(ns.stat(r));
      const stats = [self, self, ...children.map((c) => toFuseStat(ns.stat(c.entry)))];
      cb(0, names, stats);
    }, fail(E.EIO)),
    open: guard('open', (path: string, flags: number, cb: Cb) => {
      if ((flags & 3) !== 0 || flags & 0o1000 /* O_TRUNC */) return cb(E.EROFS);
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const fd = nextHandle++;
      handles.set(fd, r);
      cb(0, fd);
    }, fail(E.EIO)),
    release: guard('release', (_path: string, fd: number, cb: Cb) => {
      handles.delete(fd);
      cb(0);
    }, fail(0)),
    read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      let r: Resolved | undefined;
      try {
        r = handles.get(fd) ?? ns.resolve(path);
        if (!r) return cb(E.ENOENT);
        if (r.kind === 'virtual') {
          const content = r.entry.content;
          if (!content) return cb(E.EISDIR);
          const n = pos >= content.length ? 0 : content.copy(buf, 0, pos, Math.min(content.length, pos + len));
          return cb(n);
        }
        view.read(r.space.tree(), r.node, buf, 0, len, pos).then(
          (n) => cb(n),
          (err: Error) => {
            opts.log(`read ${path} at ${pos}: ${err.message}`);
            cb(E.EIO);
          },
        );
      } catch (err) {
        opts.log(`read ${path}: ${(err as Error).message}`);
        cb(E.EIO);
      }
    },
    listxattr: guard('listxattr', (path: string, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      cb(0, r.kind === 'tree' ? Object.keys(r.space.tree().xattrs(r.node)) : []);
    }, fail(E.EIO)),
    getxattr: guard('getxattr', (path: string, name: string, _position: number, cb: Cb) => {
      const r = ns.resolve(path);
      if (!r) return cb(E.ENOENT);
      const value = r.kind === 'tree' ? r.space.tree().xattrs(r.node)[name] : undefined;
      if (!value) return cb(E.ENODATA);
      cb(0, value);
    }, fail(E.EIO)),
  };
  // Writes: the kernel already refuses them on a `ro` mount; answering EROFS here as well keeps
  // that true if the option were ever lost.
  for (const name of ['write', 'create', 'mkdir', 'mknod', 'unlink', 'rmdir', 'rename', 'link', 'symlink', 'chmod', 'chown', 'truncate', 'ftruncate', 'utimens', 'setxattr', 'removexattr', 'fsync', 'flush']) {
    ops[name] = (...args: any[]) => {
      const cb = args[args.length - 1] as Cb;
      if (name === 'flush' || name === 'fsync') return cb(0);
      if (name === 'write') return cb(E.EROFS);
      readOnly(cb);
    };
  }
  return ops;
}
