import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ImageView } from '../engine';
import { EnvironmentError, NotFoundError, UsageError } from '../errors';
import { Namespace } from './namespace';
import { makeOps } from './ops';

const run = promisify(execFile);

/** Memory for the native answer cache (listings with stats and spans, about 200 B per entry). */
const DIR_CACHE_BYTES = 64 * 1024 * 1024;

export interface MountOptions {
  rootfsOnly?: boolean;
  /** Let other users see the mount; the kernel then enforces the image's modes and owners. */
  allowOther?: boolean;
  /** Mount over a folder that has files in it (libfuse 2's `-o nonempty`); they are hidden while mounted. */
  nonempty?: boolean;
  /** The --layers text, for the mount's history file. */
  layersNote?: string;
  log: (message: string) => void;
}

/** The project's fork of fuse-native (native/fuse, built on install), resolved from the project root. */
export const NATIVE_FUSE_DIR = path.resolve(__dirname, '..', '..', '..', 'native', 'fuse');
const NATIVE_FUSE_ADDON = path.join(NATIVE_FUSE_DIR, 'build', 'Release', 'ocimount_fuse.node');

/** The fork's surface as used here (native/fuse/index.js). */
export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  /** Registers an open archive file for native reads (see native/fuse/index.js); 0: not read natively. */
  spanFile(fd: number, stamp: BigInt64Array): number;
  /** Caches a packed listing natively before it is asked for (see native/fuse/index.js); false: not taken. */
  prime(path: string, names: Uint8Array, stats: Uint32Array): boolean;
}
/** The fork's class, with its process-wide memory hooks (native/fuse/index.js). */
export type FuseConstructor = (new (mnt: string, ops: object, opts: object) => FuseInstance) & {
  returnFreedMemory?: () => void;
  trimMemory?: () => void;
};

/**
 * Loads the fork, turning a missing build or a missing libfuse into one line of advice instead
 * of a stack trace.
 */
export function loadFuse(): FuseConstructor {
  if (!fs.existsSync(NATIVE_FUSE_ADDON)) {
    throw new EnvironmentError(
      `the FUSE addon is not built (${NATIVE_FUSE_ADDON} is missing): run 'npm rebuild ocimount' where it is installed (-g for a global install) or 'npm run build:native' in a checkout; it needs make, g++ and python3`,
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(NATIVE_FUSE_DIR) as FuseConstructor;
  } catch (err) {
    const msg = (err as Error).message;
    if (/libfuse\.so/.test(msg)) {
      throw new EnvironmentError('libfuse.so.2 is missing: install it (Debian/Ubuntu: apt-get install libfuse2, or libfuse2t64 on Ubuntu 24.04)', { cause: err });
    }
    throw new EnvironmentError(`cannot load the FUSE addon: ${msg.split('\n')[0]} (rebuild it: npm rebuild ocimount)`, { cause: err });
  }
}

/**
 * For the serving process, before it indexes: large blocks it frees go back to the system
 * instead of staying in malloc's heap (native/fuse, fuse_native_malloc_returnable).
 */
export function returnFreedMemory(): void {
  loadFuse().returnFreedMemory?.();
}

/** Hands what is free in malloc's heap back to the system (after a garbage collection). */
export function trimMemory(): void {
  loadFuse().trimMemory?.();
}

export function findFusermount(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    for (const name of ['fusermount', 'fusermount3']) {
      const p = path.join(dir, name);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        /* keep looking */
      }
    }
  }
  return undefined;
}

/** Whether `dir` is a mount point right now, from the kernel's own table. */
export function isMounted(dir: string): boolean {
  return listsMount(fs.readFileSync('/proc/self/mountinfo', 'utf8'), dir);
}

/** Whether a /proc/self/mountinfo text has a mount at `dir` (field 5 is the mount point). */
function listsMount(table: string, dir: string): boolean {
  const target = path.resolve(dir);
  return table.split('\n').some((line) => unescapeMountPath(line.split(' ')[4] ?? '') === target);
}

