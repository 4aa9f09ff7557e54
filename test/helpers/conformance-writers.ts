// The writers of the conformance matrix: every tar writer this machine has, each with the way it
// turns the source tree into a layer tar and a capability profile (what its format can carry and
// what it does with what it cannot), so the matrix checks exactly what each format carries.

import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tarStream from 'tar-stream';
import { B, SPARSE_PATH, type TreeInfo } from './conformance-tree';

export interface Profile {
  /** How member names must fit. 'ustar': prefix (155) + '/' + name (100); 'max': whole name; dirSlash: the writer stores directories with a trailing '/'. */
  names: { rule: 'any' } | { rule: 'ustar'; dirSlash: boolean } | { rule: 'max'; max: number; dirSlash: boolean };
  /** A directory the writer refuses takes its subtree with it (GNU tar); otherwise children are still written. */
  refusedDirTakesSubtree: boolean;
  /** Names and symlink targets that are not UTF-8 can be carried. */
  nonUtf8Names: boolean;
  /** ustar split: an empty name field with everything in the prefix is allowed (Python, for directories). */
  ustarEmptyName?: boolean;
  /** Mode 0 can be carried (tar-stream replaces it with a default). */
  modeZero?: boolean;
  /** Symlink targets above `max` bytes are dropped ('absent') or stored cut to `max` bytes ('cut'). */
  symlinkTarget: { max: number; tooLong: 'absent' | 'cut' };
  /** Hard links whose first name is above `max` bytes are dropped ('absent') or stored as a copy of the file ('copy'). */
  hardlinkTarget: { max: number; tooLong: 'absent' | 'copy' };
  /** uid/gid above this: the entry is dropped. */
  idMax: number;
  /** mtime range in seconds (entries outside are dropped) and what happens to sub-second parts. */
  mtime: { min: number; max: number; subsec: 'ns' | 'us' | 'floor' | 'round' };
  /** Out-of-range mtimes are clamped to the range instead of dropping the entry (libarchive's gnutar writer). */
  mtimeClamps?: boolean;
  /** Reproducible recipes: every mtime is this many seconds, every owner 0. */
  fixedMtime?: number;
  fixedOwner?: boolean;
  devices: boolean;
  devMinorMax: number;
  fifos: boolean;
  /** Which xattrs are carried: all, only values that are valid UTF-8 text, or none. */
  xattrs: 'all' | 'text' | 'none';
  /** Xattr names the writer cannot carry (removed from its input copy, so expected absent). */
  xattrNameRefused?: RegExp;
  sparse: boolean;
}

export interface Writer {
  name: string;
  /** Why this writer cannot run here, or null when it can. */
  unavailable(): string | null;
  profile: Profile;
  /** Produces the uncompressed layer tar; `work` is a scratch dir of its own. */
  write(tree: TreeInfo, work: string): Promise<Buffer>;
}

const OCTAL7 = 0o7777777; // 2,097,151: 8-byte octal fields
const OCTAL6 = 0o777777; // 262,143: libarchive keeps one more byte for the terminator
const OCTAL11 = 0o77777777777; // 8,589,934,591 s = 2242-03-16
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

const has = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Runs a writer command; stderr is kept (warnings about refused entries are expected), exit codes 0 and 1 (GNU tar: "some files differ"/refused) and 2 with output are accepted. */
function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer', timeout: 120_000 }, (err, _out, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      if (e && typeof e.code !== 'number') return reject(new Error(`${cmd} ${args.join(' ')}: ${e.message}`));
      resolve({ code: e ? (e.code as number) : 0, stderr: stderr.toString('latin1') });
    });
  });
}

async function tarFile(cmd: string, args: string[], out: string, cwd?: string): Promise<Buffer> {
  const r = await runTool(cmd, args, { cwd, env: { ...process.env, LC_ALL: 'C' } });
  if (!fs.existsSync(out) || fs.statSync(out).size === 0) throw new Error(`${cmd} ${args.join(' ')} wrote nothing (exit ${r.code}): ${r.stderr.slice(0, 2000)}`);
  return fs.readFileSync(out);
}

