/*
 * A minimal server on the project's native fork with the answer cache on, for
 * test/native-fastpath.test.ts's teardown check (run under valgrind there): serves `/f`, a
 * span of FILE read natively, at MOUNTPOINT; prints "ready" once mounted. On SIGTERM it closes
 * its own descriptor of FILE, unmounts, waits for the native side's FUSE thread to tear down
 * (the listings freed, the span files' descriptors closed, the channels destroyed), prints
 * "torn down" with the counters and exits. OCIMOUNT_FUSE_CACHE_DIRS=0 leaves the channel
 * wrapper out. Run it as a child process: I/O on a mount from the process serving it deadlocks.
 *
 * Usage: fastpath-teardown-server MOUNTPOINT FILE
 */
import * as fs from 'node:fs';
import { loadFuse, type FuseInstance } from '../../src/fuse/mount';
import { statArray } from '../../src/fuse/ops';
import { EntryType } from '../../src/tar/entry';

type Cb = (...args: any[]) => void;
const [mnt, file] = process.argv.slice(2);
const fd = fs.openSync(file, 'r');
const st = fs.fstatSync(fd, { bigint: true });
const size = Number(st.size);
const split = (ns: bigint) => [ns / 1_000_000_000n, ns % 1_000_000_000n];
const stamp = BigInt64Array.from([st.dev, st.ino, st.size, ...split(st.mtimeNs), ...split(st.ctimeNs), st.nlink]);
const stat = (dir: boolean, ino: number, span?: { offset: number; id: number }) =>
  statArray({ ino, mode: dir ? 0o40755 : 0o100644, type: dir ? EntryType.Directory : EntryType.File, uid: 0, gid: 0, size: dir ? 0 : size, mtime: 1_700_000_000, mtimeNsec: 5, nlink: 1, devmajor: 0, devminor: 0 } as never, span);

const Fuse = loadFuse();
let id = 0;
const ops: Record<string, Cb> = {
  init: (cb: Cb) => cb(0),
  getattr: (p: string, cb: Cb) => (p === '/' ? cb(0, stat(true, 1)) : p === '/f' ? cb(0, stat(false, 2)) : cb(-2)),
  readdir: (_p: string, cb: Cb) => {
    id ||= fuse.spanFile(fd, stamp);
    cb(0, ['.', '..', 'f'], [stat(true, 1), stat(true, 1), stat(false, 2, { offset: 0, id })]);
  },
  open: (_p: string, _f: number, cb: Cb) => cb(-38),
  read: (_p: string, _fd: number, _buf: Buffer, _len: number, _pos: number, cb: Cb) => cb(-5), // only the native side reads
};
const fuse = new Fuse(mnt, ops, { dirCacheBytes: 1 << 20, cacheDirs: process.env.OCIMOUNT_FUSE_CACHE_DIRS !== '0', fsname: 'fastpath-teardown,ro' }) as FuseInstance & { counters(): Record<string, number> };
fuse.mount((err: Error | null) => {
  if (err) {
    process.stderr.write(`mount: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => {
  fs.closeSync(fd);
  fuse.unmount(() => {
    // The FUSE thread leaves its loop once the kernel drops the connection; then it tears down.
    const started = Date.now();
    const wait = () => {
      const c = fuse.counters();
      if (c.cachedListings === 0 || Date.now() - started > 20_000) {
        process.stdout.write(`torn down ${JSON.stringify(c)}\n`);
        process.exit(0);
      }
      setTimeout(wait, 100);
    };
    wait();
  });
});
