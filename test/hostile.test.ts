import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { IndexCache } from '../src/cache/index-cache';
import { ImageView } from '../src/engine';
import { UserError } from '../src/errors';
import { EntryType } from '../src/tar/entry';
import type { Tree } from '../src/union/tree';
import { buildArchive } from './helpers/archive-builder';
import {
  dir,
  dockerArchive,
  file,
  hardlink,
  layer,
  measureOpen,
  outerTar,
  paxFile,
  sha256,
  symlink,
  writeDockerArchive,
  writeManyEntriesArchive,
  writeOciArchive,
  type Member,
} from './helpers/hostile-build';
import { isMounted, ocimount, run, tempDir, withMount } from './helpers/mount-harness';
import * as raw from './helpers/raw-tar';

/*
 * Issue 6, hostile content: archives built to escape, confuse or exhaust. Each case is checked
 * through the engine and through a real mount (ls, cat, find, readlink): nothing outside the
 * archive is read or shown, and nothing is written outside an extract's target.
 */

const work = tempDir('hostile');
const opened: ImageView[] = [];
after(async () => {
  await Promise.all(opened.map((v) => v.close()));
  fs.rmSync(work, { recursive: true, force: true });
});
let n = 0;
const out = (name: string) => path.join(work, `${n++}-${name}`);

async function open(archive: string, warnings: string[] = []): Promise<ImageView> {
  const v = await ImageView.open(archive, { onWarning: (w) => warnings.push(w) });
  opened.push(v);
  return v;
}

/** Every path of a tree ('' is the root) in walk order. */
const paths = (t: Tree) => [...t.walk()].map((node) => t.path(node));

/** Every path below `dir` of the mount, as find prints them (NUL-separated, so any byte survives). */
async function findAll(dirPath: string, extra: string[] = []): Promise<string[]> {
  // The trailing slash makes find enter a start that is a symlink (layers/0 -> layers/sha256:…).
  const r = await run('find', [`${dirPath}/`, ...extra, '-mindepth', '1', '-printf', '%P\\0']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\0').filter(Boolean).sort();
}

const sorted = (xs: string[]) => [...xs].sort();

/** The mount line of `mnt` in /proc/self/mountinfo, split into its per-mount and per-superblock options. */
function mountOptions(mnt: string): { mount: string[]; super: string[] } {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt);
  assert.ok(line, `${mnt} not in mountinfo`);
  const fields = line.split(' ');
  const sep = fields.indexOf('-');
  return { mount: fields[5].split(','), super: fields[sep + 3].split(',') };
}

