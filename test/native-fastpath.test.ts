import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { dockerArchive, file, hardlink, layer, outerTar, paxFile, symlink } from './helpers/hostile-build';
import { isMounted, run, tempDir, withMount } from './helpers/mount-harness';
import * as raw from './helpers/raw-tar';

/*
 * The native fast paths (native/fuse/fuse-native.c, "The answer cache"): once JS has answered a
 * directory's READDIR, LOOKUP of its names and READ of its plain files are answered on libfuse's
 * threads, without JS. These tests hold them to what the JS paths promise: the same stats to the
 * nanosecond, a read-only mount, and never a byte of an archive that is no longer the one indexed.
 * Every mount runs in a child process (withMount); this process only does I/O on it.
 */

const work = tempDir('fastpath');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const out = (name: string) => path.join(work, `${n++}-${name}`);

/** Deterministic, position-dependent bytes, so a read from the wrong offset cannot pass. */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** A one-layer docker archive whose `d/` holds a 100 kB file and a small one; `seed` picks the bytes. */
function twin(name: string, seed: number): string {
  const a = dockerArchive([layer(raw.entry({ name: 'd/', typeflag: '5', mode: 0o755 }), file('d/big.bin', pattern(100_000, seed)), file('d/small', seed === 1 ? 'good\n' : 'EVIL\n'))]);
  const p = out(name);
  fs.writeFileSync(p, outerTar(a.members));
  return p;
}