// --- profiles -----------------------------------------------------------------------------

const FULL: Profile = {
  names: { rule: 'any' },
  refusedDirTakesSubtree: true,
  nonUtf8Names: true,
  symlinkTarget: { max: NO_LIMIT, tooLong: 'cut' },
  hardlinkTarget: { max: NO_LIMIT, tooLong: 'copy' },
  idMax: NO_LIMIT,
  mtime: { min: -NO_LIMIT, max: NO_LIMIT, subsec: 'ns' },
  devices: true,
  devMinorMax: NO_LIMIT,
  fifos: true,
  xattrs: 'all',
  sparse: false,
};

/** GNU tar --format=gnu/oldgnu: L/K long names, base-256 ids and times, whole seconds, no xattrs. */
const GNU_TAR_GNU: Profile = { ...FULL, mtime: { min: -NO_LIMIT, max: NO_LIMIT, subsec: 'floor' }, xattrs: 'none' };
/** GNU tar --format=posix --xattrs: pax for everything, nanoseconds, SCHILY.xattr. */
const GNU_TAR_POSIX: Profile = { ...FULL };
/** GNU tar ustar: refuses names that cannot be split and the subtree of such a directory, ids and times out of octal range; cuts long symlink targets to 100 bytes (it says "not dumped" but writes them cut); a hard link to a long name becomes a copy. */
const GNU_TAR_USTAR: Profile = {
  ...FULL,
  names: { rule: 'ustar', dirSlash: true },
  symlinkTarget: { max: 100, tooLong: 'cut' },
  hardlinkTarget: { max: 100, tooLong: 'copy' },
  idMax: OCTAL7,
  mtime: { min: 0, max: OCTAL11, subsec: 'floor' },
  xattrs: 'none',
};
const GNU_TAR_V7: Profile = { ...GNU_TAR_USTAR, names: { rule: 'max', max: 100, dirSlash: true }, devices: false, fifos: false };

/** bsdtar pax: everything (hdrcharset=BINARY for non-UTF-8 names), SCHILY.xattr and LIBARCHIVE.xattr, GNU.sparse 1.0 for holes. */
const BSDTAR_PAX: Profile = { ...FULL, refusedDirTakesSubtree: false, sparse: true };
/** libarchive's ustar keeps a terminator in numeric fields (6 octal digits for ids and devices) and drops what does not fit, links included. */
const BSDTAR_USTAR: Profile = {
  ...FULL,
  refusedDirTakesSubtree: false,
  names: { rule: 'ustar', dirSlash: true },
  symlinkTarget: { max: 100, tooLong: 'absent' },
  hardlinkTarget: { max: 100, tooLong: 'absent' },
  idMax: OCTAL6,
  mtime: { min: 0, max: OCTAL11, subsec: 'floor' },
  devMinorMax: OCTAL6,
  xattrs: 'none',
};
/** libarchive's gnutar writer: GNU long names and base-256 ids, but mtimes clamped to 0..8589934591 and 6-digit device numbers. */
const BSDTAR_GNUTAR: Profile = { ...FULL, refusedDirTakesSubtree: false, mtime: { min: 0, max: OCTAL11, subsec: 'floor' }, mtimeClamps: true, devMinorMax: OCTAL6, xattrs: 'none' };
const BSDTAR_V7: Profile = { ...BSDTAR_USTAR, names: { rule: 'max', max: 99, dirSlash: true }, devices: false, fifos: false };

/** Python tarfile: no xattrs; PAX keeps the float st_mtime (microsecond-ish), GNU/USTAR whole seconds. */
const PY_GNU: Profile = { ...FULL, refusedDirTakesSubtree: true, mtime: { min: -NO_LIMIT, max: NO_LIMIT, subsec: 'floor' }, xattrs: 'none' };
const PY_PAX: Profile = { ...FULL, refusedDirTakesSubtree: true, mtime: { min: -NO_LIMIT, max: NO_LIMIT, subsec: 'us' }, xattrs: 'none' };
const PY_USTAR: Profile = {
  ...PY_GNU,
  names: { rule: 'ustar', dirSlash: true },
  ustarEmptyName: true,
  symlinkTarget: { max: 100, tooLong: 'absent' },
  hardlinkTarget: { max: 100, tooLong: 'absent' },
  idMax: OCTAL7,
  mtime: { min: 0, max: OCTAL11, subsec: 'floor' },
};

