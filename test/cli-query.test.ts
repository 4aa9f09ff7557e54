import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { BIN, FIXTURES, ocimount, run } from './helpers/mount-harness';
import { assertError, lines, scratchDirs } from './helpers/cli-checks';

/*
 * inspect, ls, cat and find, each run as a child process (`ocimount …`) over real archives, with
 * their stdout, stderr and exit codes checked. No mount is involved: these are the commands for
 * machines without /dev/fuse.
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const TWO = path.join(FIXTURES, 'ggcr-legacy-two-images.tar');
const OVERWRITTEN = path.join(FIXTURES, 'ggcr-overwritten-file.tar');

const scratch = scratchDirs();

/** The CLI's stdout as bytes, for content that is not text. */
function ocimountBytes(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

/** A small image with what the fixtures lack: symlink loops and links that point above the root. */
let crafted: string;
before(async () => {
  const dir = scratch('cli-query');
  crafted = path.join(dir, 'crafted.tar');
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
              { path: 'loop1', type: 'symlink', target: 'loop2' },
              { path: 'loop2', type: 'symlink', target: 'loop1' },
              { path: 'escape', type: 'symlink', target: '../../../../../etc/passwd' },
              { path: 'abs', type: 'symlink', target: '/etc/passwd' },
              { path: 'lib', type: 'symlink', target: 'usr/lib' },
              { path: 'usr/lib/libx.so', content: 'ELF' },
              { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
            ],
          },
        ],
      },
    ],
  });
});