/** What the test process sees reading `p` from the mount: its bytes, or the error code. */
function readOrCode(p: string): Buffer | string {
  try {
    return fs.readFileSync(p);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

describe('native reads of a changed archive', () => {
  it('files listed before an in-place overwrite that puts the old mtime back: EIO, never the new bytes', async () => {
    // `cp other.tar live.tar && touch -r saved live.tar` (or `rsync --inplace -t`, `cp -p` from a
    // copy with the same times): same inode, size and mtime; only ctime tells. The JS path
    // compares ctime; the native one must too.
    const live = twin('live.tar', 1);
    const other = twin('other.tar', 2);
    assert.equal(fs.statSync(other).size, fs.statSync(live).size);
    const saved = out('saved-times');
    fs.writeFileSync(saved, '');
    await withMount(live, ['--no-cache'], async ({ mnt, stderr }) => {
      const d = path.join(mnt, 'rootfs/d');
      // The listing goes through JS and fills the native cache; nothing is read yet.
      assert.deepEqual(fs.readdirSync(d).sort(), ['big.bin', 'small']);
      assert.equal((await run('touch', ['-r', live, saved])).code, 0);
      const before = fs.statSync(live, { bigint: true });
      fs.copyFileSync(other, live);
      assert.equal((await run('touch', ['-r', saved, live])).code, 0);
      const now = fs.statSync(live, { bigint: true });
      assert.equal(now.ino, before.ino);
      assert.equal(now.size, before.size);
      assert.equal(now.mtimeNs, before.mtimeNs, 'the old mtime is back');
      assert.notEqual(now.ctimeNs, before.ctimeNs);
      for (const f of ['small', 'big.bin']) {
        const got = readOrCode(path.join(d, f));
        assert.equal(got, 'EIO', `${f}: ${Buffer.isBuffer(got) ? `served ${JSON.stringify(got.subarray(0, 8).toString('latin1'))}` : got}`);
      }
      // JS said why, in the log.
      for (let i = 0; i < 50 && !/changed since it was opened \(status changed\)/.test(stderr()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(stderr(), /changed since it was opened \(status changed\)/);
    });
  });

  it('an OCI layout whose second layer blob is rewritten before its directory is listed: EIO for that layer, the other still reads', async () => {
    // Each layer is its own file here: every one must be compared with what was indexed, not
    // only the first one a listing happens to meet.
    const dir = out('oci');
    const built = await buildArchive(dir, {
      layout: 'oci-dir',
      images: [{ layers: [{ entries: [{ path: 'd', type: 'dir' }, { path: 'd/a', content: 'layer one\n' }] }, { entries: [{ path: 'd/b', content: 'good bytes\n' }] }] }],
    });
    const blob = path.join(dir, 'blobs', ...built.images[0].layerDigests[1].split(':'));
    await withMount(dir, ['--no-cache'], async ({ mnt }) => {
      const bytes = fs.readFileSync(blob);
      const at = bytes.indexOf('good bytes');
      assert.ok(at > 0);
      const fd = fs.openSync(blob, 'r+');
      fs.writeSync(fd, Buffer.from('EVIL!bytes'), 0, 10, at);
      fs.closeSync(fd);
      // Listed right away (before the 3 s watcher looks), then read: the layer blob changed
      // after indexing, so its bytes must not be served.
      const d = path.join(mnt, 'rootfs/d');
      assert.deepEqual(fs.readdirSync(d).sort(), ['a', 'b']);
      assert.equal(readOrCode(path.join(d, 'b')), 'EIO');
      assert.equal(String(readOrCode(path.join(d, 'a'))), 'layer one\n');
      // Still so once the watcher has seen it.
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal(readOrCode(path.join(d, 'b')), 'EIO');
    });
  });

  it('files listed before the archive is removed (only its link count moves): still their indexed bytes', async () => {
    const live = twin('removed.tar', 1);
    await withMount(live, ['--no-cache'], async ({ mnt }) => {
      const d = path.join(mnt, 'rootfs/d');
      assert.deepEqual(fs.readdirSync(d).sort(), ['big.bin', 'small']);
      fs.rmSync(live);
      assert.equal(String(readOrCode(path.join(d, 'small'))), 'good\n');
      assert.ok((readOrCode(path.join(d, 'big.bin')) as Buffer).equals(pattern(100_000, 1)));
    });
  });
});

/** An image with one of each kind of entry whose stat the cache carries. */
function kindsArchive(): string {
  const long = 'n'.repeat(300);
  const a = dockerArchive([
    layer(
      raw.entry({ name: 'k/', typeflag: '5', mode: 0o750, mtime: 1700000000 }),
      paxFile('k/ns', 'nanoseconds\n', {}, [['mtime', '1748089464.951928467']]),
      paxFile('k/old', 'before 1970\n', {}, [['mtime', '-315360000.25']]),
      file('k/plain', pattern(70_000, 3), { mode: 0o640, uid: 1234, gid: 5678 }),
      hardlink('k/hard', 'k/plain'),
      symlink('k/sym', 'plain'),
      raw.entry({ name: 'k/chr', typeflag: '3', mode: 0o600, devmajor: 1, devminor: 3, mtime: 1700000000 }),
      raw.entry({ name: 'k/blk', typeflag: '4', mode: 0o660, devmajor: 8, devminor: 300, mtime: 1700000000 }),
      raw.entry({ name: 'k/fifo', typeflag: '6', mode: 0o644, mtime: 1700000000 }),
      raw.entry({ name: 'k/sub/', typeflag: '5', mode: 0o700, mtime: 1600000000 }),
      file('k/sub/x', 'x\n'),
      paxFile(Buffer.from('k/bad\xff', 'latin1'), 'ff\n'),
      paxFile(`k/${long}`, 'long\n'),
      file('k/empty', ''),
    ),
  ]);
  const p = out('kinds.tar');
  fs.writeFileSync(p, outerTar(a.members));
  return p;
}

const STAT_FORMAT = '%n|%f|%u|%g|%s|%h|%i|%t:%T|%b|%.9X|%.9Y|%.9Z';
const KIND_NAMES = ['k', 'k/ns', 'k/old', 'k/plain', 'k/hard', 'k/sym', 'k/chr', 'k/blk', 'k/fifo', 'k/sub', 'k/sub/x', 'k/empty'];

describe('answers from the native cache are the answers JS gives', () => {
  it('stat of every kind (nanoseconds, before 1970, hard links, symlinks, devices, directories) and every byte', async () => {
    const archive = kindsArchive();
    const look = async (mnt: string, listFirst: boolean) => {
      const root = path.join(mnt, 'rootfs');
      // Listing first puts every name into the native cache (LOOKUP and READ then stay in C);
      // without it each stat is a JS getattr.
      if (listFirst) assert.equal((await run('ls', ['-laR', root])).code, 0);
      const st = await run('stat', ['-c', STAT_FORMAT, ...KIND_NAMES.map((k) => path.join(root, k))]);
      assert.equal(st.code, 0, st.stderr);
      const bytes = ['k/ns', 'k/old', 'k/plain', 'k/hard', 'k/sub/x', 'k/empty', `k/${'n'.repeat(300)}`].map((f) => fs.readFileSync(path.join(root, f)));
      const latin1 = fs.readdirSync(path.join(root, 'k'), { encoding: 'buffer' }).map((b) => b.toString('latin1')).sort();
      return { stat: st.stdout.split(mnt).join('MNT'), bytes, latin1 };
    };
    const fromJs = await withMount(archive, ['--no-cache'], ({ mnt }) => look(mnt, false));
    const fromCache = await withMount(archive, ['--no-cache'], ({ mnt }) => look(mnt, true));
    assert.equal(fromCache.stat, fromJs.stat);
    assert.deepEqual(fromCache.bytes, fromJs.bytes);
    assert.deepEqual(fromCache.latin1, fromJs.latin1);
    // The expectations themselves, so that both being wrong the same way does not pass.
    const lines = fromJs.stat.trim().split('\n');
    assert.match(lines[1], /\|1748089464\.951928467\|/);
    assert.match(lines[2], /\|-315360000\.250000000\|/);
    const [plain, hard] = [lines[3].split('|'), lines[4].split('|')];
    assert.equal(plain[6], hard[6], 'hard links share an inode');
    assert.equal(plain[5], '2');
    assert.match(lines[6], /\|1:3\|/);
    assert.match(lines[7], /\|8:12c\|/); // minor 300 = 0x12c
    assert.ok(fromJs.bytes[2].equals(pattern(70_000, 3)));
    assert.ok(fromJs.bytes[3].equals(pattern(70_000, 3)));
    assert.equal(fromJs.bytes[6].toString(), 'long\n');
    // The 300-byte name is not listed (longer than 255) but opens by its name: a miss in the
    // cache falls through to JS.
    assert.ok(!fromCache.latin1.includes(`${'n'.repeat(300)}`));
    assert.ok(fromCache.latin1.includes('bad\ufffd') || fromCache.latin1.includes('bad\xff'));
  });

  it('names not in a cached listing fall through to JS: missing names are ENOENT, `.` and `..` resolve', async () => {
    const archive = kindsArchive();
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      const k = path.join(mnt, 'rootfs/k');
      fs.readdirSync(k);
      assert.throws(() => fs.statSync(path.join(k, 'nope')), { code: 'ENOENT' });
      assert.throws(() => fs.statSync(path.join(k, 'plai')), { code: 'ENOENT' });
      assert.throws(() => fs.statSync(path.join(k, 'plainx')), { code: 'ENOENT' });
      assert.equal(fs.statSync(path.join(k, 'sub', '..', 'plain')).size, 70_000);
      assert.equal(fs.statSync(path.join(k, '.')).ino, fs.statSync(k).ino);
      // A second listing (from the kernel's cache or the native one) is the same.
      assert.deepEqual(fs.readdirSync(k).sort(), fs.readdirSync(k).sort());
    });
  });
});

describe('no opens reach JS, and the mount stays read-only', () => {
  it('write opens, O_TRUNC, creat, truncate and setxattr are EROFS; reads, xattrs and cp -a still work', async () => {
    const a = dockerArchive([
      layer(
        raw.entry({ name: 'd/', typeflag: '5', mode: 0o755 }),
        paxFile('d/f', 'content\n', {}, [['SCHILY.xattr.user.note', 'hello']]),
        file('d/g', pattern(5000, 4)),
      ),
    ]);
    const archive = out('ro.tar');
    fs.writeFileSync(archive, outerTar(a.members));
    for (const extra of [[], ['--rootfs-only'], ['--allow-other']]) {
      await withMount(archive, ['--no-cache', ...extra], async ({ mnt }) => {
        const d = path.join(mnt, extra.includes('--rootfs-only') ? '' : 'rootfs', 'd');
        fs.readdirSync(d); // the native cache holds d/ from here on
        const f = path.join(d, 'f');
        for (const flags of ['r+', 'w', 'a', fs.constants.O_RDONLY | fs.constants.O_TRUNC, fs.constants.O_WRONLY | fs.constants.O_CREAT]) {
          assert.throws(() => fs.closeSync(fs.openSync(f, flags)), { code: 'EROFS' }, `${extra} ${flags}`);
        }
        assert.throws(() => fs.writeFileSync(path.join(d, 'new'), 'x'), { code: 'EROFS' });
        assert.throws(() => fs.truncateSync(f, 0), { code: 'EROFS' });
        const sh = await run('sh', ['-c', `echo x > '${f}'`]);
        assert.notEqual(sh.code, 0);
        assert.match(sh.stderr, /Read-only file system/);
        const setx = await run('setfattr', ['-n', 'user.x', '-v', '1', f]);
        assert.match(setx.stderr, /Read-only file system/);
        assert.equal(fs.readFileSync(f, 'utf8'), 'content\n');
        const getx = await run('getfattr', ['--only-values', '-n', 'user.note', f]);
        assert.equal(getx.stdout, 'hello');
        const copy = out('cp-a');
        const cp = await run('cp', ['-a', d, copy]);
        assert.equal(cp.code, 0, cp.stderr);
        assert.equal(fs.readFileSync(path.join(copy, 'f'), 'utf8'), 'content\n');
        assert.ok(fs.readFileSync(path.join(copy, 'g')).equals(pattern(5000, 4)));
        assert.equal(fs.readFileSync(f, 'utf8'), 'content\n', 'the image is unchanged');
      });
    }
  });
});

const valgrind = ['/usr/bin/valgrind', '/usr/local/bin/valgrind'].find((p) => fs.existsSync(p));

describe('teardown', () => {
  // The FUSE thread, once its loop is over, frees the listings, closes the span files' own
  // descriptors and destroys the channels. libfuse's fuse_unmount frees its channel, which the
  // teardown then touched (fuse_session_remove_chan on it: a use after free, shown by valgrind
  // without the channel wrapper). Each way, with the wrapper and without, it must be clean.
  for (const cacheDirs of ['1', '0']) {
    it(`is clean under valgrind after native reads, with JS's descriptor closed first (cacheDirs ${cacheDirs})`, { skip: !valgrind && 'valgrind is not installed', timeout: 300_000 }, async () => {
      const mnt = tempDir('teardown');
      const data = out('span.bin');
      fs.writeFileSync(data, pattern(50_000, 5));
      const server = spawn(valgrind!, ['--error-exitcode=99', '--error-limit=no', process.execPath, path.join(__dirname, 'helpers', 'fastpath-teardown-server.js'), mnt, data], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, OCIMOUNT_FUSE_CACHE_DIRS: cacheDirs },
      });
      let stdout = '';
      let stderr = '';
      server.stdout!.on('data', (d) => (stdout += d));
      server.stderr!.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
      try {
        for (let i = 0; i < 1200 && !stdout.includes('ready') && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
        assert.ok(stdout.includes('ready'), stderr);
        assert.deepEqual(fs.readdirSync(mnt), ['f']);
        assert.ok(fs.readFileSync(path.join(mnt, 'f')).equals(pattern(50_000, 5)));
        server.kill('SIGTERM');
        const code = await exited;
        assert.match(stdout, /torn down .*"cachedListings":0/, stdout + stderr);
        assert.match(stdout, /"read":[1-9]/, 'the bytes came from the native side');
        assert.equal(code, 0, stderr.split('\n').filter((l) => /Invalid|at 0x|by 0x|ERROR SUMMARY/.test(l)).slice(0, 20).join('\n'));
      } finally {
        if (server.exitCode === null && server.signalCode === null) {
          server.kill('SIGKILL');
          await exited;
        }
        if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
        fs.rmdirSync(mnt);
      }
    });
  }
});