describe('names and links that point outside the root', () => {
  const layer0 = layer(
    file('../x', 'escape 1'),
    file('a/../../x', 'escape 2'),
    paxFile('deep/../../../../etc/group', 'escape 3'),
    file('/etc/passwd', 'image passwd\n'),
    file('./ok', 'ok'),
    file('a/../b', 'lexically inside'),
    symlink('evil', '../../../../etc/shadow'),
    symlink('abs', '/etc/passwd'),
    symlink('up', '..'),
    hardlink('hl', '../../etc/passwd'),
    hardlink('hl2', '/etc/passwd'),
    symlink('loop1', 'loop2'),
    symlink('loop2', 'loop1'),
    symlink('self', 'self'),
    hardlink('h1', 'h2'),
    hardlink('h2', 'h1'),
    hardlink('hs', 'hs'),
    dir('d/'),
    hardlink('hd', 'd'),
  );
  const expected = ['', 'abs', 'b', 'd', 'etc', 'etc/passwd', 'evil', 'hl2', 'loop1', 'loop2', 'ok', 'self', 'up'];
  let archive: string;

  it('the engine skips every entry that would leave the root, keeps link targets as text, and follows none', async () => {
    archive = writeDockerArchive(out('escape.tar'), [layer0]).path;
    const warnings: string[] = [];
    const v = await open(archive, warnings);
    assert.deepEqual(sorted(paths(v.merged)), expected);
    assert.deepEqual(sorted(paths(v.layerTree(0))), expected);
    for (const p of paths(v.merged)) assert.ok(!p.split('/').includes('..'), p);
    for (const w of ['skipped ../x: path leaves the root', 'skipped a/../../x:', 'skipped deep/../../../../etc/group:', 'skipped hard link hl: target ../../etc/passwd leaves the root',
      'hard link h1 -> h2: target not found', 'hard link hs -> hs: target not found', 'hard link hd -> d: target is a directory']) {
      assert.ok(warnings.some((x) => x.includes(w)), `no warning "${w}" in ${JSON.stringify(warnings)}`);
    }
    const m = v.merged;
    // An absolute name lands inside the image; a hard link to an absolute path links inside too.
    assert.equal((await v.readFile(m, m.lookup('etc/passwd'))).toString(), 'image passwd\n');
    assert.equal((await v.readFile(m, m.lookup('hl2'))).toString(), 'image passwd\n');
    assert.equal(m.stat(m.lookup('hl2')).ino, m.stat(m.lookup('etc/passwd')).ino);
    // Symlinks are data: their targets as written, never resolved, and they read as nothing.
    assert.equal(m.symlinkTarget(m.lookup('evil')), '../../../../etc/shadow');
    assert.equal(m.symlinkTarget(m.lookup('abs')), '/etc/passwd');
    assert.equal(m.symlinkTarget(m.lookup('self')), 'self');
    for (const link of ['evil', 'abs', 'loop1', 'self', 'up']) {
      assert.equal(m.stat(m.lookup(link)).type, EntryType.Symlink);
      assert.equal((await v.readFile(m, m.lookup(link))).length, 0);
    }
  });

  it('a mount shows the same tree; the kernel, not ocimount, resolves symlinks (against the host root)', async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      const rootfs = path.join(mnt, 'rootfs');
      assert.deepEqual(await findAll(rootfs), expected.slice(1));
      assert.deepEqual(await findAll(path.join(mnt, 'layers', '0')), expected.slice(1));
      assert.equal((await run('ls', ['-la', rootfs])).code, 0);
      assert.equal((await run('cat', [path.join(rootfs, 'etc/passwd')])).stdout, 'image passwd\n');
      const st = await run('stat', ['-c', '%h %i', path.join(rootfs, 'etc/passwd'), path.join(rootfs, 'hl2')]);
      const [a, b] = st.stdout.trim().split('\n');
      assert.equal(a, b);
      assert.match(a, /^2 /);
      assert.equal((await run('readlink', [path.join(rootfs, 'evil')])).stdout, '../../../../etc/shadow\n');
      // Loops fail in the kernel at once (ELOOP), they do not reach the server as a hang.
      for (const loop of ['loop1', 'self']) {
        const r = await run('cat', [path.join(rootfs, loop)], { timeoutMs: 5000 });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /Too many levels of symbolic links/);
      }
      // What SECURITY.md leaves to the user: following a link from the mount leaves the mount.
      assert.equal((await run('realpath', [path.join(rootfs, 'abs')])).stdout.trim(), '/etc/passwd');
      assert.equal((await run('realpath', [path.join(rootfs, 'evil')])).stdout.trim(), '/etc/shadow');
      assert.equal((await run('realpath', [path.join(rootfs, 'up')])).stdout.trim(), mnt);
    });
  });
});

describe('whiteouts that try to escape or are not what they claim', () => {
  const lower = layer(file('x', 'x'), dir('a/'), file('a/b', 'b'), file('a/c', 'c'), file('secret', 's'), dir('keep/'), file('keep/k', 'k'), file('.hidden', 'h'));
  const upper = layer(
    file('.wh...'), // target '..': the parent of the root
    file('a/.wh..'), // target '.': the directory itself
    file('.wh.'), // no target at all
    file('.wh../x', 'inner'), // a file inside a directory that merely looks like a whiteout
    file('a/../../.wh.x'), // leaves the root
    file('.wh.secret', 'not empty'),
    dir('.wh.keep/'),
    file('a/.wh.b'),
  );
  let archive: string;

  it('invalid whiteouts are ignored with a warning; odd but valid ones apply by name only', async () => {
    archive = writeDockerArchive(out('whiteouts.tar'), [lower, upper]).path;
    const warnings: string[] = [];
    const v = await open(archive, warnings);
    assert.deepEqual(sorted(paths(v.merged)), ['', '.hidden', '.wh..', '.wh../x', 'a', 'a/c', 'x']);
    for (const w of ['ignored invalid whiteout .wh...', 'ignored invalid whiteout a/.wh..', 'ignored invalid whiteout .wh.', 'skipped a/../../.wh.x:',
      'whiteout .wh.secret is a non-empty file; applied by its name', 'whiteout .wh.keep is a directory; applied by its name']) {
      assert.ok(warnings.some((x) => x.includes(w)), `no warning "${w}" in ${JSON.stringify(warnings)}`);
    }
    // The layer's own view shows its markers as stored.
    const own = paths(v.layerTree(1));
    for (const marker of ['.wh...', 'a/.wh..', '.wh.', '.wh.secret', '.wh.keep', 'a/.wh.b']) assert.ok(own.includes(marker), marker);
  });

  it('the mount shows the same, and the lower files are still there in the lower layer', async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      assert.deepEqual(await findAll(path.join(mnt, 'rootfs')), ['.hidden', '.wh..', '.wh../x', 'a', 'a/c', 'x']);
      assert.equal((await run('cat', [path.join(mnt, 'rootfs/x')])).stdout, 'x');
      assert.equal((await run('cat', [path.join(mnt, 'rootfs/.wh../x')])).stdout, 'inner');
      assert.deepEqual(await findAll(path.join(mnt, 'layers/0')), ['.hidden', 'a', 'a/b', 'a/c', 'keep', 'keep/k', 'secret', 'x']);
      const own = await findAll(path.join(mnt, 'layers/1'));
      for (const marker of ['.wh...', 'a/.wh..', '.wh.', '.wh.secret', '.wh.keep', 'a/.wh.b']) assert.ok(own.includes(marker), marker);
    });
  });
});