/** Go's archive/tar (umoci repack): ustar when it fits, else PAX; ModTime rounded to the nearest second; refuses xattr names with '='. */
const GO_UMOCI: Profile = { ...FULL, mtime: { min: -NO_LIMIT, max: NO_LIMIT, subsec: 'round' }, xattrNameRefused: /=/ };

/** tar-stream (as this writer uses it): UTF-8 string names only, pax for long names, whole seconds, ids and times in octal range, text xattrs through pax. */
const TAR_STREAM: Profile = {
  ...FULL,
  refusedDirTakesSubtree: true,
  nonUtf8Names: false,
  idMax: OCTAL6,
  mtime: { min: 0, max: OCTAL11, subsec: 'floor' },
  devMinorMax: OCTAL6,
  modeZero: false,
  xattrs: 'text',
  xattrNameRefused: /=/,
};

// --- writers ------------------------------------------------------------------------------

function gnuTar(name: string, profile: Profile, opts: string[], withSparse: boolean): Writer {
  return {
    name,
    profile,
    unavailable: () => (has('tar') && /GNU tar/.test(execFileSync('tar', ['--version']).toString()) ? null : 'GNU tar not installed'),
    async write(tree, work) {
      const out = path.join(work, 'layer.tar');
      const args = ['-cf', out, ...opts, '-C', tree.root, ...tree.top];
      if (withSparse) args.push('-C', tree.sparseRoot, SPARSE_PATH.split('/')[0]);
      return tarFile('tar', args, out);
    },
  };
}

function bsdtar(name: string, profile: Profile, opts: string[]): Writer {
  return {
    name,
    profile,
    unavailable: () => (has('bsdtar') ? null : 'bsdtar not installed (Debian: libarchive-tools)'),
    async write(tree, work) {
      const out = path.join(work, 'layer.tar');
      const args = ['-cf', out, ...opts, '-C', tree.root, ...tree.top];
      if (profile.sparse) args.push('-C', tree.sparseRoot, SPARSE_PATH.split('/')[0]);
      return tarFile('bsdtar', args, out);
    },
  };
}

/** Walks the tree with bytes paths in name order and adds entry by entry; an entry the format refuses (ValueError) is reported and skipped, with its subtree if it is a directory. */
const PY_WRITER = `
import os, sys, tarfile
root, out, fmt, tops = os.fsencode(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
FORMAT = {'gnu': tarfile.GNU_FORMAT, 'pax': tarfile.PAX_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[fmt]
tar = tarfile.open(out, 'w', format=FORMAT, encoding='utf-8', errors='surrogateescape')
def add(rel):
    p = os.path.join(root, rel)
    name = os.fsdecode(rel)
    ti = tar.gettarinfo(os.fsdecode(p), arcname=name)
    try:
        if ti.isreg():
            with open(p, 'rb') as f:
                tar.addfile(ti, f)
        else:
            tar.addfile(ti)
    except ValueError as e:
        sys.stderr.write('refused %r: %s\\n' % (rel, e))
        return
    if ti.isdir():
        for n in sorted(os.listdir(p)):
            add(os.path.join(rel, n))
for t in tops:
    add(os.fsencode(t))
tar.close()
`;

function python(fmt: 'gnu' | 'pax' | 'ustar', profile: Profile): Writer {
  return {
    name: `python-tarfile-${fmt}`,
    profile,
    unavailable: () => (has('python3') ? null : 'python3 not installed'),
    async write(tree, work) {
      const out = path.join(work, 'layer.tar');
      return tarFile('python3', ['-c', PY_WRITER, tree.root, out, fmt, ...tree.top], out);
    },
  };
}

