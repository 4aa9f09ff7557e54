// Builds the conformance matrix's source tree on disk at test time: every edge case a layer
// writer has to carry (long paths cut at the ustar boundaries, long link targets, non-UTF-8 and
// NFC/NFD names, big ids, times outside 1970..2242 and with nanoseconds, special modes, devices,
// FIFOs, hard-link groups, text and binary xattrs, tiny files around the 512-byte block) plus,
// in a separate root, a 9 GiB sparse file that only sparse-capable writers archive.
//
// Names are Buffers end to end, so non-UTF-8 bytes are real bytes on disk. Devices, FIFOs and
// xattrs live on ASCII names and are made with mknod, mkfifo, setfattr and setcap; all times are
// set last (exact nanoseconds, symlinks not followed) by one python3 call.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const B = (s: string): Buffer => Buffer.from(s, 'utf8');
export const hex = (b: Buffer): string => b.toString('hex');
/** A byte path for messages: printable ASCII as is, anything else as \xNN. */
export const show = (b: Buffer): string =>
  [...b].map((c) => (c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('');

/** Every file and directory gets this mtime unless it has its own (see SPECIAL_TIMES). */
export const BASE_MTIME_NS = 1_700_000_000_000_000_000n;
/** 1960-01-03, 2255-03-14 (past the 11-digit octal limit 8589934591 = 2242-03-16), and nanoseconds. */
export const SPECIAL_TIMES: Record<string, bigint> = {
  'times/pre1970': -315_360_000_000_000_000n,
  'times/post2242': 9_000_000_000_000_000_000n,
  'times/frac': 1_748_089_464_951_928_467n,
  'times/epoch': 0n,
};

export const BIG_UID = 3_000_000; // above 2,097,151 (07777777): base-256 or pax only
export const BIG_GID = 4_000_001;
export const MAX_OCTAL_ID = 2_097_151;

export const SPARSE_SIZE = 9 * 1024 ** 3;
/** Data pieces of the sparse file: [offset, length, fill byte]; everything else is a hole. */
export const SPARSE_PIECES: [number, number, number][] = [
  [0, 4096, 0x41],
  [4 * 1024 ** 3 + 512, 5000, 0x42],
  [SPARSE_SIZE - 1000, 1000, 0x43],
];
export const SPARSE_PATH = 'sparse/big.sparse';

/** The test security.capability value: cap_net_raw+ep as setcap writes it (VFS_CAP_REVISION_2). */
export const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

export interface TreeInfo {
  /** The main tree (archived by every writer). */
  root: string;
  /** Holds only sparse/big.sparse (archived by sparse-capable writers, next to the main tree). */
  sparseRoot: string;
  /** Top-level names of the main tree (writers archive these, so members have no "./"). */
  top: string[];
  /** Interesting paths for targeted checks. */
  paths: {
    longest: Buffer; // the 1,000-byte path
    slash100: Buffer; // '/' at byte offset 100 (the GNU/ustar name-field cut point)
    slash99: Buffer;
    slash155: Buffer; // '/' at byte offset 155 (the ustar prefix limit)
    slash154: Buffer;
    longSymlink: Buffer;
    longSymlinkTarget: Buffer;
    longHardlink: Buffer; // a hard link whose first-archived name is > 100 bytes
    all: Buffer[]; // every long path made
  };
  setcapUsed: boolean;
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A path of `total` bytes below `top/`, whose components end so that '/' sits at each offset of `slashes`. */
export function longPath(top: string, total: number, slashes: number[], fill: string): Buffer {
  const cuts = [top.length, ...slashes.filter((s) => s > top.length)].sort((a, b) => a - b);
  const out = Buffer.alloc(total, fill);
  Buffer.from(top).copy(out, 0);
  for (const c of cuts) out[c] = 0x2f;
  // Keep every component at most 200 bytes (NAME_MAX is 255) by adding more slashes if needed.
  let last = 0;
  for (let i = 0; i < total; i++) {
    if (out[i] === 0x2f) last = i;
    else if (i - last > 200) (out[i] = 0x2f), (last = i);
  }
  if (out[total - 1] === 0x2f) out[total - 1] = fill.charCodeAt(0);
  return out;
}

function mkdirp(p: Buffer): void {
  fs.mkdirSync(p, { recursive: true });
}

function join(root: string, rel: Buffer): Buffer {
  return Buffer.concat([B(root), B('/'), rel]);
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i + seed) * 2654435761) >>> 24;
  return b;
}

/** True when `dir`'s filesystem takes user.* xattrs. */
export function supportsUserXattrs(dir: string): boolean {
  const probe = path.join(dir, '.xattr-probe');
  fs.writeFileSync(probe, '');
  try {
    run('setfattr', ['-n', 'user.probe', '-v', '1', probe]);
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

const commandExists = (c: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Builds the tree under `base` (which must take user xattrs; root is needed for devices and big ids). */
export function buildConformanceTree(base: string): TreeInfo {
  const root = path.join(base, 'tree');
  const sparseRoot = path.join(base, 'sparse-root');
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(sparseRoot, { recursive: true });
  const at = (rel: string | Buffer) => join(root, typeof rel === 'string' ? B(rel) : rel);
  const file = (rel: string | Buffer, content: Buffer | string, mode = 0o644) => {
    const p = at(rel);
    mkdirp(Buffer.from(path.dirname(p.toString('latin1')), 'latin1'));
    fs.writeFileSync(p, content);
    fs.chmodSync(p, mode);
    return p;
  };

  // Sizes around the 512-byte block.
  for (const n of [0, 1, 511, 512, 513]) file(`files/size-${n}`, pattern(n, n));
  file('files/text.txt', 'plain text\n');

  // Long paths: '/' exactly at the name-field cut (100) and the prefix limit (155), and lengths
  // on both sides of 99/100/155/255/256 up to 1,000 bytes.
  const L = (total: number, slashes: number[], fill: string) => longPath('deep', total, slashes, fill);
  const p = {
    len99: L(99, [], 'a'),
    len100: L(100, [], 'b'),
    slash99: L(130, [99], 'c'),
    slash100: L(130, [100], 'd'),
    slash100b: L(101 + 1, [100], 'e'), // 102 bytes: "long/ddd…d/x"
    slash154: L(200, [154], 'f'),
    slash155: L(200, [155], 'g'),
    both: L(256, [100, 155], 'h'),
    len255: L(255, [120], 'i'),
    len256: L(256, [150], 'j'),
    noSplit: L(180, [], 'k'), // one 175-byte component: no ustar split possible
    len1000: L(1000, [100, 155, 300, 500, 700, 900], 'm'),
  };
  const allLong = Object.values(p);
  for (const [i, lp] of allLong.entries()) file(lp, `long path ${i} (${lp.length} bytes)\n`);

  // Links: a long symlink target, a long hard-link target, a three-name hard-link group.
  const longSymlinkTarget = Buffer.concat([B('../'), Buffer.alloc(297, 'T'), B('/end')]);
  fs.mkdirSync(at('links'), { recursive: true });
  fs.symlinkSync(longSymlinkTarget, at('links/long-symlink'));
  fs.symlinkSync(B('../files/text.txt'), at('links/short-symlink'));
  fs.symlinkSync(B('/absolute/target'), at('links/abs-symlink'));
  // "deep/" sorts before "links/" (and is named first on every command line), so the long name is archived first
  // and links/hard-to-long becomes a hard link whose link name is the 200-byte path.
  fs.linkSync(at(p.slash155), at('links/hard-to-long'));
  file('links/group-a', 'hard link group\n');
  fs.linkSync(at('links/group-a'), at('links/group-b'));
  fs.mkdirSync(at('links/sub'));
  fs.linkSync(at('links/group-a'), at('links/sub/group-c'));

  // Names: non-UTF-8 bytes, NFC and NFD spellings, newline, backslash, leading dash, spaces.
  const names: Buffer[] = [
    Buffer.concat([B('bad-'), Buffer.from([0xff, 0xfe]), B('.bin')]),
    Buffer.concat([B('latin1-caf'), Buffer.from([0xe9])]),
    B('nfc-caf\u00e9'),
    B('nfd-cafe\u0301'),
    B('new\nline'),
    B('back\\slash'),
    B('-leading-dash'),
    B('with space'),
    B('\u65e5\u672c\u8a9e'),
  ];
  fs.mkdirSync(at('names'));
  for (const n of names) file(Buffer.concat([B('names/'), n]), Buffer.concat([B('name '), n, B('\n')]));
  fs.mkdirSync(at(Buffer.concat([B('names/dir-'), Buffer.from([0xa0, 0xe9])])));
  file(Buffer.concat([B('names/dir-'), Buffer.from([0xa0, 0xe9]), B('/inside')]), 'inside a non-UTF-8 dir\n');
  fs.symlinkSync(Buffer.concat([B('latin1-caf'), Buffer.from([0xe9])]), at('names/symlink-to-latin1'));

  // Owners above the octal range, at its top, and ordinary ones.
  file('ids/big', 'big ids\n');
  fs.lchownSync(at('ids/big'), BIG_UID, BIG_GID);
  file('ids/max-octal', 'max octal ids\n');
  fs.lchownSync(at('ids/max-octal'), MAX_OCTAL_ID, MAX_OCTAL_ID);
  file('ids/user', 'user ids\n');
  fs.lchownSync(at('ids/user'), 1000, 1000);
  fs.mkdirSync(at('ids/dir-big'));
  fs.lchownSync(at('ids/dir-big'), BIG_UID, BIG_GID);
  fs.symlinkSync(B('user'), at('ids/symlink-user'));
  fs.lchownSync(at('ids/symlink-user'), 1000, 1001);

  // Times (set at the end).
  for (const name of Object.keys(SPECIAL_TIMES)) file(name, `${name}\n`);

  // Modes.
  file('modes/setuid', 'setuid\n', 0o4755);
  file('modes/setgid', 'setgid\n', 0o2755);
  file('modes/all-special', 'ugs\n', 0o7777);
  file('modes/none', 'no bits\n', 0o000);
  fs.mkdirSync(at('modes/sticky-dir'));
  fs.chmodSync(at('modes/sticky-dir'), 0o1777);
  fs.mkdirSync(at('modes/private-dir'));
  fs.chmodSync(at('modes/private-dir'), 0o700);
  for (const [rel, mode] of [['modes/setuid', 0o4755], ['modes/setgid', 0o2755], ['modes/all-special', 0o7777]] as const) fs.chmodSync(at(rel), mode);

  // Devices and FIFOs.
  fs.mkdirSync(at('dev'));
  run('mknod', ['-m', '666', at('dev/null').toString(), 'c', '1', '3']);
  run('mknod', ['-m', '660', at('dev/loop0').toString(), 'b', '7', '0']);
  run('mknod', ['-m', '600', at('dev/big-minor').toString(), 'c', '259', '1048575']);
  run('mkfifo', ['-m', '600', at('dev/fifo').toString()]);

  // Xattrs: text, binary (NUL and high bytes), a name with '=' and '%' (escaped %3D/%25 by
  // libarchive), a directory's xattr, and security.capability.
  file('xattr/text', 'text xattr\n');
  run('setfattr', ['-n', 'user.text', '-v', 'hello world', at('xattr/text').toString()]);
  file('xattr/binary', 'binary xattr\n');
  run('setfattr', ['-n', 'user.bin', '-v', '0x00ff80fe0a3d25', at('xattr/binary').toString()]);
  run('setfattr', ['-n', 'user.utf8', '-v', '0x' + hex(B('caf\u00e9')), at('xattr/binary').toString()]);
  file('xattr/odd-name', 'odd xattr name\n');
  run('setfattr', ['-n', 'user.a=b%c', '-v', 'odd', at('xattr/odd-name').toString()]);
  fs.mkdirSync(at('xattr/dir'));
  run('setfattr', ['-n', 'user.dir', '-v', 'on a directory', at('xattr/dir').toString()]);
  file('xattr/cap', 'capability\n', 0o755);
  const setcapUsed = commandExists('setcap');
  if (setcapUsed) run('setcap', ['cap_net_raw+ep', at('xattr/cap').toString()]);
  else run('setfattr', ['-n', 'security.capability', '-v', '0x' + hex(CAP_NET_RAW), at('xattr/cap').toString()]);

  // The sparse file: 9 GiB, three small data pieces.
  const sp = path.join(sparseRoot, SPARSE_PATH);
  fs.mkdirSync(path.dirname(sp), { recursive: true });
  const fd = fs.openSync(sp, 'w');
  try {
    fs.ftruncateSync(fd, SPARSE_SIZE);
    for (const [off, len, fill] of SPARSE_PIECES) fs.writeSync(fd, Buffer.alloc(len, fill), 0, len, off);
  } finally {
    fs.closeSync(fd);
  }

  // Times last, deepest first, symlinks not followed, exact nanoseconds.
  const special = Object.fromEntries(Object.entries(SPECIAL_TIMES).map(([k, v]) => [k, v.toString()]));
  execFileSync('python3', ['-c', SET_TIMES_PY, root, sparseRoot, BASE_MTIME_NS.toString(), JSON.stringify(special)], { stdio: ['ignore', 'ignore', 'pipe'] });

  return {
    root,
    sparseRoot,
    top: fs.readdirSync(root).sort(),
    paths: {
      longest: p.len1000,
      slash100: p.slash100,
      slash99: p.slash99,
      slash155: p.slash155,
      slash154: p.slash154,
      longSymlink: B('links/long-symlink'),
      longSymlinkTarget,
      longHardlink: B('links/hard-to-long'),
      all: allLong,
    },
    setcapUsed,
  };
}

const SET_TIMES_PY = `
import os, sys, json
base_ns = int(sys.argv[3]); special = json.loads(sys.argv[4])
for top in (sys.argv[1], sys.argv[2]):
    btop = os.fsencode(top)
    for d, dirs, files in os.walk(btop, topdown=False):
        for n in files + dirs:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, btop).decode('utf-8', 'surrogateescape')
            t = int(special.get(rel, base_ns))
            os.utime(p, ns=(t, t), follow_symlinks=False)
    os.utime(btop, ns=(base_ns, base_ns))
`;