describe('device nodes, setuid files and what the mount lets them do', () => {
  const script = '#!/bin/sh\necho ran-from-image\n';
  const layer0 = layer(
    dir('dev/'),
    raw.entry({ name: 'dev/zero', typeflag: '3', mode: 0o666, devmajor: 1, devminor: 5 }),
    raw.entry({ name: 'dev/sda', typeflag: '4', mode: 0o660, devmajor: 8, devminor: 0 }),
    raw.entry({ name: 'dev/fifo', typeflag: '6', mode: 0o644 }),
    dir('bin/'),
    file('bin/su', script, { mode: 0o4755 }),
    file('bin/run', script, { mode: 0o755 }),
    dir('tmp/', 0o1777),
    dir('shared/', 0o2775),
  );
  let archive: string;

  it('the engine reports modes and device numbers as the image has them', async () => {
    archive = writeDockerArchive(out('devices.tar'), [layer0]).path;
    const v = await open(archive);
    const st = (p: string) => v.merged.stat(v.merged.lookup(p));
    assert.equal(st('bin/su').mode & 0o7777, 0o4755);
    assert.equal(st('tmp').mode & 0o7777, 0o1777);
    assert.equal(st('shared').mode & 0o7777, 0o2775);
    assert.deepEqual([st('dev/zero').type, st('dev/zero').devmajor, st('dev/zero').devminor], [EntryType.CharDevice, 1, 5]);
    assert.deepEqual([st('dev/sda').type, st('dev/sda').devmajor, st('dev/sda').devminor], [EntryType.BlockDevice, 8, 0]);
    assert.equal(st('dev/fifo').type, EntryType.Fifo);
  });

  it('the mount shows them, and is ro,nosuid,nodev even for root: a device node cannot be opened', async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      const rootfs = path.join(mnt, 'rootfs');
      const r = await run('stat', ['-c', '%n %a %F %t %T', ...['bin/su', 'tmp', 'shared', 'dev/zero', 'dev/sda', 'dev/fifo'].map((p) => path.join(rootfs, p))]);
      assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.slice(rootfs.length + 1)), [
        'bin/su 4755 regular file 0 0',
        'tmp 1777 directory 0 0',
        'shared 2775 directory 0 0',
        'dev/zero 666 character special file 1 5',
        'dev/sda 660 block special file 8 0',
        'dev/fifo 644 fifo 0 0',
      ]);
      const opts = mountOptions(mnt);
      for (const o of ['ro', 'nosuid', 'nodev']) assert.ok(opts.mount.includes(o), `${o} missing from ${opts.mount.join(',')}`);
      // nodev: the image's /dev/zero (1,5) is not the host's /dev/zero.
      const zero = await run('head', ['-c', '16', path.join(rootfs, 'dev/zero')], { timeoutMs: 5000 });
      assert.notEqual(zero.code, 0);
      assert.match(zero.stderr, /Permission denied/);
      // Not noexec: running what the image holds is the user's decision (SECURITY.md).
      assert.equal((await run(path.join(rootfs, 'bin/run'), [])).stdout, 'ran-from-image\n');
    });
  });
});