function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Checks everything that makes a mount fail before trying, so each failure is one line that
 * says what to do. (fuse-native's own errors are terse, and a failed mount can leave a dead
 * mountpoint behind.)
 */
export function checkMountpoint(mnt: string, opts: { nonempty?: boolean } = {}): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The command line named a path that is not there: a typo, so a usage error.
    if (code === 'ENOENT') throw new UsageError(`${mnt}: mountpoint does not exist (create it: mkdir -p ${mnt})`, { cause: err });
    // The rest is this machine's state (a dead mount, no permission): the environment.
    if (code === 'ENOTCONN') {
      throw new EnvironmentError(`${mnt}: a dead FUSE mount is still there (Transport endpoint is not connected): clean it with 'ocimount umount ${mnt}'`, { cause: err });
    }
    throw new EnvironmentError(`${mnt}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) throw new UsageError(`${mnt}: mountpoint is not a directory`);
  if (isMounted(mnt)) throw new EnvironmentError(`${mnt}: something is already mounted there (unmount it first: ocimount umount ${mnt})`);
  if (!opts.nonempty) {
    let count = 0;
    try {
      count = fs.readdirSync(mnt).length;
    } catch {
      /* unreadable: the mount itself will say */
    }
    // libfuse 2 refuses a non-empty mountpoint with only "fuse failed".
    if (count > 0) {
      throw new EnvironmentError(`${mnt}: mountpoint is not empty (${count} ${count === 1 ? 'entry' : 'entries'}); mount on an empty folder, or add --nonempty to hide what is there while mounted`);
    }
  }
  checkDevFuse();
  if (!findFusermount()) throw fusermountMissing();
}

/**
 * /dev/fuse must exist (the module is loaded, or a container was given the device) and be
 * readable and writable by this user: the two have different remedies, so they are told apart.
 */
export function checkDevFuse(device = '/dev/fuse'): void {
  try {
    fs.accessSync(device, fs.constants.R_OK | fs.constants.W_OK);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      let owner = '';
      try {
        const st = fs.statSync(device);
        owner = ` (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, uid ${st.uid}, gid ${st.gid})`;
      } catch {
        /* only the detail is lost */
      }
      const uid = process.getuid?.() ?? -1;
      throw new EnvironmentError(
        `${device}: permission denied for uid ${uid}${owner}: a permission problem, not a missing module; ask an administrator for access (chmod 0666 ${device} is the usual setting, or a group that may use it), or use the mount-free commands (ocimount ls, cat, extract)`,
        { cause: err },
      );
    }
    throw new EnvironmentError(
      `${device} is not available: load the module (modprobe fuse), or in a container run with --device /dev/fuse --cap-add SYS_ADMIN; without FUSE, use the mount-free commands (ocimount ls, cat, extract)`,
      { cause: err },
    );
  }
}

export interface ActiveMount {
  mountpoint: string;
  /** Unmounts (lazily, as fuse-native does) and resolves when done. */
  unmount(): Promise<void>;
  /** Resolves when the mount disappears, whoever unmounted it. */
  gone: Promise<void>;
}

/**
 * Mounts the image read-only. The options fuse-native's option builder lacks (`ro`, `use_ino`,
 * `negative_timeout`) travel inside `fsname`, since it joins its option string without
 * escaping (the fork keeps that builder); see native-notes/README.md.
 */
export async function mountImage(view: ImageView, mnt: string, opts: MountOptions): Promise<ActiveMount> {
  const Fuse = loadFuse();
  checkMountpoint(mnt, { nonempty: opts.nonempty });
  const ns = new Namespace(view, { rootfsOnly: opts.rootfsOnly, layersNote: opts.layersNote });
  // The native side keeps recent listings (names, stats, plain files' byte spans) and answers
  // LOOKUP, READDIR and READ of those itself, without a hop onto this thread (native/fuse,
  // "answer cache"); JS then needs only a small listing cache of its own.
  // Span files are registered with the mounted instance (listings are only asked for once it is).
  let served: FuseInstance | undefined;
  const ops = makeOps(ns, view, { log: opts.log, spanFile: (file) => served?.spanFile(file.fd, file.identity()) ?? 0, prime: (p, l) => served?.prime(p, l.names, l.stats) ?? false, readdirCacheEntries: 100_000 });
  const label = path.basename(view.archive.files.location).replace(/[^A-Za-z0-9._:@+-]/g, '_').slice(0, 100) || 'image';
  const extra = ['ro', 'use_ino', 'negative_timeout=3600', ...(opts.allowOther ? ['default_permissions'] : []), ...(opts.nonempty ? ['nonempty'] : []), ...extraFuseOptions()];
  const fuse = new Fuse(mnt, ops, {
    fsname: [`ocimount:${label}`, ...extra].join(','),
    subtype: 'ocimount',
    kernelCache: true,
    entryTimeout: 3600,
    attrTimeout: 3600,
    autoUnmount: true,
    allowOther: !!opts.allowOther,
    maxRead: 131072,
    timeout: 60_000,
    // $OCIMOUNT_FUSE_DIR_CACHE_BYTES: another budget, for tests of listings that do not fit.
    dirCacheBytes: Number(process.env.OCIMOUNT_FUSE_DIR_CACHE_BYTES) || DIR_CACHE_BYTES,
    // The kernel keeps directory listings (FOPEN_CACHE_DIR): a second walk sends no READDIR.
    cacheDirs: process.env.OCIMOUNT_FUSE_CACHE_DIRS !== '0',
  });
  served = fuse;
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) => {
      if (!err) return resolve();
      // A failed mount can leave the kernel mount behind with nobody serving it.
      if (isMounted(mnt)) run(findFusermount() ?? 'fusermount', ['-uz', mnt]).catch(() => undefined);
      reject(new EnvironmentError(`${mnt}: mount failed: ${err.message}`, { cause: err }));
    }),
  );
  let unmounting: Promise<void> | undefined;
  const unmount = () =>
    (unmounting ??= new Promise<void>((resolve) =>
      fuse.unmount((err) => {
        if (err) opts.log(`unmount ${mnt}: ${err.message}`);
        resolve();
      }),
    ));
  const gone = new Promise<void>((resolve) => {
    // The native side does not report an unmount done by someone else (fusermount -u), so watch the
    // kernel's mount table; the timer is async and cheap.
    const timer = setInterval(() => {
      fs.promises.readFile('/proc/self/mountinfo', 'utf8').then((table) => {
        if (!listsMount(table, mnt)) {
          clearInterval(timer);
          resolve();
        }
      }, () => undefined);
    }, 1000);
  });
  return { mountpoint: mnt, unmount, gone };
}

/**
 * More libfuse `-o` options from $OCIMOUNT_FUSE_OPTIONS (comma-separated), for measuring them
 * (bench/page-cache.ts); only plain `name` or `name=number` options pass.
 */
function extraFuseOptions(): string[] {
  return (process.env.OCIMOUNT_FUSE_OPTIONS ?? '').split(',').filter((o) => /^[a-z_]+(=\d+)?$/.test(o));
}

/** `ocimount umount`: fusermount -u, lazily (-z) when the mount is dead or busy and asked to. */
export async function unmountPath(mnt: string, lazy: boolean): Promise<void> {
  const fusermount = findFusermount();
  if (!fusermount) throw fusermountMissing();
  let dead = false;
  try {
    fs.statSync(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') dead = true;
    else if (code === 'ENOENT') throw new NotFoundError(`${mnt}: no such directory`, { cause: err });
  }
  if (!isMounted(mnt)) throw new NotFoundError(`${mnt}: not mounted`);
  try {
    await run(fusermount, [lazy || dead ? '-uz' : '-u', mnt]);
  } catch (err) {
    const msg = ((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n')[0];
    const busy = /busy/i.test(msg) ? ' (still in use: close what uses it, or use --lazy)' : '';
    throw new EnvironmentError(`${mnt}: unmount failed: ${msg}${busy}`, { cause: err });
  }
}

function fusermountMissing(): EnvironmentError {
  return new EnvironmentError('fusermount is missing: install it (Debian/Ubuntu: apt-get install fuse3)');
}
