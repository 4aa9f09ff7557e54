/*
 * A minimal server on the project's native fork serving a made-up tree of directories, for
 * test/zero-opendir.test.ts: /d000../d<DIRS-1> (ten files and a `sub` folder of three each) and
 * /big (BIG entries, so that the kernel lists it in many READDIRs). Every listing is answered by
 * JS (no answer cache), so the number of JS readdir calls per path shows how often libfuse built
 * each listing. Prints "ready" once mounted; a line "report" on stdin prints one JSON line
 * {"readdirCalls": {path: n}, "counters": {...}}; SIGTERM unmounts and exits.
 * OCIMOUNT_FUSE_ZERO_OPENDIR=0 keeps the kernel's OPENDIR/RELEASEDIR round trips.
 * Run it as a child process: I/O on a mount from the process serving it deadlocks.
 *
 * Usage: dir-tree-server MOUNTPOINT DIRS BIG
 */
import * as readline from 'node:readline';
import { loadFuse, type FuseInstance } from '../../src/fuse/mount';
import { statArray } from '../../src/fuse/ops';
import { EntryType } from '../../src/tar/entry';

type Cb = (...args: any[]) => void;
const [mnt, dirsArg, bigArg] = process.argv.slice(2);
const DIRS = Number(dirsArg);
const BIG = Number(bigArg);
const dirNames = Array.from({ length: DIRS }, (_, i) => `d${String(i).padStart(3, '0')}`);
const bigNames = Array.from({ length: BIG }, (_, i) => `entry-with-a-longish-name-${String(i).padStart(5, '0')}`);

/** The tree: directory path -> its children (name -> is a directory). */
const tree = new Map<string, Map<string, boolean>>();
tree.set('/', new Map([...dirNames.map((n) => [n, true] as const), ['big', true]]));
for (const d of dirNames) {
  tree.set(`/${d}`, new Map([...Array.from({ length: 10 }, (_, i) => [`f${i}`, false] as const), ['sub', true]]));
  tree.set(`/${d}/sub`, new Map([['a', false], ['b', false], ['c', false]]));
}
tree.set('/big', new Map(bigNames.map((n) => [n, false] as const)));

const inos = new Map<string, number>();
const ino = (p: string) => {
  let n = inos.get(p);
  if (n === undefined) inos.set(p, (n = inos.size + 1));
  return n;
};
const stat = (p: string, dir: boolean) =>
  statArray({ ino: ino(p), mode: dir ? 0o40755 : 0o100644, type: dir ? EntryType.Directory : EntryType.File, uid: 0, gid: 0, size: dir ? 0 : 7, mtime: 1_700_000_000, mtimeNsec: 0, nlink: 1, devmajor: 0, devminor: 0 } as never);
const parentOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
const join = (d: string, n: string) => (d === '/' ? `/${n}` : `${d}/${n}`);

const readdirCalls: Record<string, number> = {};
const Fuse = loadFuse();
const ops: Record<string, Cb> = {
  init: (cb: Cb) => cb(0),
  getattr: (p: string, cb: Cb) => {
    if (tree.has(p)) return cb(0, stat(p, true));
    const isDir = tree.get(parentOf(p))?.get(p.slice(p.lastIndexOf('/') + 1));
    return isDir === undefined ? cb(-2) : cb(0, stat(p, isDir));
  },
  readdir: (p: string, cb: Cb) => {
    readdirCalls[p] = (readdirCalls[p] ?? 0) + 1;
    const kids = tree.get(p);
    if (!kids) return cb(-20);
    const names = ['.', '..', ...kids.keys()];
    cb(0, names, [stat(p, true), stat(parentOf(p), true), ...[...kids].map(([n, d]) => stat(join(p, n), d))]);
  },
  open: (_p: string, _f: number, cb: Cb) => cb(-38),
  read: (_p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const data = Buffer.from('content');
    cb(data.copy(buf, 0, pos, Math.min(data.length, pos + len)));
  },
};
const fuse = new Fuse(mnt, ops, { dirCacheBytes: 0, cacheDirs: true, fsname: 'dir-tree,ro' }) as FuseInstance & { counters(): Record<string, number> };
fuse.mount((err: Error | null) => {
  if (err) {
    process.stderr.write(`mount: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'report') process.stdout.write(`${JSON.stringify({ readdirCalls, counters: fuse.counters() })}\n`);
});
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