describe('setuid bits and file capabilities from the image give no privilege', () => {
  // Needs root (to mount with --allow-other without fuse.conf) and setpriv to run as another user.
  const canSwitch = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv') && fs.existsSync('/usr/bin/id') && fs.existsSync('/usr/bin/cat') && fs.existsSync('/usr/bin/getfattr');
  it('a setuid-root `id` and a `cat` with CAP_DAC_OVERRIDE run as nobody stay nobody, without capabilities', { skip: !canSwitch && 'needs root, setpriv and getfattr' }, async () => {
    // security.capability v2: effective, permitted = CAP_DAC_OVERRIDE | CAP_DAC_READ_SEARCH.
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE((1 << 1) | (1 << 2), 4);
    const archive = writeDockerArchive(out('privileges.tar'), [
      layer(
        file('bin/id', fs.readFileSync('/usr/bin/id'), { mode: 0o4755 }),
        paxFile('bin/capcat', fs.readFileSync('/usr/bin/cat'), { mode: 0o755 }, [['SCHILY.xattr.security.capability', cap]]),
      ),
    ]).path;
    await withMount(archive, ['--no-cache', '--allow-other'], async ({ mnt }) => {
      const asNobody = (cmd: string, args: string[]) => run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args]);
      assert.equal((await run('stat', ['-c', '%a %u', path.join(mnt, 'rootfs/bin/id')])).stdout, '4755 0\n');
      const id = await asNobody(path.join(mnt, 'rootfs/bin/id'), []);
      assert.equal(id.code, 0, id.stderr);
      assert.doesNotMatch(id.stdout, /euid=0/);
      assert.match(id.stdout, /^uid=65534/);
      // The xattr is shown as stored...
      const xattr = await run('getfattr', ['--absolute-names', '-n', 'security.capability', '-e', 'hex', path.join(mnt, 'rootfs/bin/capcat')]);
      assert.equal(xattr.code, 0, xattr.stderr);
      assert.match(xattr.stdout, new RegExp(`security.capability=0x${cap.toString('hex')}`));
      // ...and not applied on exec.
      const status = await asNobody(path.join(mnt, 'rootfs/bin/capcat'), ['/proc/self/status']);
      assert.match(status.stdout, /CapEff:\s+0000000000000000/);
    });
  });
});

describe('names: control characters, invalid UTF-8, long components, long paths, deep trees', () => {
  const longComponent = 'L'.repeat(300);
  const longPath = `p/${`${'q'.repeat(200)}/`.repeat(25)}end`; // 5,000+ bytes, each part under 255
  const depth = 10_000;
  const deepPath = `${'d/'.repeat(depth)}f`;
  const layer0 = layer(
    paxFile(Buffer.from('bad\xff', 'latin1'), 'ff'),
    paxFile(Buffer.from('bad\xfe', 'latin1'), 'fe'),
    file(Buffer.from('raw\xe9', 'latin1'), 'latin1 name in a ustar header'),
    file('ctl\x01\x1b[31mred\n\ttab', 'ctl'),
    paxFile(`long/${longComponent}`, 'long'),
    file('long/short', 'short'),
    paxFile(longPath, 'end'),
    paxFile(deepPath, 'deep file\n'),
  );
  let archive: string;

  it('the engine keeps control characters and the exact bytes of names that are not UTF-8 (no two collide)', async () => {
    archive = writeDockerArchive(out('names.tar'), [layer0]).path;
    const v = await open(archive);
    const m = v.merged;
    // Names are byte strings (one char per byte): 'bad\xff' is the two-byte-free name b,a,d,0xff.
    assert.deepEqual(m.children(0).map((c) => m.name(c)), ['bad\xfe', 'bad\xff', 'ctl\x01\x1b[31mred\n\ttab', 'd', 'long', 'p', 'raw\xe9']);
    assert.equal((await v.readFile(m, m.lookup('bad\xff'))).toString(), 'ff');
    assert.equal((await v.readFile(m, m.lookup('bad\xfe'))).toString(), 'fe');
    assert.equal((await v.readFile(m, m.lookup(`long/${longComponent}`))).toString(), 'long');
    assert.equal((await v.readFile(m, m.lookup(longPath))).toString(), 'end');
    const deep = m.lookup(deepPath);
    assert.ok(deep > 0);
    assert.equal(m.path(deep), deepPath);
    assert.equal((await v.readFile(m, deep)).toString(), 'deep file\n');
    // The root, 7 top-level names, 2 under long/, p's 25 folders and end, 9,999 more d's and f.
    assert.equal(m.nodeCount, 1 + 7 + 2 + 26 + (depth - 1) + 1);
  });

  it('the mount lists them; a component over 255 bytes is left out of listings with a log line; 10,000 levels walk', async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt, stderr }) => {
      const rootfs = path.join(mnt, 'rootfs');
      const top = (await run('ls', ['-A', rootfs])).code;
      assert.equal(top, 0);
      const listed = await new Promise<Buffer>((resolve, reject) =>
        execFile('find', [rootfs, '-maxdepth', '1', '-mindepth', '1', '-printf', '%f\\0'], { encoding: 'buffer' }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      const names = listed.toString('latin1').split('\0').filter(Boolean).sort();
      assert.deepEqual(names, ['bad\xfe', 'bad\xff', 'ctl\x01\x1b[31mred\n\ttab', 'd', 'long', 'p', 'raw\xe9']);
      assert.equal(fs.readFileSync(Buffer.from(path.join(rootfs, 'bad\xff'), 'latin1'), 'utf8'), 'ff');
      assert.equal(fs.readFileSync(Buffer.from(path.join(rootfs, 'raw\xe9'), 'latin1'), 'utf8'), 'latin1 name in a ustar header');
      assert.equal(fs.readFileSync(path.join(rootfs, 'ctl\x01\x1b[31mred\n\ttab'), 'utf8'), 'ctl');
      assert.deepEqual((await run('ls', [path.join(rootfs, 'long')])).stdout, 'short\n');
      assert.match(stderr(), /left out a 300-byte name \(longer than 255\)/);
      // Not listed, yet FUSE looks names up to 1,024 bytes: opened by its exact name, it reads.
      // (No Linux filesystem can hold such a name, so no container ever sees this file.)
      assert.equal(fs.readFileSync(path.join(rootfs, 'long', longComponent), 'utf8'), 'long');
      // Paths past PATH_MAX: find walks them by directory, -execdir reads them.
      const endFile = await run('find', [path.join(rootfs, 'p'), '-name', 'end', '-execdir', 'cat', '{}', ';']);
      assert.equal(endFile.stdout, 'end');
      // One walk down 10,000 levels: count every node and read the file at the bottom.
      const walk = await run('find', [path.join(rootfs, 'd'), '-name', 'f', '-execdir', 'cat', '{}', ';', '-o', '-printf', 'x'], { timeoutMs: 110_000 });
      assert.equal(walk.code, 0, walk.stderr.slice(0, 500));
      assert.equal(walk.stdout.replace('deep file\n', '').length, depth);
      assert.ok(walk.stdout.includes('deep file\n'));
    });
  });
});

