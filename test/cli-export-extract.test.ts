import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tarStream from 'tar-stream';
import { buildArchive } from './helpers/archive-builder';
import { BIN, FIXTURES, ocimount, run, withMount, type RunResult } from './helpers/mount-harness';
import { assertError, lines, scratchDirs } from './helpers/cli-checks';

/*
 * export and extract, run as child processes and checked against a real FUSE mount of the same
 * image: what they write must equal what the mount shows (bytes, symlink targets, types, modes,
 * mtimes, hard links; owners where the test runs as root and so can keep them).
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const OVERWRITTEN = path.join(FIXTURES, 'ggcr-overwritten-file.tar');
const IS_ROOT = process.getuid?.() === 0;

const scratch = scratchDirs();

/**
 * Every path below `dir` with type, mode, owner, size, whole-second mtime, link count and link
 * target, sorted. Left out where two correct trees may differ: a symlink's mode (always 0777 on
 * Linux disks), a directory's size and link count (filesystem-specific), and owners unless
 * `owners` (only root can give files away).
 */
async function snapshot(dir: string, owners: boolean, subpaths: string[] = ['.']): Promise<string[]> {
  const out: string[] = [];
  for (const sub of subpaths) {
    const r = await run('find', [path.join(dir, sub), ...(sub === '.' ? ['-mindepth', '1'] : []), '-printf', `${sub === '.' ? '' : `${sub}/`}%P|%y|%m|%U|%G|%s|%Ts|%n|%l\n`]);
    assert.equal(r.code, 0, r.stderr);
    for (const line of lines(r.stdout)) {
      const [p, y, m, u, g, s, t, n, l] = line.split('|');
      out.push([p.replace(/\/$/, ''), y, y === 'l' ? '-' : m, owners ? u : '-', owners ? g : '-', y === 'd' ? '-' : s, t, y === 'd' ? '-' : n, l].join('|'));
    }
  }
  return out.sort();
}

async function diffTrees(a: string, b: string, extra: string[] = []): Promise<void> {
  const d = await run('diff', ['-r', '--no-dereference', ...extra, a, b]);
  assert.equal(d.code, 0, `diff -r ${a} ${b}:\n${d.stdout}${d.stderr}`);
}

/** The pax records tar-stream reads for entry `name` of a tar file. */
async function paxRecords(tarFile: string, name: string): Promise<Record<string, string> | undefined> {
  const ex = tarStream.extract();
  fs.createReadStream(tarFile).pipe(ex);
  let found: Record<string, string> | undefined;
  for await (const entry of ex) {
    if (entry.header.name === name) found = entry.header.pax as Record<string, string>;
    entry.resume();
  }
  return found;
}

