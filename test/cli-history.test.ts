import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { FIXTURES, ocimount } from './helpers/mount-harness';
import { assertError, lines, scratchDirs } from './helpers/cli-checks';

/*
 * blame and diff, run as child processes: which layers touched a path, what each layer changed,
 * and what differs between two images. The dive fixture's story (see its history): layers 3-6
 * copy files into /root/example, layer 7 moves somefile3.txt to /root/saved.txt (a file
 * whiteout), layer 9 removes /root/example (a directory whiteout), layer 13 chmods saved.txt.
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const TWO = path.join(FIXTURES, 'ggcr-legacy-two-images.tar');
const ONE = path.join(FIXTURES, 'ggcr-legacy-one-layer.tar');
const OVERWRITTEN = path.join(FIXTURES, 'ggcr-overwritten-file.tar');
const WHITEOUT_FILE = path.join(FIXTURES, 'ggcr-whiteout-file.tar');

const scratch = scratchDirs();

/** Table rows with their padding squeezed to one space, so assertions read like the columns. */
function rows(text: string): string[] {
  return lines(text).map((l) => l.replace(/ {2,}/g, ' '));
}

/** Two one-layer images with the same paths: one file differs only in its bytes, one only in mode. */
let imgA: string;
let imgB: string;
/** An opaque directory: layer 1 empties /d of what layer 0 put there and adds one file. */
let opaque: string;
before(async () => {
  const dir = scratch('cli-history');
  imgA = path.join(dir, 'a.tar');
  imgB = path.join(dir, 'b.tar');
  opaque = path.join(dir, 'opaque.tar');
  await buildArchive(imgA, {
    layout: 'docker-legacy',
    images: [{ tags: ['a:1'], layers: [{ entries: [{ path: 'same-size', content: 'aaaa' }, { path: 'keep', content: 'k' }, { path: 'mode', content: 'm', mode: 0o644 }, { path: 'gone', content: 'g' }] }] }],
  });
  await buildArchive(imgB, {
    layout: 'oci-archive',
    images: [{ tags: ['b:1'], layers: [{ entries: [{ path: 'same-size', content: 'bbbb' }, { path: 'keep', content: 'k' }, { path: 'mode', content: 'm', mode: 0o755 }, { path: 'new/file', content: 'n' }] }] }],
  });
  await buildArchive(opaque, {
    layout: 'docker-legacy',
    images: [
      {
        layers: [
          { entries: [{ path: 'd/', type: 'dir' }, { path: 'd/old', content: 'old' }, { path: 'd/sub/x', content: 'x' }], createdBy: 'RUN make d' },
          { entries: [{ path: 'd/', type: 'dir' }, { path: 'd/.wh..wh..opq' }, { path: 'd/new', content: 'new!' }], createdBy: 'RUN redo d' },
        ],
      },
    ],
  });
});