describe('a layer with very many entries', () => {
  // 200,000 in CI (100 MB of headers); `fuzz/fuzz.ts entries` runs 1,000,000 (512 MB).
  const entries = Number(process.env.OCIMOUNT_HOSTILE_ENTRIES ?? 200_000);
  let archive: string;
  let dirs: number;

  it(`indexes ${entries} entries with memory linear in entries`, { timeout: 600_000 }, async (t) => {
    archive = out('many.tar');
    ({ dirs } = writeManyEntriesArchive(archive, entries));
    const m = await measureOpen(archive, 540_000);
    assert.equal(m.error, undefined);
    t.diagnostic(`${entries} entries: ${m.ms} ms, ${m.bytesPerEntry.toFixed(0)} bytes/entry held, peak RSS ${m.peakRssMB.toFixed(0)} MB`);
    assert.equal(m.entries, entries);
    assert.equal(m.nodes, entries + dirs + 1);
    // The index and the merged tree together (issue 3 asks <= 200 bytes for the index alone).
    assert.ok(m.bytesPerEntry < 300, `${m.bytesPerEntry} bytes per entry`);
  });

  it('mounts it and walks it', { timeout: 600_000 }, async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      const rootfs = path.join(mnt, 'rootfs');
      const ls = await run('ls', [rootfs]);
      assert.equal(ls.stdout.split('\n').filter(Boolean).length, dirs);
      const files = await run('sh', ['-c', 'find "$1" -type f | wc -l', 'sh', rootfs], { timeoutMs: 540_000 });
      assert.equal(Number(files.stdout.trim()), entries);
      const last = path.join(rootfs, `d${Math.floor((entries - 1) / 1000)}`, `f${entries - 1}`);
      assert.equal((await run('stat', ['-c', '%s %F', last])).stdout, '0 regular empty file\n');
    });
  });

  after(() => archive && fs.rmSync(archive, { force: true }));
});

describe('duplicate paths', () => {
  it('later entries win, in a layer and across layers, in the engine and the mount', async () => {
    const layer0 = layer(
      file('dup', 'first'),
      file('dup', 'second'),
      file('fd', 'a file first'),
      dir('fd/'),
      file('fd/in', 'in'),
      dir('df/'),
      file('df/in', 'gone with its directory'),
      file('df', 'now a file'),
      dir('over/'),
      file('over/child', 'lower child'),
    );
    const layer1 = layer(file('over', 'a file over a directory'), file('dup', 'third'), file('dup', 'fourth'));
    const archive = writeDockerArchive(out('dups.tar'), [layer0, layer1]).path;
    const v = await open(archive);
    const expected: Record<string, string> = { dup: 'fourth', df: 'now a file', 'fd/in': 'in', over: 'a file over a directory' };
    assert.deepEqual(sorted(paths(v.merged)), ['', 'df', 'dup', 'fd', 'fd/in', 'over']);
    for (const [p, content] of Object.entries(expected)) assert.equal((await v.readFile(v.merged, v.merged.lookup(p))).toString(), content, p);
    assert.deepEqual(sorted(paths(v.layerTree(0))), ['', 'df', 'dup', 'fd', 'fd/in', 'over', 'over/child']);
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      assert.deepEqual(await findAll(path.join(mnt, 'rootfs')), ['df', 'dup', 'fd', 'fd/in', 'over']);
      for (const [p, content] of Object.entries(expected)) assert.equal(fs.readFileSync(path.join(mnt, 'rootfs', p), 'utf8'), content, p);
      assert.equal(fs.readFileSync(path.join(mnt, 'layers/0/dup'), 'utf8'), 'second');
    });
  });
});

