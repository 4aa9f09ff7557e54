import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMounted, stopServer, tempDir } from './helpers/mount-harness';
import { BIG_XATTR, BIN_XATTR, LATIN1_NAME, LINK_TARGET, MANY_XATTR_NAMES, ODD_XATTR_NAME, TREE, UTF8_NAME } from './helpers/native-fuse-tree';

/*
 * The project's fork of fuse-native's native part (native/fuse), mounted directly: a tiny
 * in-memory tree (helpers/native-fuse-tree.ts) served by a child process
 * (helpers/native-fuse-server.ts) and read with real tools from here. Every check below is one
 * stock fuse-native 2.2.6 gets wrong: names arrive as UTF-8 with U+FFFD, times as unsigned
 * milliseconds, xattrs over a short buffer as EIO, listxattr's length with 128 bytes of slop.
 * (OCIMOUNT_STOCK_FUSE_NATIVE=1 runs the same server on stock fuse-native to see them fail.)
 */

const SERVER = path.join(__dirname, 'helpers', 'native-fuse-server.js');
const b = (s: string) => Buffer.from(s, 'latin1');

/** Runs a real process with byte (Buffer) output; never throws on an exit code. */
function runBytes(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', timeout: 30_000, maxBuffer: 16 * 1024 * 1024, env: env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(new Error(`${cmd} ${args.join(' ')}: ${String(err)}`));
      resolve({ code, stdout, stderr: stderr.toString() });
    });
  });
}

/** Runs a Python snippet; sys.argv[1:] are `args`. Its stdout as text. */
async function python(code: string, ...args: string[]): Promise<string> {
  const r = await runBytes('python3', ['-c', code, ...args]);
  assert.equal(r.code, 0, `python3 failed: ${r.stderr}`);
  return r.stdout.toString();
}

