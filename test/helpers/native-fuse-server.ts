/*
 * Serves native-fuse-tree.ts's filesystem through the project's native fork (native/fuse) at
 * the mountpoint given as the only argument; prints "ready" once mounted, unmounts and exits on
 * SIGTERM or SIGINT. Run it as a child process: I/O on a mount from the process serving it
 * deadlocks.
 *
 * OCIMOUNT_STOCK_FUSE_NATIVE=1 serves the same tree through stock fuse-native 2.2.6 instead
 * (its stat objects in milliseconds, UTF-8 strings, its xattr handling), to show which of
 * test/native-fuse.test.ts's checks the fork is needed for.
 */
import { loadFuse, type FuseConstructor, type FuseInstance } from '../../src/fuse/mount';
import { E, statArray } from '../../src/fuse/ops';
import { EntryType, statMode } from '../../src/tar/entry';
import type { NodeStat } from '../../src/union/tree';
import { TREE, type TestNode } from './native-fuse-tree';

type Cb = (...args: any[]) => void;

const mnt = process.argv[2];
if (!mnt) {
  process.stderr.write('usage: native-fuse-server MOUNTPOINT\n');
  process.exit(2);
}
const stock = process.env.OCIMOUNT_STOCK_FUSE_NATIVE === '1';

const byName = new Map(TREE.map((n, i) => [n.name, { node: n, ino: i + 2 }]));
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;

function nodeStat(node: TestNode | undefined, ino: number): NodeStat {
  const type = !node ? EntryType.Directory : node.kind === 'symlink' ? EntryType.Symlink : EntryType.File;
  const size = !node ? 0 : node.kind === 'symlink' ? node.target!.length : node.content!.length;
  return {
    ino,
    mode: statMode(type, type === EntryType.Directory ? 0o755 : type === EntryType.Symlink ? 0o777 : 0o644),
    type,
    uid,
    gid,
    size,
    mtime: node ? node.mtime : 1_700_000_000,
    mtimeNsec: node?.mtimeNsec ?? 0,
    nlink: node ? 1 : 2,
    devmajor: 0,
    devminor: 0,
  };
}

/** `path` as the tree spells it (a byte string), or undefined when it names nothing. */
function find(path: string): { node?: TestNode; ino: number } | undefined {
  if (path === '/') return { ino: 1 };
  return byName.get(path.slice(1));
}

// Stock fuse-native hands over UTF-8-decoded strings and wants them back that way, and takes
// stat objects with millisecond times.
const inPath = (p: string) => (stock ? Buffer.from(p, 'utf8').toString('latin1') : p);
const outName = (n: string) => (stock ? Buffer.from(n, 'latin1').toString('utf8') : n);
const stat = (st: NodeStat) =>
  stock ? { ...st, rdev: 0, blksize: 4096, blocks: Math.ceil(st.size / 512), mtime: st.mtime * 1000 + (st.mtimeNsec ?? 0) / 1e6, atime: st.mtime * 1000, ctime: st.mtime * 1000 } : statArray(st);

const ops: Record<string, Cb> = {
  getattr: (path: string, cb: Cb) => {
    const hit = find(inPath(path));
    if (!hit) return cb(E.ENOENT);
    cb(0, stat(nodeStat(hit.node, hit.ino)));
  },
  readdir: (path: string, cb: Cb) => {
    if (path !== '/') return cb(E.ENOENT);
    const root = stat(nodeStat(undefined, 1));
    cb(0, ['.', '..', ...TREE.map((n) => outName(n.name))], [root, root, ...TREE.map((n, i) => stat(nodeStat(n, i + 2)))]);
  },
  open: (path: string, _flags: number, cb: Cb) => (find(inPath(path)) ? cb(0, 42) : cb(E.ENOENT)),
  release: (_path: string, _fd: number, cb: Cb) => cb(0),
  read: (path: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
    const content = find(inPath(path))?.node?.content;
    if (!content) return cb(E.ENOENT);
    cb(pos >= content.length ? 0 : content.copy(buf, 0, pos, Math.min(content.length, pos + len)));
  },
  readlink: (path: string, cb: Cb) => {
    const node = find(inPath(path))?.node;
    if (!node?.target) return cb(E.EINVAL);
    cb(0, outName(node.target));
  },
  listxattr: (path: string, cb: Cb) => {
    const hit = find(inPath(path));
    if (!hit) return cb(E.ENOENT);
    cb(0, (hit.node?.xattrs ?? []).map(([name]) => outName(name)));
  },
  getxattr: (path: string, name: string, ...rest: any[]) => {
    const cb = rest[rest.length - 1] as Cb; // stock passes a position first
    const hit = find(inPath(path));
    if (!hit) return cb(E.ENOENT);
    const value = hit.node?.xattrs?.find(([n]) => n === inPath(name))?.[1];
    if (!value) return cb(E.ENODATA);
    cb(0, value);
  },
};

async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Fuse: FuseConstructor = stock ? require('fuse-native') : loadFuse();
  const fuse: FuseInstance = new Fuse(mnt, ops, { fsname: 'native-fuse-test,ro,use_ino', autoUnmount: true, timeout: 10_000 });
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    fuse.unmount(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write('ready\n');
}

main().catch((err) => {
  process.stderr.write(`native-fuse-server: ${(err as Error).message}\n`);
  process.exit(1);
});