describe('ocimount blame', { concurrency: 4 }, () => {
  it('names the layers that added and changed a file, and no others', async () => {
    const r = await ocimount(['blame', DIVE, '/root/saved.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(rows(r.stdout), [
      '7 sha256:dd1effc5eb19 A /root/saved.txt /bin/sh -c mv /root/example/somefile3.txt /root/saved.txt',
      '13 sha256:ba689cac6a98 M /root/saved.txt (mode 0644 -> 0755) /bin/sh -c chmod +x /root/saved.txt',
    ]);
  });

  it('file whiteouts and whiteouts of a parent directory count as deletions', async () => {
    assert.deepEqual(rows((await ocimount(['blame', DIVE, '/root/example/somefile3.txt'])).stdout), [
      '6 sha256:f275b8a31a71 A /root/example/somefile3.txt /bin/sh -c cp /somefile.txt /root/example/somefile3.txt',
      '7 sha256:dd1effc5eb19 D /root/example/somefile3.txt (by /root/example/.wh.somefile3.txt) /bin/sh -c mv /root/example/somefile3.txt /root/saved.txt',
    ]);
    assert.deepEqual(rows((await ocimount(['blame', DIVE, 'root/example/somefile1.txt'])).stdout), [
      '3 sha256:4abad3abe3cb A /root/example/somefile1.txt /bin/sh -c cp /somefile.txt /root/example/somefile1.txt',
      '4 sha256:14c9a6ffcb6a M /root/example/somefile1.txt (mode 0644 -> 0444) /bin/sh -c chmod 444 /root/example/somefile1.txt',
      '9 sha256:bc2e36423fa3 D /root/example/somefile1.txt (by /root/.wh.example) /bin/sh -c rm -rf /root/example/',
    ]);
  });

  it('a directory: one line per layer that touched it or anything below; --all one per path', async () => {
    const r = await ocimount(['blame', DIVE, '/root/example']);
    assert.deepEqual(rows(r.stdout).map((l) => l.split(' /bin/sh')[0]), [
      '2 sha256:93e208d47175 A /root/example (+2 more)',
      '3 sha256:4abad3abe3cb A /root/example/somefile1.txt',
      '4 sha256:14c9a6ffcb6a M /root/example/somefile1.txt (mode 0644 -> 0444)',
      '5 sha256:778fb5770ef4 A /root/example/somefile2.txt',
      '6 sha256:f275b8a31a71 A /root/example/somefile3.txt',
      '7 sha256:dd1effc5eb19 D /root/example/somefile3.txt (by /root/example/.wh.somefile3.txt)',
      '9 sha256:bc2e36423fa3 D /root/example (by /root/.wh.example) (+4 more)',
    ]);
    const all = rows((await ocimount(['blame', '--all', DIVE, '/root/example'])).stdout).filter((l) => l.startsWith('9 '));
    assert.deepEqual(all.map((l) => l.split(' /bin/sh')[0].split(' ').slice(2, 4).join(' ')), [
      'D /root/example',
      'D /root/example/really',
      'D /root/example/really/nested',
      'D /root/example/somefile1.txt',
      'D /root/example/somefile2.txt',
    ]);
  });

  it('opaque markers delete what lower layers had in their directory', async () => {
    assert.deepEqual(rows((await ocimount(['blame', '--all', opaque, '/d'])).stdout).map((l) => l.replace(/ sha256:\w+/, '')), [
      '0 A /d RUN make d',
      '0 A /d/old RUN make d',
      '0 A /d/sub RUN make d',
      '0 A /d/sub/x RUN make d',
      '1 A /d/new RUN redo d',
      '1 D /d/old (by /d/.wh..wh..opq) RUN redo d',
      '1 D /d/sub (by /d/.wh..wh..opq) RUN redo d',
      '1 D /d/sub/x (by /d/.wh..wh..opq) RUN redo d',
    ]);
  });

  it('a file replaced by a symlink is a change; --json carries every change', async () => {
    assert.deepEqual(rows((await ocimount(['blame', OVERWRITTEN, '/foo.txt'])).stdout).map((l) => l.split(' ').slice(0, 4).join(' ')), [
      '0 sha256:48ebc8f0e90e A /foo.txt',
      '1 sha256:6f23bf1fbcc9 M /foo.txt',
    ]);
    const j = JSON.parse((await ocimount(['blame', '--json', DIVE, '/root/example/somefile3.txt'])).stdout);
    assert.deepEqual(j[1], {
      position: 7,
      diffId: 'sha256:dd1effc5eb19894c3e9b57411c98dd1cf30fa1de4253c7fae53c9cea67267d83',
      created: '2018-12-28T16:50:51.131839185Z',
      createdBy: '/bin/sh -c mv /root/example/somefile3.txt /root/saved.txt',
      kind: 'D',
      path: '/root/example/somefile3.txt',
      changes: [{ kind: 'D', path: '/root/example/somefile3.txt', by: '/root/example/.wh.somefile3.txt' }],
    });
  });

  it('exit 1 when no layer ever touched the path; 2 without one', async () => {
    assertError(await ocimount(['blame', DIVE, '/no/such/file']), 1, /\/no\/such\/file: no layer added, changed or deleted it/);
    assertError(await ocimount(['blame', '--json', DIVE, '/nope']), 1, /no layer/);
    assertError(await ocimount(['blame', DIVE]), 2, /missing required argument 'path'/);
    assertError(await ocimount(['blame', '--image', '7', TWO, '/foo']), 1, /no image "7"/);
  });
});