/** Everything the fixtures lack: devices, a fifo, xattrs, huge ids, a long path, mode 0000, 0555 dirs. */
let crafted: string;
before(async () => {
  crafted = path.join(scratch('cli-export'), 'crafted.tar');
  const when = new Date('2020-05-06T07:08:09Z');
  await buildArchive(crafted, {
    layout: 'docker-legacy',
    images: [
      {
        tags: ['crafted:1'],
        layers: [
          {
            entries: [
              { path: 'etc/', type: 'dir' },
              { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
              { path: 'escape', type: 'symlink', target: '../../../../../etc/passwd' },
              { path: 'abs', type: 'symlink', target: '/etc/passwd' },
              { path: 'ro/', type: 'dir', mode: 0o555, mtime: when },
              { path: 'ro/inner/', type: 'dir', mode: 0o500, mtime: when },
              { path: 'ro/inner/file', content: 'x', mode: 0o400, mtime: when },
              { path: 'zero', content: 'mode 0000', mode: 0 },
              { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
              { path: 'fifo', type: 'fifo', mode: 0o640 },
              { path: 'xa', content: 'with xattr', xattrs: { 'user.note': 'hello' } },
              { path: 'big', content: 'big ids', uid: 3000000, gid: 3000001 },
              { path: `a/${'long-directory-name-'.repeat(8)}/file-${'x'.repeat(90)}`, content: 'long' },
              { path: 'hl1', content: 'linked' },
              { path: 'hl2', type: 'link', target: 'hl1' },
              { path: 'setuid', content: 'su', mode: 0o4755 },
            ],
          },
          { entries: [{ path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/bash\n' }, { path: 'ro/.wh..wh..opq' }, { path: 'ro/new', content: 'new', mode: 0o444, mtime: when }] },
        ],
      },
    ],
  });
});

describe('ocimount export', () => {
  it('the tar GNU tar extracts equals the mounted rootfs (dive: whiteouts, 393 hard links)', async () => {
    const dir = scratch('export');
    const tarFile = path.join(dir, 'rootfs.tar');
    const r = await ocimount(['export', DIVE, '-o', tarFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const listing = await run('tar', ['-tvf', tarFile]);
    assert.equal(listing.code, 0, listing.stderr);
    assert.equal(lines(listing.stdout).filter((l) => l.includes(' link to bin/[')).length, 392);
    assert.ok(!listing.stdout.includes('.wh.'), 'no whiteout markers in the export');
    assert.ok(!/ \.\//.test(listing.stdout), 'paths are plain, no ./ prefix');
    const out = path.join(dir, 'x');
    fs.mkdirSync(out);
    const x = await run('tar', ['-xf', tarFile, '-C', out, ...(IS_ROOT ? [] : ['--no-same-owner'])]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal((await run('stat', ['-c', '%h %a', path.join(out, 'bin/[')])).stdout, '393 755\n');
    await withMount(DIVE, ['--rootfs-only'], async ({ mnt }) => {
      await diffTrees(mnt, out);
      assert.deepEqual(await snapshot(out, IS_ROOT), await snapshot(mnt, IS_ROOT));
    });
    // -o - streams the same bytes to stdout.
    const piped = await new Promise<Buffer>((resolve, reject) =>
      execFile(process.execPath, [BIN, 'export', DIVE, '-o', '-'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    assert.ok(piped.equals(fs.readFileSync(tarFile)), 'export -o - writes the same tar as -o FILE');
  });

  it('devices, fifos, xattrs, big ids, long paths, mode 0000 and opaque dirs survive (against the mount)', async () => {
    const dir = scratch('export-crafted');
    const tarFile = path.join(dir, 'rootfs.tar');
    const r = await ocimount(['export', crafted, '-o', tarFile]);
    assert.equal(r.code, 0, r.stderr);
    const listing = lines((await run('tar', ['--xattrs', '-tvf', tarFile])).stdout);
    assert.ok(listing.some((l) => /^crw-rw-rw- +0\/0 +1,3 .* dev\/null$/.test(l)), listing.join('\n'));
    assert.ok(listing.some((l) => /^prw-r----- +0\/0 .* fifo$/.test(l)));
    assert.ok(listing.some((l) => /^-rw-r--r--\* .* xa$/.test(l)), 'xa carries an xattr');
    assert.ok(listing.some((l) => /^-rw-r--r-- +3000000\/3000001 .* big$/.test(l)));
    assert.ok(listing.some((l) => /^---------- .* zero$/.test(l)));
    assert.ok(listing.some((l) => / hl2 link to hl1$/.test(l)));
    assert.ok(!listing.some((l) => l.includes('ro/inner')), 'the opaque marker emptied ro/');
    const out = path.join(dir, 'x');
    fs.mkdirSync(out);
    // Device nodes and foreign owners need root; without it, compare the rest.
    const x = await run('tar', ['--xattrs', '--xattrs-include=*', '-xpf', tarFile, '-C', out, ...(IS_ROOT ? [] : ['--no-same-owner', '--exclude=dev/null'])]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal((await paxRecords(tarFile, 'xa'))?.['SCHILY.xattr.user.note'], 'hello');
    await withMount(crafted, ['--rootfs-only'], async ({ mnt }) => {
      // diff -r reads every file; a non-root owner cannot read the one with mode 0000.
      await diffTrees(mnt, out, ['--exclude=fifo', '--exclude=null', ...(IS_ROOT ? [] : ['--exclude=zero'])]);
      const mounted = (await snapshot(mnt, IS_ROOT)).filter((l) => IS_ROOT || !l.startsWith('dev/null|'));
      assert.deepEqual(await snapshot(out, IS_ROOT), mounted);
    });
  });

  it('gzip and zstd layers: the export equals the mount too', async () => {
    for (const name of ['ggcr-whiteout-dir-gzip.tar', 'dive-oci-zstd.tar']) {
      const archive = path.join(FIXTURES, name);
      const dir = scratch('export-compressed');
      const r = await ocimount(['export', archive, '-o', path.join(dir, 'rootfs.tar')]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const out = path.join(dir, 'x');
      fs.mkdirSync(out);
      assert.equal((await run('tar', ['-xf', path.join(dir, 'rootfs.tar'), '-C', out, ...(IS_ROOT ? [] : ['--no-same-owner'])])).code, 0);
      await withMount(archive, ['--rootfs-only'], async ({ mnt }) => {
        await diffTrees(mnt, out);
        assert.deepEqual(await snapshot(out, IS_ROOT), await snapshot(mnt, IS_ROOT), name);
      });
    }
  });

  it('errors: a missing archive exits 3, an unwritable output 1, -o is required (2); no partial file is left', async () => {
    const dir = scratch('export-err');
    assertError(await ocimount(['export', path.join(FIXTURES, 'missing.tar'), '-o', path.join(dir, 'r.tar')]), 3, /no such file or directory/);
    assertError(await ocimount(['export', DIVE, '-o', path.join(dir, 'no/such/dir/r.tar')]), 1, /cannot write/);
    assertError(await ocimount(['export', DIVE]), 2, /required option '-o, --output <file>' not specified/);
    assertError(await ocimount(['export', '--image', 'nope', DIVE, '-o', path.join(dir, 'r.tar')]), 1, /no image "nope"/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

describe('ocimount extract', () => {
  it('files and subtrees equal the mount: bytes, modes, mtimes, hard links; owners only with --same-owner', async () => {
    const out = path.join(scratch('extract'), 'out');
    const paths = ['/root', '/bin', '/etc/shadow', '/home'];
    const r = await ocimount(['extract', DIVE, ...paths, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.deepEqual(fs.readdirSync(out).sort(), ['bin', 'etc', 'home', 'root']);
    assert.deepEqual(fs.readdirSync(path.join(out, 'etc')), ['shadow']);
    // Without --same-owner everything belongs to whoever ran the command (the image says 65534 for /home).
    const me = String(process.getuid?.());
    assert.equal((await run('stat', ['-c', '%u', path.join(out, 'home')])).stdout.trim(), me);
    assert.equal((await run('stat', ['-c', '%h', path.join(out, 'bin/[')])).stdout.trim(), '393');
    await withMount(DIVE, ['--rootfs-only'], async ({ mnt }) => {
      for (const p of ['root', 'bin', 'home']) await diffTrees(path.join(mnt, p), path.join(out, p));
      assert.equal(fs.readFileSync(path.join(out, 'etc/shadow'), 'utf8'), fs.readFileSync(path.join(mnt, 'etc/shadow'), 'utf8'));
      const subs = ['root', 'bin', 'home'];
      assert.deepEqual(await snapshot(out, false, subs), await snapshot(mnt, false, subs));
      const st = async (base: string) => (await run('stat', ['-c', '%a %Y', ...['etc/shadow', 'root', 'root/saved.txt', 'home'].map((p) => path.join(base, p))])).stdout;
      assert.equal(await st(out), await st(mnt));
    });
    assert.equal((await run('stat', ['-c', '%a', path.join(out, 'etc/shadow'), path.join(out, 'root')])).stdout, '600\n700\n');

    // Extracting again over the same directory works (files are replaced, directories reused).
    assert.equal((await ocimount(['extract', DIVE, '/root', '-o', out])).code, 0);
  });

  it('--same-owner keeps the image\'s owners', { skip: !IS_ROOT && 'needs root to give files to another owner' }, async () => {
    const owned = path.join(scratch('extract-owner'), 'out');
    assert.equal((await ocimount(['extract', '--same-owner', DIVE, '/home', '-o', owned])).code, 0);
    assert.equal((await run('stat', ['-c', '%u:%g', path.join(owned, 'home')])).stdout.trim(), '65534:65534');
  });

  it('the whole crafted image equals the mount: symlinks verbatim, 0555 dirs set last, fifos, devices as root', async () => {
    const out = path.join(scratch('extract-crafted'), 'out');
    // As root, --same-owner reproduces the image exactly, device nodes included.
    const r = await ocimount(['extract', '-v', ...(IS_ROOT ? ['--same-owner'] : []), crafted, '/', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lines(r.stdout).includes('/ro/new'));
    assert.equal(fs.readlinkSync(path.join(out, 'escape')), '../../../../../etc/passwd');
    assert.equal(fs.readlinkSync(path.join(out, 'abs')), '/etc/passwd');
    assert.equal((await run('stat', ['-c', '%a %Y', path.join(out, 'ro'), path.join(out, 'ro/new')])).stdout, '555 1588748889\n444 1588748889\n');
    if (!IS_ROOT) assert.match(r.stderr, /\/dev\/null: skipped char device 1,3 \(device nodes are made only as root with --same-owner\)/);
    await withMount(crafted, ['--rootfs-only'], async ({ mnt }) => {
      await diffTrees(mnt, out, ['--exclude=fifo', '--exclude=null', ...(IS_ROOT ? [] : ['--exclude=zero'])]);
      const mounted = (await snapshot(mnt, false)).filter((l) => IS_ROOT || !l.startsWith('dev/null|'));
      assert.deepEqual(await snapshot(out, false), mounted);
    });
  });

  it('as an ordinary user: no devices, directories stay deletable, --same-owner ignored with a warning', { skip: !IS_ROOT || !fs.existsSync('/usr/bin/setpriv') ? 'needs root and setpriv to run as nobody' : false }, async () => {
    const base = scratch('extract-nobody');
    fs.chmodSync(base, 0o777);
    const out = path.join(base, 'out');
    const archive = path.join(base, 'crafted.tar');
    fs.copyFileSync(crafted, archive);
    fs.chmodSync(archive, 0o644);
    const asNobody = (args: string[]) =>
      new Promise<RunResult>((resolve) =>
        execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args], { env: { ...process.env, HOME: base, XDG_CACHE_HOME: base } }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
        ),
      );
    const r = await asNobody(['extract', '--same-owner', archive, '/', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: --same-owner needs root; files will belong to you/);
    assert.match(r.stderr, /warning: \/dev\/null: skipped char device 1,3 \(device nodes are made only as root with --same-owner\)/);
    assert.equal(fs.existsSync(path.join(out, 'dev/null')), false);
    assert.equal((await run('stat', ['-c', '%u %a', path.join(out, 'etc/passwd'), path.join(out, 'ro'), path.join(out, 'zero')])).stdout, '65534 644\n65534 755\n65534 0\n');
    assert.equal((await asNobody(['extract', '--exact-modes', archive, '/ro', '-o', path.join(base, 'exact')])).code, 0);
    assert.equal((await run('stat', ['-c', '%a', path.join(base, 'exact/ro')])).stdout, '555\n');
    const rm = await new Promise<number>((resolve) => execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'rm', '-rf', out], (err) => resolve(err ? 1 : 0)));
    assert.equal(rm, 0, 'the user who extracted can delete it all');
    fs.chmodSync(path.join(base, 'exact/ro'), 0o755);
  });

  it('a symlink as the last component is extracted as the link; intermediate ones are followed in the image', async () => {
    const out = path.join(scratch('extract-link'), 'out');
    const r = await ocimount(['extract', OVERWRITTEN, '/foo.txt', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(out), ['foo.txt']);
    assert.equal(fs.readlinkSync(path.join(out, 'foo.txt')), 'bar.txt');
  });

  it('never writes through a symlink already in DIR; a missing path writes nothing (exit 1)', async () => {
    const base = scratch('extract-safe');
    const victim = path.join(base, 'victim');
    const out = path.join(base, 'out');
    fs.mkdirSync(victim);
    fs.mkdirSync(out);
    fs.symlinkSync(victim, path.join(out, 'etc'));
    assertError(await ocimount(['extract', DIVE, '/etc/shadow', '-o', out]), 1, /out\/etc exists and is not a directory \(a symlink; not following it\)/);
    assert.deepEqual(fs.readdirSync(victim), []);
    // A file already at the output path that is a symlink is replaced, not written through.
    const target = path.join(base, 'outside.txt');
    fs.writeFileSync(target, 'untouched');
    const out2 = path.join(base, 'out2');
    fs.mkdirSync(path.join(out2, 'root'), { recursive: true });
    fs.symlinkSync(target, path.join(out2, 'root/saved.txt'));
    assert.equal((await ocimount(['extract', DIVE, '/root/saved.txt', '-o', out2])).code, 0);
    assert.equal(fs.readFileSync(target, 'utf8'), 'untouched');
    assert.ok(fs.lstatSync(path.join(out2, 'root/saved.txt')).isFile());

    const none = path.join(base, 'none');
    assertError(await ocimount(['extract', DIVE, '/root', '/nope', '-o', none]), 1, /\/nope: no such file or directory in the image/);
    assert.equal(fs.existsSync(none), false);
    assertError(await ocimount(['extract', DIVE, '/root']), 2, /required option '-o, --output <dir>' not specified/);
  });
});