describe('ocimount inspect', { concurrency: 4 }, () => {
  it('lists the image, its config and its layers with the empty steps between them', async () => {
    const r = await ocimount(['inspect', DIVE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = lines(r.stdout);
    assert.match(out[1], /^\s*0\s+dive-test:latest\s+linux\/amd64\s+-\s+sha256:75ae28b8ebf8$/);
    assert.ok(out.includes('Image 0: dive-test:latest'));
    assert.ok(out.some((l) => /^\s+Cmd:\s+\["sh"\]$/.test(l)));
    assert.ok(out.some((l) => /^\s+PATH=\/usr\/local\/sbin:/.test(l)));
    assert.ok(out.includes('Layers: 14 (1.4 MiB stored, 1.4 MiB uncompressed)'));
    // Layer rows in order, and the CMD step (empty_layer) between layer 0 and layer 1.
    const rows = out.filter((l) => /^\s+(\d+|-)\s+(sha256:|\(no layer\))/.test(l));
    assert.equal(rows.length, 15);
    assert.match(rows[0], /^\s+0\s+sha256:23bc2b70b201\s+1\.3 MiB\s+1\.3 MiB\s+415\s+2018-12-26T08:20:42Z\s+\/bin\/sh -c #\(nop\) ADD file:ce026b/);
    assert.match(rows[1], /^\s+-\s+\(no layer\)\s+2018-12-26T08:20:42Z\s+\/bin\/sh -c #\(nop\)  CMD \["sh"\]$/);
    assert.match(rows[2], /^\s+1\s+sha256:a65b7d7ac139\s/);
    assert.match(rows[14], /^\s+13\s+sha256:ba689cac6a98\s+8\.5 KiB\s+8\.5 KiB\s+2\s+2018-12-28T20:44:23Z\s+\/bin\/sh -c chmod \+x \/root\/saved\.txt$/);
  });

  it('--json: images, config summary, layers with exact sizes, and the history in order', async () => {
    const r = await ocimount(['inspect', '--json', DIVE]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.selected, 0);
    assert.deepEqual(doc.images, [
      { position: 0, names: ['dive-test:latest'], manifestDigest: null, configDigest: 'sha256:75ae28b8ebf89b203319069ddcbecdf5c3838503bbebc0d0d85e4b8589c5de3a', platform: 'linux/amd64', layout: 'docker-archive' },
    ]);
    const img = doc.image;
    assert.deepEqual(img.cmd, ['sh']);
    assert.equal(img.entrypoint, null);
    assert.deepEqual(img.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.equal(img.platform, 'linux/amd64');
    assert.equal(img.layers.length, 14);
    assert.deepEqual(
      { ...img.layers[0], createdBy: undefined },
      {
        position: 0,
        diffId: 'sha256:23bc2b70b2014dec0ac22f27bb93e9babd08cdd6f1115d0c955b9ff22b382f5a',
        digest: null,
        compression: 'none',
        storedSize: 1369600,
        size: 1369600,
        files: 415,
        created: '2018-12-26T08:20:42.687925672Z',
        createdBy: undefined,
        comment: null,
        applied: true,
      },
    );
    assert.equal(img.history.length, 15);
    assert.deepEqual(img.history.slice(0, 3).map((h: { layer: number | null; emptyLayer: boolean }) => [h.layer, h.emptyLayer]), [[0, false], [null, true], [1, false]]);
  });

  it('compressed layers: stored and uncompressed sizes differ, the compression is named', async () => {
    const doc = JSON.parse((await ocimount(['inspect', '--json', path.join(FIXTURES, 'dive-oci-zstd.tar')])).stdout);
    const l = doc.image.layers[0];
    assert.deepEqual([l.compression, l.storedSize, l.size, l.files], ['zstd', 4314, 12800, 1]);
    assert.equal(doc.image.platform, 'linux/arm64');
    const gz = await ocimount(['inspect', path.join(FIXTURES, 'dive-oci-gzip.tar')]);
    assert.match(gz.stdout, /\n\s+0\s+sha256:356d5e7f4012\s+4\.0 KiB\s+13 KiB\s+1\s+2025-01-26T22:54:00\+01:00\s+COPY README\.md \/README\.md # buildkit\n/);
  });

  it('several images and no --image: lists them all, no details, exit 0; --image picks one', async () => {
    const all = await ocimount(['inspect', TWO]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /\n\s+0\s+test_image_2\s/);
    assert.match(all.stdout, /\n\s+1\s+test_image_1\s/);
    assert.doesNotMatch(all.stdout, /Layers:/);
    assert.match(all.stdout, /2 images; choose one with --image/);
    assert.equal(JSON.parse((await ocimount(['inspect', '--json', TWO])).stdout).selected, null);

    const one = await ocimount(['inspect', '--image', 'test_image_1', TWO]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /Image 1: test_image_1/);
    assert.match(one.stdout, /Layers: 1 /);
  });

  it('exit codes: 1 for an image the archive lacks, 3 for a missing or unreadable archive, 2 for usage', async () => {
    assertError(await ocimount(['inspect', '--image', 'nope:1', TWO]), 1, /no image "nope:1"/);
    assertError(await ocimount(['inspect', path.join(FIXTURES, 'no-such.tar')]), 3, /no such file or directory/);
    const junk = path.join(scratch('junk'), 'junk.tar');
    fs.writeFileSync(junk, 'this is not an image archive\n'.repeat(40));
    assert.equal((await ocimount(['inspect', junk])).code, 3);
    assertError(await ocimount(['inspect', '--frobnicate', DIVE]), 2, /unknown option '--frobnicate'/);
    assertError(await ocimount(['inspect']), 2, /missing required argument 'image'/);
  });

  it('--help shows examples', async () => {
    for (const cmd of ['inspect', 'ls', 'cat', 'find', 'extract', 'blame', 'diff', 'export']) {
      const r = await ocimount([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout, /\nExamples:\n {2}ocimount /, `${cmd} --help has examples`);
      assert.match(r.stdout, /--image <sel>/);
      assert.match(r.stdout, /--layers <list>/);
    }
  });
});

describe('ocimount ls', { concurrency: 4 }, () => {
  it('lists the merged tree; dot files only with -a / -A', async () => {
    const root = await ocimount(['ls', DIVE]);
    assert.equal(root.code, 0, root.stderr);
    assert.deepEqual(lines(root.stdout), ['bin', 'dev', 'etc', 'home', 'root', 'somefile.txt', 'tmp', 'usr', 'var']);
    assert.deepEqual(lines((await ocimount(['ls', DIVE, '/root'])).stdout), ['saved.txt']);
    assert.deepEqual(lines((await ocimount(['ls', '-A', DIVE, '/root'])).stdout), ['.data', '.saved.txt', 'saved.txt']);
    assert.deepEqual(lines((await ocimount(['ls', '-a', DIVE, 'root/'])).stdout), ['.', '..', '.data', '.saved.txt', 'saved.txt']);
  });

  it('-l: mode, links, owner, size, UTC mtime; hard links count their links; symlinks show their target', async () => {
    const r = await ocimount(['ls', '-la', DIVE, '/root']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), [
      'drwx------   3  0  0     0  2018-12-28 20:44  .',
      'drwxr-xr-x  10  0  0     0  1970-01-01 00:00  ..',
      'drwxr-xr-x   2  0  0     0  2018-12-28 20:44  .data',
      '-rw-r--r--   1  0  0  6405  2018-12-28 16:50  .saved.txt',
      '-rwxr-xr-x   1  0  0  6405  2018-12-28 16:50  saved.txt',
    ]);
    assert.match((await ocimount(['ls', '-l', DIVE, '/etc/shadow'])).stdout, /^-rw------- {2}1 {2}0 {2}0 {2}243 {2}\S+ \S+ {2}\/etc\/shadow\n$/);
    assert.match((await ocimount(['ls', '-ld', DIVE, '/home'])).stdout, /^drwxr-xr-x {2}2 {2}65534 {2}65534 {2}0 /);
    const bin = lines((await ocimount(['ls', '-l', DIVE, '/bin'])).stdout);
    assert.match(bin.find((l) => l.endsWith('  ['))!, /^-rwxr-xr-x {2}393 /);
    const over = await ocimount(['ls', '-l', OVERWRITTEN, '/']);
    assert.match(over.stdout, /\nl\S+ +1 +0 +0 +7 +\S+ \S+ {2}foo\.txt -> bar\.txt\n$/);
  });

  it('-R lists each directory under a header', async () => {
    const r = await ocimount(['ls', '-R', '-A', DIVE, '/root']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '/root:\n.data\n.saved.txt\nsaved.txt\n\n/root/.data:\nsaved.again2.txt\ntag.sh\ntest.sh\n');
  });

  it('--layer N|DIFF_ID shows one layer alone, whiteout markers included', async () => {
    const byPosition = await ocimount(['ls', '-A', '--layer', '9', DIVE, '/root']);
    assert.equal(byPosition.code, 0, byPosition.stderr);
    assert.deepEqual(lines(byPosition.stdout), ['.wh.example']);
    for (const ref of ['sha256:bc2e36423fa31a97223fd421f22c35466220fa160769abf697b8eb58c896b468', 'bc2e36', 'sha256:bc2e364']) {
      assert.equal((await ocimount(['ls', '-A', '--layer', ref, DIVE, '/root'])).stdout, byPosition.stdout, ref);
    }
    assert.deepEqual(lines((await ocimount(['ls', '-A', '--layer', '7', DIVE, '/root/example'])).stdout), ['.wh.somefile3.txt']);
    assertError(await ocimount(['ls', '--layer', '14', DIVE]), 1, /--layer 14: no such layer; the image has layers 0-13/);
    assertError(await ocimount(['ls', '--layer', 'ffffff', DIVE]), 1, /no layer has that diff_id/);
    assertError(await ocimount(['ls', '--layer', 'xyz', DIVE]), 2, /--layer xyz: expected a layer position/);
  });

  it('--json: one object per entry with raw numbers', async () => {
    const r = await ocimount(['ls', '--json', '-A', DIVE, '/root']);
    const rows = JSON.parse(r.stdout);
    assert.deepEqual(rows.map((x: { name: string }) => x.name), ['.data', '.saved.txt', 'saved.txt']);
    assert.deepEqual({ ...rows[2], ino: 0 }, {
      name: 'saved.txt', path: '/root/saved.txt', type: 'file', mode: '0755', modeString: '-rwxr-xr-x',
      nlink: 1, uid: 0, gid: 0, size: 6405, mtime: 1546015848, mtimeNsec: 0, ino: 0, xattrs: {},
    });
  });

  it('exit 1 for a missing path or a file used as a directory; symlinks are followed inside the image', async () => {
    assertError(await ocimount(['ls', DIVE, '/nope']), 1, /^ocimount: \/nope: no such file or directory in the image$/m);
    assertError(await ocimount(['ls', DIVE, '/etc/passwd/x']), 1, /not a directory/);
    assertError(await ocimount(['ls', DIVE, '/root/example']), 1, /\/root\/example: no such file/);
    assert.deepEqual(lines((await ocimount(['ls', crafted, '/lib'])).stdout), ['libx.so']);
    assert.match((await ocimount(['ls', '-l', crafted, '/lib'])).stdout, /^l\S+ .* \/lib -> usr\/lib\n$/);
  });
});

describe('ocimount cat', { concurrency: 4 }, () => {
  it('writes file bytes exactly (binary, through a hard link), several files in order', async () => {
    const layerDir = scratch('layer0');
    // The bottom layer alone, extracted by GNU tar: an independent copy of /bin/ls (busybox).
    const manifest = JSON.parse((await run('tar', ['-xOf', DIVE, 'manifest.json'])).stdout);
    await run('tar', ['-xf', DIVE, '-C', layerDir, manifest[0].Layers[0]]);
    await run('tar', ['-xf', path.join(layerDir, manifest[0].Layers[0]), '-C', layerDir, 'bin/']);
    const expected = fs.readFileSync(path.join(layerDir, 'bin/ls'));
    const r = await ocimountBytes(['cat', DIVE, '/bin/ls']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 1075464);
    assert.ok(r.stdout.equals(expected), 'cat /bin/ls equals the file GNU tar extracts');

    assert.match((await ocimount(['cat', DIVE, '/etc/shadow'])).stdout, /^root::10933:0:99999:7:::\n/);
    const both = await ocimount(['cat', TWO, '--image', '1', '/foo', '/bar']);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, 'foo\nbar\n');
  });

  it('follows symlinks inside the image, never on the host; loops end in an error', async () => {
    assert.equal((await ocimount(['cat', OVERWRITTEN, '/foo.txt'])).stdout, 'bar\n');
    const escape = await ocimount(['cat', crafted, '/escape', '/abs', '/lib/libx.so']);
    assert.equal(escape.code, 0, escape.stderr);
    assert.equal(escape.stdout, 'root:x:0:0::/root:/bin/sh\n'.repeat(2) + 'ELF');
    assertError(await ocimount(['cat', crafted, '/loop1']), 1, /\/loop1: too many levels of symbolic links in the image/);
  });

  it('a directory, a device or a missing path: one line each, the rest still written, exit 1', async () => {
    const r = await ocimount(['cat', DIVE, '/etc', '/nope', '/somefile.txt']);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), ['ocimount: /etc: is a directory', 'ocimount: /nope: no such file or directory in the image']);
    assert.equal(r.stdout.length, 6405);
    assertError(await ocimount(['cat', crafted, '/dev/null']), 1, /\/dev\/null: is a character device, not a regular file/);
    assertError(await ocimount(['cat', DIVE]), 2, /missing required argument 'path'/);
  });
});

describe('ocimount find', { concurrency: 4 }, () => {
  it('--name, --type and depth limits, paths printed like find from /', async () => {
    const txt = await ocimount(['find', DIVE, '/', '--name', '*.txt', '--type', 'f']);
    assert.equal(txt.code, 0, txt.stderr);
    assert.deepEqual(lines(txt.stdout), ['/root/.data/saved.again2.txt', '/root/.saved.txt', '/root/saved.txt', '/somefile.txt', '/tmp/saved.again1.txt']);
    // find's own single-dash spelling works too.
    assert.equal((await ocimount(['find', DIVE, '/', '-name', '*.txt', '-type', 'f'])).stdout, txt.stdout);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '-type', 'd', '-maxdepth', '1'])).stdout), ['/', '/bin', '/dev', '/etc', '/home', '/root', '/tmp', '/usr', '/var']);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '/root', '--mindepth', '2'])).stdout), ['/root/.data/saved.again2.txt', '/root/.data/tag.sh', '/root/.data/test.sh']);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '/', '--iname', 'SAVED.*', '--type', 'f,d'])).stdout), ['/root/.data/saved.again2.txt', '/root/saved.txt', '/tmp/saved.again1.txt']);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '/', '--path', '/root/.data/*.sh'])).stdout), ['/root/.data/tag.sh', '/root/.data/test.sh']);
    assert.deepEqual(lines((await ocimount(['find', OVERWRITTEN, '--type', 'l'])).stdout), ['/foo.txt']);
  });

  it('--size rounds up to units like find; --newer takes a date or a path in the image', async () => {
    // busybox: 393 names for one 1 MiB file.
    assert.equal(lines((await ocimount(['find', DIVE, '--size', '+1M', '--type', 'f'])).stdout).length, 393);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '/root', '-size', '6405c'])).stdout), ['/root/.data/saved.again2.txt', '/root/.saved.txt', '/root/saved.txt']);
    assert.deepEqual(lines((await ocimount(['find', DIVE, '/root', '-size', '-2k', '-type', 'f'])).stdout), ['/root/.data/tag.sh']); // test.sh: 1270 bytes, 2 units
    const byDate = await ocimount(['find', DIVE, '/', '--newer', '2018-12-28T20:00:00Z', '--type', 'f']);
    assert.deepEqual(lines(byDate.stdout), ['/root/.data/saved.again2.txt', '/root/.data/test.sh', '/tmp/saved.again1.txt']);
    assert.equal((await ocimount(['find', DIVE, '/', '--newer', '@1546027200', '--type', 'f'])).stdout, byDate.stdout);
    const byPath = await ocimount(['find', DIVE, '/', '-newer', '/root/.saved.txt', '-type', 'f']);
    assert.equal(byPath.stdout, byDate.stdout);
    assertError(await ocimount(['find', DIVE, '--newer', 'no-such-thing']), 1, /--newer no-such-thing: not a date/);
  });

  it('--layer searches one layer: whiteout markers are files there', async () => {
    assert.deepEqual(lines((await ocimount(['find', '--layer', '9', DIVE, '/', '-name', '.wh.*'])).stdout), ['/root/.wh.example']);
    assert.deepEqual(lines((await ocimount(['find', '--layer', '7', DIVE, '-type', 'f'])).stdout), ['/root/example/.wh.somefile3.txt', '/root/saved.txt']);
  });

  it('-0 separates with NUL bytes; --json gives one object per match', async () => {
    const r = await ocimount(['find', DIVE, '/root', '-maxdepth', '1', '-type', 'f', '-print0']);
    assert.equal(r.stdout, '/root/.saved.txt\0/root/saved.txt\0');
    const j = JSON.parse((await ocimount(['find', '--json', DIVE, '/root/saved.txt'])).stdout);
    assert.deepEqual(j, [{ path: '/root/saved.txt', type: 'file', mode: '0755', uid: 0, gid: 0, size: 6405, mtime: 1546015848, mtimeNsec: 0 }]);
  });

  it('exit codes: 1 for a missing start path, 2 for bad tests', async () => {
    assertError(await ocimount(['find', DIVE, '/nope']), 1, /\/nope: no such file or directory/);
    assertError(await ocimount(['find', DIVE, '--type', 'x']), 2, /--type x: expected f, d, l/);
    assertError(await ocimount(['find', DIVE, '--size', '10Q']), 2, /--size 10Q/);
    assertError(await ocimount(['find', DIVE, '-maxdepth', 'two']), 2, /--maxdepth two: expected a whole number/);
    assertError(await ocimount(['find', DIVE, '--json', '-0']), 2, /cannot be used with/);
    assert.equal((await ocimount(['find', DIVE, '-name', 'no-such-name'])).code, 0);
  });
});