describe('ocimount diff', { concurrency: 4 }, () => {
  it('--layer N: what that layer changed against the image below it', async () => {
    const chmod = await ocimount(['diff', '--layer', '13', DIVE]);
    assert.equal(chmod.code, 0, chmod.stderr);
    assert.equal(chmod.stdout, 'M  6405  /root/saved.txt  (mode 0644 -> 0755)\n');
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '7', DIVE])).stdout), ['D 6405 /root/example/somefile3.txt', 'A 6405 /root/saved.txt']);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', 'bc2e36', DIVE])).stdout), [
      'D - /root/example',
      'D - /root/example/really',
      'D - /root/example/really/nested',
      'D 6405 /root/example/somefile1.txt',
      'D 6405 /root/example/somefile2.txt',
    ]);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '1', OVERWRITTEN])).stdout), ['A 4 /bar.txt', 'M 7 /foo.txt (type file -> symlink)']);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '1', WHITEOUT_FILE])).stdout), ['D 4 /foo.txt']);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '1', opaque])).stdout), ['A 4 /d/new', 'D 3 /d/old', 'D - /d/sub', 'D 1 /d/sub/x']);
    // gzip layers: a/foo, b/bar, then .wh.a deletes a, then a/baz brings a back.
    const gz = path.join(FIXTURES, 'ggcr-whiteout-dir-gzip.tar');
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '2', gz])).stdout), ['D - /a', 'D 0 /a/foo']);
    assert.deepEqual(rows((await ocimount(['blame', gz, '/a/foo'])).stdout).map((l) => l.split(' ').slice(0, 6).join(' ')), [
      '0 sha256:7e9fc0fd7367 A /a/foo /bin/sh -c',
      '2 sha256:a941a11c30af D /a/foo (by /.wh.a)',
    ]);
  });

  it('without --layer: every layer in turn under a header', async () => {
    const r = await ocimount(['diff', DIVE]);
    assert.equal(r.code, 0, r.stderr);
    const headers = lines(r.stdout).filter((l) => l.startsWith('layer '));
    assert.equal(headers.length, 14);
    assert.equal(headers[13], 'layer 13  sha256:ba689cac6a98  /bin/sh -c chmod +x /root/saved.txt');
    const section = r.stdout.split('\n\n').find((s) => s.startsWith('layer 4 '))!;
    assert.equal(section, 'layer 4  sha256:14c9a6ffcb6a  /bin/sh -c chmod 444 /root/example/somefile1.txt\nM  6405  /root/example/somefile1.txt  (mode 0644 -> 0444)');
    // Layer 0 adds everything: each of its 415 entries, busybox's 393 names included.
    assert.equal(r.stdout.split('\n\n')[0].split('\n').filter((l) => l.startsWith('A ')).length, 415);
    const j = JSON.parse((await ocimount(['diff', '--json', DIVE])).stdout);
    assert.equal(j.length, 14);
    assert.deepEqual(j[13], {
      position: 13,
      diffId: 'sha256:ba689cac6a98c92d121fa5c9716a1bab526b8bb1fd6d43625c575b79e97300c5',
      createdBy: '/bin/sh -c chmod +x /root/saved.txt',
      changes: [
        {
          kind: 'M',
          path: '/root/saved.txt',
          size: 6405,
          before: { type: 'file', mode: '0644', uid: 0, gid: 0, size: 6405 },
          after: { type: 'file', mode: '0755', uid: 0, gid: 0, size: 6405 },
          changed: ['mode'],
          changes: ['mode 0644 -> 0755'],
        },
      ],
    });
  });

  it('two images of one archive (--image-b), and two archives: A/M/D between the merged trees', async () => {
    const inOne = await ocimount(['diff', '--image', '0', '--image-b', '1', TWO]);
    assert.equal(inOne.code, 0, inOne.stderr);
    assert.deepEqual(rows(inOne.stdout), ['A 4 /bar', 'D 4 /bat', 'D 4 /baz', 'A 4 /foo']);
    const ab = await ocimount(['diff', imgA, imgB]);
    assert.equal(ab.code, 0, ab.stderr);
    assert.deepEqual(rows(ab.stdout), ['D 1 /gone', 'M 1 /mode (mode 0644 -> 0755)', 'A - /new', 'A 1 /new/file', 'M 4 /same-size (content)']);
    assert.equal((await ocimount(['diff', ONE, ONE])).stdout, '');
    const j = JSON.parse((await ocimount(['diff', '--json', imgA, imgB])).stdout);
    assert.equal(j.a.archive, imgA);
    assert.deepEqual(j.a.names, ['a:1']);
    assert.ok(j.b.names.some((n: string) => n.endsWith('b:1')), j.b.names.join());
    assert.deepEqual(j.changes.find((c: { path: string }) => c.path === '/same-size').changes, ['content']);
  });

  it('usage errors exit 2; a missing second archive exits 3', async () => {
    assertError(await ocimount(['diff', '--layer', '3', DIVE, ONE]), 2, /--layer .* does not go with a second image/);
    assertError(await ocimount(['diff', '--layers-b', '0', DIVE]), 2, /need a second image/);
    assertError(await ocimount(['diff', '--layer', '99', DIVE]), 1, /no such layer/);
    assertError(await ocimount(['diff', DIVE, path.join(FIXTURES, 'missing.tar')]), 3, /missing\.tar: no such file or directory/);
  });
});