describe('manifests and indexes that point outside the archive, at folders, or everywhere at once', () => {
  const okLayer = layer(file('hello', 'hello'));

  /** A docker archive whose manifest/config/members a case then edits. */
  const docker = (edit: (a: ReturnType<typeof dockerArchive>) => Member[] | void) => {
    const a = dockerArchive([okLayer]);
    return outerTar(edit(a) ?? a.members);
  };
  const setManifest = (a: ReturnType<typeof dockerArchive>, change: (m: any) => void): Member[] =>
    a.members.map((m) => {
      if (m.name !== 'manifest.json') return m;
      const manifest = JSON.parse(m.data!.toString());
      change(manifest[0]);
      return { ...m, data: Buffer.from(JSON.stringify(manifest)) };
    });
  const ociWith = (manifestDigest: string) =>
    outerTar([
      { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
      { name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: 1 }] })) },
    ]);

  const cases: Array<{ name: string; bytes: () => Buffer; error: RegExp }> = [
    { name: 'a layer path ../../etc/shadow', bytes: () => docker((a) => setManifest(a, (m) => (m.Layers = ['../../etc/shadow']))), error: /refused "\.\.\/\.\.\/etc\/shadow": it points outside the archive/ },
    { name: 'a config path ../../etc/shadow', bytes: () => docker((a) => setManifest(a, (m) => (m.Config = '../../etc/shadow'))), error: /refused "\.\.\/\.\.\/etc\/shadow": it points outside the archive/ },
    { name: 'a config path /etc/shadow (absolute: inside the archive, where it is missing)', bytes: () => docker((a) => setManifest(a, (m) => (m.Config = '/etc/shadow'))), error: /\/etc\/shadow: missing from the archive/ },
    { name: 'a layer path that is a folder', bytes: () => docker((a) => setManifest(a, (m) => (m.Layers = [path.dirname(a.layerPaths[0])]))), error: /: not a regular file/ },
    { name: 'a config path that is a folder', bytes: () => docker((a) => setManifest(a, (m) => (m.Config = path.dirname(a.layerPaths[0]) + '/'))), error: /: not a regular file/ },
    {
      name: 'a config that is a member symlink to /etc/passwd',
      bytes: () => docker((a) => a.members.map((m) => (m.name === a.configPath ? { name: m.name, type: 'symlink' as const, target: '/etc/passwd' } : m))),
      error: /: not a regular file/,
    },
    {
      name: 'a config that is a member symlink climbing out',
      bytes: () => docker((a) => a.members.map((m) => (m.name === a.configPath ? { name: m.name, type: 'symlink' as const, target: '../../../../../../etc/passwd' } : m))),
      error: /: not a regular file/,
    },
    {
      name: 'a layer that is a member hard link to ../../etc/passwd',
      bytes: () => docker((a) => a.members.map((m) => (m.name === a.layerPaths[0] ? { name: m.name, type: 'link' as const, target: '../../etc/passwd' } : m))),
      error: /missing from the archive/,
    },
    { name: 'an OCI index whose digest is a path', bytes: () => ociWith('sha256:../../../etc/shadow'), error: /invalid digest "sha256:\.\.\/\.\.\/\.\.\/etc\/shadow"/ },
    { name: 'an OCI index whose digest is absolute', bytes: () => ociWith('sha256:/etc/shadow'), error: /invalid digest/ },
    {
      name: 'a manifest listing 70,000 layers',
      bytes: () => docker((a) => {
        const many = Array(70_000).fill(a.layerPaths[0]);
        return setManifest(a, (m) => (m.Layers = many)).map((m) =>
          m.name === a.configPath ? { ...m, data: Buffer.from(JSON.stringify({ ...JSON.parse(m.data!.toString()), rootfs: { type: 'layers', diff_ids: Array(70_000).fill(a.diffIds[0]) }, history: [] })) } : m,
        );
      }),
      error: /lists 70000 layers; ocimount reads at most 65535/,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: one-line error, exit 3, nothing from the host`, async () => {
      const archive = out('manifest.tar');
      fs.writeFileSync(archive, c.bytes());
      // Engine.
      const err = await ImageView.open(archive).then(
        (v) => (opened.push(v), undefined),
        (e: Error) => e,
      );
      assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, c.error);
      assert.ok(err.message.startsWith(archive), err.message);
      // CLI mount: refused before anything is mounted.
      await expectMountFails(archive, c.error);
    });
  }

  it('nested image indexes that repeat each other are walked once, not 10^8 times', { timeout: 30_000 }, async () => {
    // Eight levels, each index listing the next one ten times: a tree of 10^8 leaves if walked naively.
    const members: Member[] = [];
    let child: Buffer | undefined;
    for (let level = 0; level < 8; level++) {
      const manifests = child ? Array(10).fill({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(child), size: child.length }) : [];
      const blob = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
      members.push({ name: `blobs/sha256/${sha256(blob).slice(7)}`, data: blob });
      child = blob;
    }
    members.push({ name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') });
    members.push({ name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(child!), size: child!.length }] })) });
    const archive = out('index-dag.tar');
    fs.writeFileSync(archive, outerTar(members));
    const started = Date.now();
    const err = await ImageView.open(archive).then(
      (v) => (opened.push(v), undefined),
      (e: Error) => e,
    );
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.ok(err instanceof UserError, String(err));
    assert.equal(err.message.split('\n').length, 1);
  });

  describe('an OCI layout folder (oci-dir) with hostile files where blobs should be', () => {
    const variants: Array<{ name: string; plant: (blob: string) => void; error: RegExp }> = [
      { name: 'a symlink to /etc/shadow', plant: (b) => fs.symlinkSync('/etc/shadow', b), error: /refused: it points outside the layout/ },
      { name: 'a relative symlink climbing out', plant: (b) => fs.symlinkSync('../../../../../../../../etc/passwd', b), error: /refused: it points outside the layout/ },
      { name: 'a folder', plant: (b) => fs.mkdirSync(b), error: /not a regular file/ },
      { name: 'a FIFO (opening it would wait for a writer forever)', plant: (b) => execFileSync('mkfifo', [b]), error: /not a regular file/ },
    ];
    for (const which of ['layer', 'config'] as const) {
      for (const variant of variants) {
        it(`the ${which} blob is ${variant.name}`, { timeout: 20_000 }, async () => {
          const root = out('layout');
          const built = await buildArchive(root, { layout: 'oci-dir', images: [{ layers: [{ entries: [{ path: 'hello', content: 'hello' }] }] }] });
          const digest = which === 'layer' ? built.images[0].layerDigests[0] : built.images[0].configDigest;
          const blob = path.join(root, 'blobs/sha256', digest.slice(7));
          fs.rmSync(blob);
          variant.plant(blob);
          const err = await ImageView.open(root).then(
            (v) => (opened.push(v), undefined),
            (e: Error) => e,
          );
          assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
          assert.equal(err.exitCode, 3);
          assert.match(err.message, variant.error);
          assert.doesNotMatch(err.message, /root:/);
        });
      }
    }
  });
});

/** `ocimount ARCHIVE MNT` must fail before mounting: exit 3, one stderr line matching `error`. */
async function expectMountFails(archive: string, error: RegExp): Promise<void> {
  const mnt = tempDir('refused');
  try {
    const r = await ocimount(['--no-cache', archive, mnt]);
    if (r.code === 0) {
      // Not expected: clean up what it mounted (and its server exits once unmounted).
      await ocimount(['umount', mnt]);
    }
    assert.equal(r.code, 3, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    // Warnings about the archive may come first; the error itself is one line.
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('ocimount: warning: '));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], error);
    assert.doesNotMatch(r.stderr, /root:x?:/);
    assert.equal(isMounted(mnt), false);
  } finally {
    if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
    fs.rmdirSync(mnt);
  }
}

describe('extract never writes outside its target', () => {
  /** Names and contents of everything under `dir`, to compare before and after. */
  const snapshot = (dirPath: string): string[] => {
    const outList: string[] = [];
    const walk = (rel: string) => {
      for (const d of fs.readdirSync(path.join(dirPath, rel), { withFileTypes: true })) {
        const r = path.join(rel, d.name);
        if (d.isDirectory()) {
          outList.push(`${r}/`);
          walk(r);
        } else outList.push(`${r}=${d.isSymbolicLink() ? `->${fs.readlinkSync(path.join(dirPath, r))}` : fs.readFileSync(path.join(dirPath, r), 'utf8')}`);
      }
    };
    walk('');
    return outList.sort();
  };

  it('symlinks out, ../ names, files through symlinks, hard links out, and symlinks planted in the target', async () => {
    const outside = out('outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'target-file'), 'keep');
    const before = snapshot(outside);
    const climb = '../'.repeat(outside.split('/').length + 2) + outside.slice(1);
    const layer0 = layer(
      symlink('etc', outside), // absolute symlink out of the image
      symlink('rel', climb), // relative one
      file('../escape', 'x'),
      file('etc/../../escape2', 'x'),
      hardlink('hl', `../../../..${outside}/target-file`),
      hardlink('hl-abs', `${outside}/target-file`), // absolute: inside the image, where it is missing
      symlink('same', outside),
      file('same/pwned-same-layer', 'through a symlink of the same layer'),
      file('ok', 'ok'),
    );
    const layer1 = layer(file('etc/pwned', 'through a lower symlink'), file('rel/pwned', 'through a relative one'));
    const archive = writeDockerArchive(out('extract.tar'), [layer0, layer1]).path;

    // The whole merged tree: every path lands inside DIR; a directory replaced each symlink.
    const dest = out('dest');
    let r = await ocimount(['extract', '--no-cache', '-q', archive, '/', '-o', dest]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(snapshot(dest), ['etc/', 'etc/pwned=through a lower symlink', 'ok=ok', 'rel/', 'rel/pwned=through a relative one', 'same/', 'same/pwned-same-layer=through a symlink of the same layer']);
    assert.deepEqual(snapshot(outside), before);

    // Layer 0 alone: the symlinks are written as symlinks, never followed.
    const dest2 = out('dest2');
    r = await ocimount(['extract', '--no-cache', '-q', '--layer', '0', archive, '/', '-o', dest2]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readlinkSync(path.join(dest2, 'etc')), outside);
    assert.equal(fs.readlinkSync(path.join(dest2, 'rel')), climb);
    assert.deepEqual(snapshot(outside), before);

    // Now DIR holds symlinks pointing out. A path below one is refused, not followed.
    r = await ocimount(['extract', '--no-cache', '-q', archive, '/etc/pwned', '-o', dest2]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /not a directory \(a symlink; not following it\)/);
    assert.deepEqual(snapshot(outside), before);
    // The whole tree into the same DIR replaces the symlinks by directories.
    r = await ocimount(['extract', '--no-cache', '-q', archive, '/', '-o', dest2]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.lstatSync(path.join(dest2, 'etc')).isDirectory());
    assert.deepEqual(snapshot(outside), before);

    // A symlink planted where a file will be written is replaced, its target left alone.
    const dest3 = out('dest3');
    fs.mkdirSync(dest3);
    fs.symlinkSync(path.join(outside, 'target-file'), path.join(dest3, 'ok'));
    r = await ocimount(['extract', '--no-cache', '-q', archive, '/ok', '-o', dest3]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.lstatSync(path.join(dest3, 'ok')).isFile());
    assert.equal(fs.readFileSync(path.join(dest3, 'ok'), 'utf8'), 'ok');
    assert.deepEqual(snapshot(outside), before);
  });
});

describe('the index cache is not a channel between archives', () => {
  it('a hostile archive claiming a genuine layer digest cannot plant the index a later genuine archive uses', async () => {
    // Genuine: an OCI archive whose layer has bin/sh between two 100 KB files (beyond the sampled head and tail).
    const genuineLayer = layer(file('head.bin', Buffer.alloc(100_000, 1)), file('bin/sh', 'genuine shell\n', { mode: 0o755 }), file('tail.bin', Buffer.alloc(100_000, 2)));
    const genuine = out('genuine.tar');
    const built = await buildArchive(genuine, { layout: 'oci-archive', images: [{ layers: [{ entries: genuineLayer }] }] });
    const digest = built.images[0].layerDigests[0];
    // Hostile: the same digest, size, head and tail; only the middle header differs (setuid, renamed).
    const evilLayer = Buffer.from(genuineLayer);
    raw.header({ name: 'bin/xx', mode: 0o4755, size: 14, mtime: 1700000000 }).copy(evilLayer, 512 + 100_352);
    const hostile = writeOciArchive(out('hostile.tar'), [evilLayer], { layerDigests: [digest], diffIds: [digest] }).path;
    const cache = new IndexCache(out('cache'));
    const evil = await ImageView.open(hostile, { cache });
    assert.ok(evil.merged.lookup('bin/xx') > 0);
    await evil.close();
    // The user later opens the genuine archive, even with --verify: it must show its own files.
    const v = await ImageView.open(genuine, { cache, verify: true });
    opened.push(v);
    assert.deepEqual(sorted(paths(v.merged)), ['', 'bin', 'bin/sh', 'head.bin', 'tail.bin']);
  });
});