const umoci: Writer = {
  name: 'go-archive-tar-umoci',
  profile: GO_UMOCI,
  unavailable: () => (has('umoci') ? null : 'umoci not installed (Go archive/tar writer)'),
  async write(tree, work) {
    // umoci insert (0.4.7) writes a layer cut short (no final padding or end blocks), so the
    // tree goes through unpack / copy / repack, whose layer Go's archive/tar writes whole.
    const layout = path.join(work, 'oci');
    const bundle = path.join(work, 'bundle');
    const must = async (cmd: string, args: string[]) => {
      const r = await runTool(cmd, args);
      if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    };
    await must('umoci', ['init', '--layout', layout]);
    await must('umoci', ['new', '--image', `${layout}:t`]);
    await must('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
    const rootfs = path.join(bundle, 'rootfs');
    // One cp for the whole tree: separate copies would break hard links across top-level folders.
    await must('cp', ['-a', ...tree.top.map((t) => path.join(tree.root, t)), rootfs]);
    // Go's archive/tar refuses pax keys with '=' (invalid PAX record): drop such xattrs from the copy.
    const odd = path.join(rootfs, 'xattr/odd-name');
    await must('setfattr', ['-x', 'user.a=b%c', odd]);
    // cp -a kept the tree's times; the rootfs root itself is not compared.
    await must('umoci', ['repack', '--image', `${layout}:t`, bundle]);
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
    const blob = (d: string) => fs.readFileSync(path.join(layout, 'blobs', ...d.split(':')));
    const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
    const layers = manifest.layers as { digest: string; mediaType: string }[];
    const last = blob(layers[layers.length - 1].digest);
    return last[0] === 0x1f && last[1] === 0x8b ? zlib.gunzipSync(last) : last;
  },
};

/** Packs the tree with tar-stream from JS; what it cannot carry (non-UTF-8 names, ids and times outside octal range, binary xattrs) is left out here. */
const tarStreamWriter: Writer = {
  name: 'tar-stream',
  profile: TAR_STREAM,
  unavailable: () => null,
  async write(tree) {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (c: unknown) => void chunks.push(c as Buffer));
    const done = new Promise<void>((resolve, reject) => {
      pack.on('end', resolve);
      pack.on('error', reject);
    });
    const inodes = new Map<string, string>();
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const entry = (h: Partial<tarStream.Header> & { name: string }, data?: Buffer) =>
      new Promise<void>((resolve, reject) => pack.entry(h, data ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
    const xattrs = (p: Buffer): Record<string, string> => {
      const r = execFileSync('python3', ['-c', XATTRS_PY, p.toString('hex')]).toString();
      return JSON.parse(r);
    };
    const walk = async (rel: Buffer): Promise<void> => {
      let name: string;
      try {
        name = fatal.decode(rel);
      } catch {
        return; // not UTF-8: a JS string name cannot hold these bytes
      }
      const p = Buffer.concat([B(tree.root + '/'), rel]);
      const st = fs.lstatSync(p, { bigint: true });
      const sec = Number(st.mtimeNs / 1_000_000_000n - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1n : 0n));
      if (st.uid > OCTAL6 || st.gid > OCTAL6 || sec < 0 || sec > OCTAL11) return;
      if ((st.mode & 0o7777n) === 0n) return; // pack() replaces mode 0 with its default
      const h: Partial<tarStream.Header> & { name: string } = {
        name,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtime: new Date(sec * 1000),
      };
      const xa = xattrs(p);
      for (const k of Object.keys(xa)) if (k.includes('=')) delete xa[k]; // a pax key cannot hold '='
      if (Object.keys(xa).length) h.pax = Object.fromEntries(Object.entries(xa).map(([k, v]) => [`SCHILY.xattr.${k}`, v]));
      const key = `${st.dev}:${st.ino}`;
      if (st.isFile() && st.nlink > 1n && inodes.has(key)) return entry({ ...h, type: 'link', linkname: inodes.get(key)! });
      if (st.isFile()) {
        if (st.nlink > 1n) inodes.set(key, name);
        return entry({ ...h, type: 'file' }, fs.readFileSync(p));
      }
      if (st.isSymbolicLink()) {
        const t = fs.readlinkSync(p, { encoding: 'buffer' });
        try {
          return entry({ ...h, type: 'symlink', linkname: fatal.decode(t) });
        } catch {
          return;
        }
      }
      if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev; // glibc's encoding of major/minor in dev_t
        const devmajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const devminor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        if (devmajor > OCTAL6 || devminor > OCTAL6) return; // tar-stream writes 6 octal digits
        return entry({ ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor, devminor });
      }
      if (st.isFIFO()) return entry({ ...h, type: 'fifo' });
      if (st.isDirectory()) {
        await entry({ ...h, type: 'directory' });
        const kids = (fs.readdirSync(p, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
        for (const k of kids) await walk(Buffer.concat([rel, B('/'), k]));
      }
    };
    for (const t of tree.top) await walk(B(t));
    pack.finalize();
    await done;
    return Buffer.concat(chunks);
  },
};

/** Text xattrs of one path (hex path in argv[1]) as JSON; binary values are left out. */
const XATTRS_PY = `
import os, sys, json
p = bytes.fromhex(sys.argv[1]); out = {}
if not os.path.islink(p):
    for n in os.listxattr(p):
        v = os.getxattr(p, n)
        try: out[n] = v.decode('utf-8')
        except UnicodeDecodeError: pass
print(json.dumps(out))
`;

/**
 * node-tar (npm "tar", 7.x): ustar headers plus a pax record whenever a field does not fit (a
 * name over 100 bytes that cannot be split, any non-ASCII name, a long link target, ids and
 * times outside octal range), so names, link targets, ids and times are carried whole. Checked
 * against the layer bytes (tar --full-time -tvf, bsdtar -tvf, python tarfile pax_headers):
 * - mtime: the ustar field holds Math.floor(seconds) (times/frac 1748089464.951928467 is stored
 *   as 15014335170 octal = 1748089464); pre-1970 and post-2242 times go base-256 in the header
 *   and whole in pax ("mtime=-315360000", "mtime=9000000000"), so the range is a JS Date's,
 *   +-8.64e12 s. A pax record, when one is written anyway, holds Date.getTime()/1000, i.e.
 *   milliseconds; no entry of this tree has both a sub-second mtime and a pax record (times/frac
 *   has a short ASCII name and octal-range ids and times), so 'floor' is exact here.
 * - ids: base-256 in the header and decimal in pax (ids/big: 0x80..2dc6c0, uid=3000000).
 * - mode: the 12 permission bits as they are, 0 included (modes/none: "000000 "). Directories
 *   get x wherever they have r (mode-fix.js); no directory of this tree has r without x.
 * - hard links: found by dev:ino within one run; the linkpath is the first-archived name
 *   (links/hard-to-long links to the 200-byte deep path through a pax linkpath).
 * - devices and FIFOs: write-entry.js ends an entry that is not a file, directory or symlink
 *   without writing a header, and warns about nothing: dev/ is archived empty.
 * - xattrs: never read. Sparse: no (and it is not given the 9 GiB file).
 * - names: the walk uses string fs APIs, so a name that is not UTF-8 comes back from readdir with
 *   U+FFFD and the lstat of that mangled name fails with ENOENT, which aborts the whole pack; a
 *   symlink target that is not UTF-8 would be stored mangled. Those entries (names/bad-..,
 *   names/latin1-caf\xe9, names/dir-\xa0\xe9 with its subtree, names/symlink-to-latin1) are
 *   removed from its input copy, so the profile expects them absent. NFD names stay NFD.
 * Headers also put atime/ctime at bytes 476/488 (the ustar prefix shrinks to 130 bytes), and
 * pax records carry SCHILY.dev/ino/nlink; neither is compared.
 */
const NODE_TAR: Profile = {
  ...FULL,
  refusedDirTakesSubtree: true,
  nonUtf8Names: false,
  mtime: { min: -8_640_000_000_000, max: 8_640_000_000_000, subsec: 'floor' },
  devices: false,
  fifos: false,
  xattrs: 'none',
  sparse: false,
};

/** Drops what node-tar's string walk cannot carry from its input copy (argv[1]): names and symlink targets that are not UTF-8; the parent keeps its times. */
const DROP_NON_UTF8_PY = `
import os, sys, shutil
root = os.fsencode(sys.argv[1])
def utf8(b):
    try:
        b.decode('utf-8'); return True
    except UnicodeDecodeError:
        return False
for d, dirs, files in os.walk(root):
    st = os.lstat(d); dropped = False
    for n in list(dirs) + files:
        p = os.path.join(d, n)
        if utf8(n) and not (os.path.islink(p) and not utf8(os.readlink(p))):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p); dirs.remove(n)
        else:
            os.unlink(p)
        sys.stderr.write('dropped %r\\n' % p); dropped = True
    if dropped:
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
`;

const nodeTar: Writer = {
  name: 'node-tar',
  profile: NODE_TAR,
  unavailable: () => {
    try {
      require.resolve('tar');
      return null;
    } catch {
      return 'node-tar (npm "tar") is not in node_modules: add it as a devDependency to cover it';
    }
  },
  async write(tree, work) {
    const tar = require('tar') as typeof import('tar'); // loaded here so a missing devDependency only skips this writer
    const input = path.join(work, 'in');
    // One cp for the whole tree: hard links across top-level folders stay links.
    const cp = await runTool('cp', ['-a', tree.root, input]);
    if (cp.code !== 0) throw new Error(`cp -a ${tree.root} ${input} failed (${cp.code}): ${cp.stderr}`);
    execFileSync('python3', ['-c', DROP_NON_UTF8_PY, input], { stdio: ['ignore', 'ignore', 'pipe'] });
    const out = path.join(work, 'layer.tar');
    // Owners kept (no portable), relative names (preservePaths off), every entry of the tree.
    const warnings: string[] = [];
    tar.c({ file: out, cwd: input, sync: true, portable: false, preservePaths: false, onwarn: (code: string, message: string) => void warnings.push(`${code}: ${message}`) }, tree.top);
    // node-tar warns about nothing this tree has; a warning means an entry went missing unexpectedly.
    if (warnings.length) throw new Error(`node-tar warned:\n${warnings.join('\n')}`);
    return fs.readFileSync(out);
  },
};

const SPARSE_OPTS = ['--sparse'];
const REPRO = ['--format=posix', '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime'];

export const WRITERS: Writer[] = [
  gnuTar('gnutar-gnu', GNU_TAR_GNU, ['--format=gnu'], false),
  gnuTar('gnutar-oldgnu', GNU_TAR_GNU, ['--format=oldgnu'], false),
  gnuTar('gnutar-posix', GNU_TAR_POSIX, ['--format=posix', '--xattrs', '--xattrs-include=*'], false),
  gnuTar('gnutar-ustar', GNU_TAR_USTAR, ['--format=ustar'], false),
  gnuTar('gnutar-v7', GNU_TAR_V7, ['--format=v7'], false),
  gnuTar('gnutar-gnu-sparse', { ...GNU_TAR_GNU, sparse: true }, ['--format=gnu', ...SPARSE_OPTS], true),
  gnuTar('gnutar-oldgnu-sparse', { ...GNU_TAR_GNU, sparse: true }, ['--format=oldgnu', ...SPARSE_OPTS], true),
  gnuTar('gnutar-posix-sparse-0.0', { ...GNU_TAR_POSIX, sparse: true }, ['--format=posix', '--xattrs', '--xattrs-include=*', ...SPARSE_OPTS, '--sparse-version=0.0'], true),
  gnuTar('gnutar-posix-sparse-0.1', { ...GNU_TAR_POSIX, sparse: true }, ['--format=posix', '--xattrs', '--xattrs-include=*', ...SPARSE_OPTS, '--sparse-version=0.1'], true),
  gnuTar('gnutar-posix-sparse-1.0', { ...GNU_TAR_POSIX, sparse: true }, ['--format=posix', '--xattrs', '--xattrs-include=*', ...SPARSE_OPTS, '--sparse-version=1.0'], true),
  {
    ...gnuTar('gnutar-listed-incremental', GNU_TAR_GNU, [], false),
    async write(tree, work) {
      const out = path.join(work, 'layer.tar');
      return tarFile('tar', ['-cf', out, '--format=gnu', `--listed-incremental=${path.join(work, 'snapshot.snar')}`, '-C', tree.root, ...tree.top], out);
    },
  },
  gnuTar('gnutar-reproducible', { ...GNU_TAR_POSIX, xattrs: 'none', fixedMtime: 0, fixedOwner: true }, REPRO, false),
  bsdtar('bsdtar-pax', BSDTAR_PAX, ['--format', 'pax']),
  bsdtar('bsdtar-pax-libarchive-xattrs', BSDTAR_PAX, ['--format', 'pax', '--options', 'xattrheader=LIBARCHIVE']),
  bsdtar('bsdtar-ustar', BSDTAR_USTAR, ['--format', 'ustar']),
  bsdtar('bsdtar-gnutar', BSDTAR_GNUTAR, ['--format', 'gnutar']),
  bsdtar('bsdtar-v7', BSDTAR_V7, ['--format', 'v7']),
  python('gnu', PY_GNU),
  python('pax', PY_PAX),
  python('ustar', PY_USTAR),
  umoci,
  tarStreamWriter,
  nodeTar,
];

// --- what a writer's layer should show ----------------------------------------------------

/** One entry as conformance-walk.py prints it. */
export interface WalkEntry {
  p: string; // hex bytes of the path relative to the walked root
  t: 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's' | '?';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: string; // nanoseconds
  nlink: number;
  ino: number;
  major: number;
  minor: number;
  link?: string; // hex
  sha?: string;
  xattrs: Record<string, string>; // hex name -> hex value
  err?: string;
  xattrErr?: string;
}

export interface Expected {
  src: WalkEntry;
  /** A directory the writer refused whose children it still wrote: it shows up implied, attributes unknown. */
  implied?: boolean;
  t: WalkEntry['t'];
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtimeNs?: bigint;
  mtimeToleranceNs?: bigint;
  link?: string;
  sha?: string;
  major?: number;
  minor?: number;
  nlink?: number;
  xattrs?: Record<string, string>;
  /** Other expected paths (hex) that must share this entry's inode. */
  sameInodeAs?: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isUtf8 = (b: Buffer): boolean => {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
};

function nameFits(name: Buffer, rule: Profile['names'], emptyName = false): boolean {
  if (rule.rule === 'any') return true;
  if (rule.rule === 'max') return name.length <= rule.max;
  if (name.length <= 100) return true;
  // ustar: some '/' splits it into a prefix of at most 155 bytes and a name of 1..100 bytes.
  for (let i = 0; i < name.length; i++) if (name[i] === 0x2f && i <= 155 && name.length - i - 1 <= 100 && (emptyName || name.length - i - 1 > 0)) return true;
  return false;
}

const floorDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? a / b : -((-a + b - 1n) / b));

/**
 * The entries a writer's layer should show, from the source walk and the writer's profile.
 * `source` is in walk order (parents before children); names are hex.
 */
export function expectEntries(source: WalkEntry[], profile: Profile): Map<string, Expected> {
  const byPath = new Map(source.map((e) => [e.p, e]));
  const refused = new Set<string>();
  const out = new Map<string, Expected>();
  const parentOf = (p: Buffer): string | null => {
    const i = p.lastIndexOf(0x2f);
    return i < 0 ? null : p.subarray(0, i).toString('hex');
  };
  // Hard-link groups in archive order: the member archived first carries the data.
  const groups = new Map<number, string[]>();
  for (const e of source) if (e.t !== 'd' && e.nlink > 1) groups.set(e.ino, [...(groups.get(e.ino) ?? []), e.p]);
  const NS = 1_000_000_000n;
  const copies = new Set<string>();

  for (const e of source) {
    const p = Buffer.from(e.p, 'hex');
    const parent = parentOf(p);
    const name = e.t === 'd' && profile.names.rule !== 'any' && profile.names.dirSlash ? Buffer.concat([p, B('/')]) : p;
    const ns = BigInt(e.mtime);
    const sec = floorDiv(ns, NS);
    let ok = nameFits(name, profile.names, profile.ustarEmptyName);
    if (!profile.nonUtf8Names && (!isUtf8(p) || (e.link !== undefined && !isUtf8(Buffer.from(e.link, 'hex'))))) ok = false;
    if (profile.modeZero === false && e.mode === 0) ok = false;
    if (!profile.fixedOwner && (e.uid > profile.idMax || e.gid > profile.idMax)) ok = false;
    let clamped: bigint | undefined;
    if (profile.fixedMtime === undefined && (sec < BigInt(profile.mtime.min) || sec > BigInt(profile.mtime.max))) {
      if (profile.mtimeClamps) clamped = sec < BigInt(profile.mtime.min) ? BigInt(profile.mtime.min) : BigInt(profile.mtime.max);
      else ok = false;
    }
    if ((e.t === 'c' || e.t === 'b') && (!profile.devices || e.minor > profile.devMinorMax)) ok = false;
    if (e.t === 'p' && !profile.fifos) ok = false;
    let link = e.link;
    if (e.t === 'l' && link !== undefined && link.length / 2 > profile.symlinkTarget.max) {
      if (profile.symlinkTarget.tooLong === 'absent') ok = false;
      else link = link.slice(0, profile.symlinkTarget.max * 2);
    }
    const group = groups.get(e.ino);
    let linkedTo: string | undefined;
    if (group && group[0] !== e.p) {
      const first = Buffer.from(group[0], 'hex');
      if (first.length > profile.hardlinkTarget.max || refused.has(group[0])) {
        if (profile.hardlinkTarget.tooLong === 'absent') ok = false;
        else copies.add(e.p);
      } else linkedTo = group[0];
    }
    if (parent && refused.has(parent) && profile.refusedDirTakesSubtree) ok = false;
    if (!ok) {
      refused.add(e.p);
      continue;
    }
    // Parents the writer refused but whose children it wrote appear implied.
    for (let q = parent; q && refused.has(q) && !out.has(q); q = parentOf(Buffer.from(q, 'hex'))) {
      out.set(q, { src: byPath.get(q)!, implied: true, t: 'd' });
    }
    let mtimeNs: bigint;
    let tol = 0n;
    if (profile.fixedMtime !== undefined) mtimeNs = BigInt(profile.fixedMtime) * NS;
    else if (clamped !== undefined) mtimeNs = clamped * NS;
    else if (profile.mtime.subsec === 'ns') mtimeNs = ns;
    else if (profile.mtime.subsec === 'us') (mtimeNs = ns), (tol = 1000n);
    else if (profile.mtime.subsec === 'floor') mtimeNs = sec * NS;
    else mtimeNs = floorDiv(ns + NS / 2n, NS) * NS;
    let xattrs: Record<string, string> = {};
    if (profile.xattrs !== 'none') {
      for (const [k, v] of Object.entries(e.xattrs)) {
        if (profile.xattrNameRefused?.test(Buffer.from(k, 'hex').toString('latin1'))) continue;
        if (profile.xattrs === 'text' && !isUtf8(Buffer.from(v, 'hex'))) continue;
        xattrs[k] = v;
      }
    }
    out.set(e.p, {
      src: e,
      t: e.t,
      mode: e.mode,
      uid: profile.fixedOwner ? 0 : e.uid,
      gid: profile.fixedOwner ? 0 : e.gid,
      size: e.t === 'f' ? e.size : e.t === 'l' ? (link?.length ?? 0) / 2 : undefined,
      mtimeNs,
      mtimeToleranceNs: tol,
      link,
      sha: e.sha,
      major: e.t === 'c' || e.t === 'b' ? e.major : undefined,
      minor: e.t === 'c' || e.t === 'b' ? e.minor : undefined,
      xattrs,
      sameInodeAs: linkedTo ? [linkedTo] : undefined,
    });
  }
  // Link counts: members that stayed links of their group's first member.
  for (const [, members] of groups) {
    const linked = members.filter((m) => out.has(m) && !copies.has(m));
    for (const m of members) {
      const x = out.get(m);
      if (x) x.nlink = copies.has(m) ? 1 : linked.length;
    }
  }
  for (const x of out.values()) if (x.t !== 'd' && x.nlink === undefined) x.nlink = 1;
  return out;
}