describe('blame and diff: one definition of a change', () => {
  /**
   * Layer 0 adds the files; 1 writes /app/bin again, byte for byte (only its mtime is new), to add
   * a hard link to it; 2 only chmods /app/conf; 3 changes /app/data's bytes at the same size and
   * /app/bin's bytes and mode; 4 gives /app/conf another owner and an xattr.
   */
  let img: string;
  before(async () => {
    const dir = scratch('cli-change');
    img = path.join(dir, 'changes.tar');
    const later = new Date('2024-06-01T00:00:00Z');
    await buildArchive(img, {
      layout: 'docker-legacy',
      images: [
        {
          layers: [
            { entries: [{ path: 'app/bin', content: 'binary-v1', mode: 0o755 }, { path: 'app/conf', content: 'conf', mode: 0o644 }, { path: 'app/data', content: 'data-one' }], createdBy: 'COPY app /app' },
            { entries: [{ path: 'app/bin', content: 'binary-v1', mode: 0o755, mtime: later }, { path: 'app/bin-link', type: 'link', target: 'app/bin' }], createdBy: 'RUN ln /app/bin /app/bin-link' },
            { entries: [{ path: 'app/conf', content: 'conf', mode: 0o600 }], createdBy: 'RUN chmod 600 /app/conf' },
            { entries: [{ path: 'app/bin', content: 'binary-v2', mode: 0o700 }, { path: 'app/data', content: 'data-two' }], createdBy: 'RUN rebuild' },
            { entries: [{ path: 'app/conf', content: 'conf', mode: 0o600, uid: 1000, gid: 1000, xattrs: { 'user.note': 'x' } }], createdBy: 'RUN chown' },
          ],
        },
      ],
    });
  });

  const cut = (text: string) => rows(text).map((l) => l.replace(/ sha256:\w+/, ''));

  it('re-added with the same content is R in blame and in diff, not M; the hard link is A', async () => {
    const blame = await ocimount(['blame', img, '/app/bin']);
    assert.equal(blame.code, 0, blame.stderr);
    assert.deepEqual(cut(blame.stdout), [
      '0 A /app/bin COPY app /app',
      '1 R /app/bin (re-added, same content) RUN ln /app/bin /app/bin-link',
      '3 M /app/bin (content, mode 0755 -> 0700) RUN rebuild',
    ]);
    const diff = await ocimount(['diff', '--layer', '1', img]);
    assert.equal(diff.code, 0, diff.stderr);
    assert.deepEqual(rows(diff.stdout), ['R 9 /app/bin (re-added, same content)', 'A 9 /app/bin-link']);
    const j = JSON.parse((await ocimount(['diff', '--json', '--layer', '1', img])).stdout);
    assert.deepEqual(j.changes.map((c: { kind: string; path: string; changed?: string[] }) => [c.kind, c.path, c.changed]), [['R', '/app/bin', []], ['A', '/app/bin-link', undefined]]);
    const bj = JSON.parse((await ocimount(['blame', '--json', img, '/app/bin'])).stdout);
    assert.deepEqual(bj.map((l: { position: number; kind: string; changed?: string[] }) => [l.position, l.kind, l.changed]), [[0, 'A', undefined], [1, 'R', []], [3, 'M', ['content', 'mode']]]);
  });

  it('a chmod alone is M (mode); same-size new bytes are M (content); owner and xattrs are named too', async () => {
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '2', img])).stdout), ['M 4 /app/conf (mode 0644 -> 0600)']);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '3', img])).stdout), ['M 9 /app/bin (content, mode 0755 -> 0700)', 'M 8 /app/data (content)']);
    assert.deepEqual(rows((await ocimount(['diff', '--layer', '4', img])).stdout), ['M 4 /app/conf (owner 0:0 -> 1000:1000, xattrs user.note)']);
    assert.deepEqual(cut((await ocimount(['blame', img, '/app/conf'])).stdout), [
      '0 A /app/conf COPY app /app',
      '2 M /app/conf (mode 0644 -> 0600) RUN chmod 600 /app/conf',
      '4 M /app/conf (owner 0:0 -> 1000:1000, xattrs user.note) RUN chown',
    ]);
    assert.deepEqual(cut((await ocimount(['blame', img, '/app/data'])).stdout), ['0 A /app/data COPY app /app', '3 M /app/data (content) RUN rebuild']);
    const j = JSON.parse((await ocimount(['diff', '--json', '--layer', '4', img])).stdout);
    assert.deepEqual(j.changes[0].changed, ['owner', 'xattrs']);
  });

  it('for every layer and path, blame --json and diff --json say the same kind and the same changed fields', async () => {
    const fromDiff = new Map<string, [string, string[] | undefined]>();
    const layers = JSON.parse((await ocimount(['diff', '--json', img])).stdout) as Array<{ position: number; changes: Array<{ kind: string; path: string; changed?: string[] }> }>;
    for (const l of layers) for (const c of l.changes) if (c.path.startsWith('/app/')) fromDiff.set(`${l.position} ${c.path}`, [c.kind, c.changed]);
    const fromBlame = new Map<string, [string, string[] | undefined]>();
    const blamed = JSON.parse((await ocimount(['blame', '--json', img, '/app'])).stdout) as Array<{ position: number; changes: Array<{ kind: string; path: string; changed?: string[] }> }>;
    for (const l of blamed) for (const c of l.changes) if (c.path.startsWith('/app/')) fromBlame.set(`${l.position} ${c.path}`, [c.kind, c.changed]);
    assert.deepEqual([...fromBlame.entries()].sort(), [...fromDiff.entries()].sort());
    assert.equal(fromDiff.size, 9);
  });
});