describe('native fork of fuse-native: bytes, times and xattrs as the kernel carries them', () => {
  let mnt: string;
  let server: ChildProcess | undefined;
  let serverErr = '';
  const at = (name: string) => path.join(mnt, name);

  before(async () => {
    mnt = tempDir('native');
    server = spawn(process.execPath, [SERVER, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stderr!.on('data', (d) => (serverErr += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server not ready after 20 s: ${serverErr}`)), 20_000);
        server!.stdout!.on('data', (d) => {
          if (String(d).includes('ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
        server!.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`server exited with ${code} before ready: ${serverErr}`));
        });
      });
    } catch (err) {
      await stopServer(server, mnt);
      throw err;
    }
  });

  after(async () => {
    try {
      if (server) await stopServer(server, mnt);
    } finally {
      assert.equal(isMounted(mnt), false, 'left mounted');
      fs.rmdirSync(mnt);
    }
  });

  it('lists names as their exact bytes (invalid UTF-8 included) and opens them by those bytes', async () => {
    const expected = TREE.map((n) => b(n.name)).sort(Buffer.compare);
    const find = await runBytes('find', [mnt, '-mindepth', '1', '-maxdepth', '1', '-printf', '%f\\0']);
    assert.equal(find.code, 0, find.stderr);
    const found = splitNul(find.stdout).sort(Buffer.compare);
    assert.deepEqual(found.map(hex), expected.map(hex));
    const ls = await runBytes('ls', ['-1', '-N', mnt], { ...process.env, LC_ALL: 'C' });
    assert.equal(ls.code, 0, ls.stderr);
    assert.ok(ls.stdout.includes(Buffer.concat([b(LATIN1_NAME), Buffer.from('\n')])), `ls: ${hex(ls.stdout)}`);
    assert.ok(ls.stdout.includes(Buffer.concat([b(UTF8_NAME), Buffer.from('\n')])), `ls: ${hex(ls.stdout)}`);
    // Looked up by the same bytes: the lookup path reaches the server unchanged.
    const read = `import os, sys\nfor h in sys.argv[2:]:\n    print(open(os.fsencode(sys.argv[1]) + b'/' + bytes.fromhex(h), 'rb').read().decode().strip())`;
    assert.equal(await python(read, mnt, hex(b(LATIN1_NAME)), hex(b(UTF8_NAME))), 'latin1 name\nutf-8 name\n');
    assert.equal(fs.readFileSync(path.join(mnt, 'café'), 'utf8'), 'utf-8 name\n');
  });

  it('shows signed seconds and nanoseconds: 1960, 2025 to the nanosecond, 2255, and a fractional mtime', async () => {
    const st = await runBytes('stat', ['-c', '%X %Y %Z %y', at('old'), at('precise'), at('future'), at('fraction')], { ...process.env, TZ: 'UTC' });
    assert.equal(st.code, 0, st.stderr);
    assert.deepEqual(st.stdout.toString().trim().split('\n'), [
      '-315360000 -315360000 -315360000 1960-01-04 00:00:00.000000000 +0000',
      '1748089464 1748089464 1748089464 2025-05-24 12:24:24.951928467 +0000',
      '9000000000 9000000000 9000000000 2255-03-14 16:00:00.000000000 +0000',
      '1600000000 1600000000 1600000000 2020-09-13 12:26:40.250000000 +0000',
    ]);
    const precise = await runBytes('stat', ['-c', '%.9X %.9Y %.9Z', at('precise')]);
    assert.equal(precise.stdout.toString(), '1748089464.951928467 1748089464.951928467 1748089464.951928467\n');
    assert.equal(await python('import os, sys\nprint(os.stat(sys.argv[1]).st_mtime_ns, os.stat(sys.argv[2]).st_mtime_ns)', at('precise'), at('old')), '1748089464951928467 -315360000000000000\n');
  });

  it('reads a symlink target back byte for byte', async () => {
    const r = await runBytes('readlink', [at('link')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hex(r.stdout), hex(Buffer.concat([b(LINK_TARGET), Buffer.from('\n')])));
  });

  // Stock fuse-native passes this one too (getfattr asks the size first, and stock copied values
  // byte for byte); it guards the fork's native-side copy, up to Linux's 64 KiB.
  it('gives binary xattr values exactly: getfattr -d -e hex and --only-values', async () => {
    const dump = await runBytes('getfattr', ['--absolute-names', '-d', '-e', 'hex', at('xattrs')]);
    assert.equal(dump.code, 0, dump.stderr);
    const lines = dump.stdout.toString().split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(lines, [`user.bin=0x${BIN_XATTR.toString('hex')}`, `user.text=0x${Buffer.from('hello').toString('hex')}`]);
    const only = await runBytes('getfattr', ['--absolute-names', '-n', 'user.bin', '--only-values', at('xattrs')]);
    assert.equal(only.code, 0, only.stderr);
    assert.equal(hex(only.stdout), hex(BIN_XATTR));
    const big = await runBytes('getfattr', ['--absolute-names', '-n', 'user.big', '--only-values', at('big-xattr')]);
    assert.equal(big.code, 0, big.stderr);
    assert.ok(big.stdout.equals(BIG_XATTR), `user.big: ${big.stdout.length} bytes back`);
  });

  it("follows the size protocol: Python's 128-byte first try gets ERANGE and retries; size 0 is the exact length", async () => {
    // os.getxattr tries 128 bytes first, then 64 KiB; os.listxattr 256 bytes, then 64 KiB.
    assert.equal(await python('import os, sys\nprint(os.getxattr(sys.argv[1], "user.bin").hex())', at('xattrs')), `${BIN_XATTR.toString('hex')}\n`);
    assert.equal(await python('import os, sys\nprint(os.getxattr(sys.argv[1], "user.big").hex())', at('big-xattr')), `${BIG_XATTR.toString('hex')}\n`);
    assert.equal(await python('import os, sys\nprint("\\n".join(sorted(os.listxattr(sys.argv[1]))))', at('many-xattrs')), `${MANY_XATTR_NAMES.join('\n')}\n`);
    // The raw syscalls: size 0 answers the exact length, a short buffer ERANGE.
    const probe = [
      'import ctypes, errno, os, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'libc.getxattr.restype = libc.listxattr.restype = ctypes.c_ssize_t',
      'libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]',
      'libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]',
      'p = os.fsencode(sys.argv[1]); small = ctypes.create_string_buffer(10)',
      'def err(r): return errno.errorcode[ctypes.get_errno()] if r < 0 else "ok"',
      'n = libc.getxattr(p, b"user.bin", None, 0); r = libc.getxattr(p, b"user.bin", small, 10); e = err(r)',
      'ln = libc.listxattr(p, None, 0); r2 = libc.listxattr(p, small, 10); e2 = err(r2)',
      'print(n, r, e, ln, r2, e2)',
    ].join('\n');
    // "user.bin\0user.text\0" is 19 bytes.
    assert.equal(await python(probe, at('xattrs')), '200 -1 ERANGE 19 -1 ERANGE\n');
  });

  it('lists and reads xattr names as bytes', async () => {
    const names = await python('import os, sys\nprint(" ".join(os.fsencode(n).hex() for n in os.listxattr(sys.argv[1])))', at('odd-xattr-name'));
    assert.equal(names, `${hex(b(ODD_XATTR_NAME))}\n`);
    const value = await python('import os, sys\nprint(os.getxattr(sys.argv[1], bytes.fromhex(sys.argv[2])).decode())', at('odd-xattr-name'), hex(b(ODD_XATTR_NAME)));
    assert.equal(value, 'odd\n');
    const dump = await runBytes('getfattr', ['--absolute-names', '-d', '-e', 'hex', at('odd-xattr-name')]);
    assert.equal(dump.code, 0, dump.stderr);
    assert.equal(hex(dump.stdout.subarray(dump.stdout.indexOf('\n') + 1)), hex(Buffer.concat([b(ODD_XATTR_NAME), Buffer.from('=0x6f6464\n\n')])));
  });
});

function splitNul(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0, start)) {
    out.push(buf.subarray(start, i));
    start = i + 1;
  }
  return out;
}

function hex(buf: Buffer): string {
  return buf.toString('hex');
}
