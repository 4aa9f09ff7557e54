import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IndexCache } from '../src/cache/index-cache';
import { ImageView } from '../src/engine';
import { RegistryArchiveFiles } from '../src/registry/registry-files';
import { parseRegistryReference } from '../src/registry/reference';
import { configureRegistry, DEFAULT_REGISTRY_SETTINGS } from '../src/registry/settings';
import { buildArchive, type EntrySpec } from './helpers/archive-builder';
import { ocimount, tempDir, type RunResult } from './helpers/mount-harness';
import { pushLayout, skopeoCopy, startRegistry, type Registry } from './helpers/registry';

/*
 * Images read straight from a real registry (CNCF Distribution on a loopback port, images
 * pushed with skopeo): every mount-free command on docker:// references gives what the same
 * image gives from a docker save-style archive (skopeo's docker-archive of it), layers are read
 * lazily (uncompressed: headers and what is read; gzip/zstd: one streamed pass, then ranges),
 * indexes are shared by digest across tags, and what was read works again without the registry.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function scratch(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}
function assertOk(r: RunResult): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
}
function assertError(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}

describe('docker:// references', () => {
  it("follow Docker's normalisation", () => {
    const r = (s: string) => parseRegistryReference(s);
    assert.equal(r('docker://alpine').name, 'docker.io/library/alpine:latest');
    assert.equal(r('docker://alpine').apiHost, 'registry-1.docker.io');
    assert.equal(r('docker://team/app:1.0').name, 'docker.io/team/app:1.0');
    assert.equal(r('docker://index.docker.io/library/alpine:3').name, 'docker.io/library/alpine:3');
    assert.equal(r('docker://localhost/app').registry, 'localhost');
    assert.equal(r('docker://localhost:5000/a/b:t').repository, 'a/b');
    assert.equal(r('docker://127.0.0.1:5000/app:1').apiHost, '127.0.0.1:5000');
    assert.equal(r('docker://ghcr.io/o/app').name, 'ghcr.io/o/app:latest');
    const d = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual([r(`docker://ghcr.io/o/app@${d}`).tag, r(`docker://ghcr.io/o/app@${d}`).manifestRef], [undefined, d]);
    assert.equal(r(`docker://app:1@${d}`).name, `docker.io/library/app:1@${d}`);
    for (const bad of ['docker://', 'docker://UPPER/case', 'docker://app:bad tag', 'docker://app@sha256:12']) assert.throws(() => r(bad), /not a valid image reference/);
  });
});

function entries(prefix: string, extra: EntrySpec[] = []): EntrySpec[] {
  return [
    { path: 'etc/', type: 'dir' },
    { path: 'etc/os-release', content: `ID=${prefix}\n` },
    { path: 'bin/', type: 'dir' },
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    { path: 'bin/busybox', content: `${prefix} busybox\n`.repeat(300), mode: 0o755 },
    { path: 'bin/ash', type: 'link', target: 'bin/busybox' },
    ...extra,
  ];
}

describe('an image from a registry', { timeout: 600_000 }, () => {
  let reg: Registry;
  let work: string;
  const big = randomBytes(6 * 1024 * 1024);
  const host = () => reg.host;

  before(async () => {
    reg = await startRegistry();
    work = scratch('registry-images');
    // One image, three layers: a big incompressible file and small ones, a deletion, an update.
    await buildArchive(path.join(work, 'img'), {
      layout: 'oci-dir',
      images: [
        {
          tags: ['app:1'],
          config: { Cmd: ['/bin/sh'] },
          layers: [
            { entries: entries('base', [{ path: 'data/', type: 'dir' }, { path: 'data/big.bin', content: big }, { path: 'data/after.txt', content: 'after the big file\n' }]) },
            { entries: [{ path: 'etc/.wh.os-release', content: '' }, { path: 'app/', type: 'dir' }, { path: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 }] },
            { entries: [{ path: 'etc/os-release', content: 'ID=top\n' }, { path: 'etc/xattr', content: 'x', xattrs: { 'user.k': 'v' } }] },
          ],
        },
      ],
    });
    await buildArchive(path.join(work, 'multi'), {
      layout: 'oci-dir',
      multiPlatform: true,
      images: [
        { tags: ['multi:1'], architecture: 'amd64', layers: [{ entries: [{ path: 'arch', content: 'amd64\n' }] }] },
        { tags: ['multi:1'], architecture: 'arm64', variant: 'v8', layers: [{ entries: [{ path: 'arch', content: 'arm64\n' }] }] },
      ],
    });
    const dest = (repo: string) => `docker://${host()}/${repo}`;
    // skopeo compresses whatever it sends to a registry: the uncompressed layers go as they are.
    await pushLayout(path.join(work, 'img'), host(), 'plain/app', '1');
    await skopeoCopy(`oci:${work}/img:1`, dest('gzip/app:1'), ['--dest-tls-verify=false', '--dest-compress', '--dest-compress-format', 'gzip']);
    await skopeoCopy(`oci:${work}/img:1`, dest('zstd/app:1'), ['--dest-tls-verify=false', '--dest-compress', '--dest-compress-format', 'zstd']);
    await skopeoCopy(`oci:${work}/multi:1`, dest('multi/app:1'), ['--dest-tls-verify=false', '--all']);
    // The docker save-style archive every registry read is compared with.
    await skopeoCopy(dest('plain/app:1'), `docker-archive:${work}/saved.tar:app:1`, ['--src-tls-verify=false']);
  });
  after(async () => reg?.stop());

  for (const kind of ['plain', 'gzip', 'zstd']) {
    it(`${kind}: every mount-free command answers as it does for the docker save archive`, async () => {
      const ref = `docker://${host()}/${kind}/app:1`;
      const saved = path.join(work, 'saved.tar');
      const cache = scratch(`cache-${kind}`);
      const both = async (args: string[]) => {
        const a = await ocimount([args[0], '--cache-dir', cache, ref, ...args.slice(1)]);
        const b = await ocimount([args[0], '--no-cache', saved, ...args.slice(1)]);
        assertOk(a);
        assertOk(b);
        return [a.stdout, b.stdout];
      };
      const [cat] = await both(['cat', '/etc/os-release', '/app/run.sh']);
      assert.equal(cat, 'ID=top\n#!/bin/sh\necho hi\n');
      const [lsA, lsB] = await both(['ls', '-lR', '/']);
      assert.equal(lsA, lsB);
      const [findA, findB] = await both(['find', '--json', '/']);
      assert.deepEqual(JSON.parse(findA), JSON.parse(findB));
      const [blameA, blameB] = await both(['blame', '/etc/os-release']);
      assert.equal(blameA, blameB);
      const [diffA, diffB] = await both(['diff', '--layer', '1']);
      assert.equal(diffA, diffB);
      const outA = path.join(cache, 'a.tar');
      const outB = path.join(cache, 'b.tar');
      await both(['export', '-o', outA]).catch(() => undefined);
      assertOk(await ocimount(['export', '--cache-dir', cache, ref, '-o', outA]));
      assertOk(await ocimount(['export', '--no-cache', saved, '-o', outB]));
      assert.ok(fs.readFileSync(outA).equals(fs.readFileSync(outB)), 'the exported rootfs is byte for byte the same');
      const ex = path.join(cache, 'ex');
      assertOk(await ocimount(['extract', '--cache-dir', cache, ref, '/data', '-o', ex]));
      assert.ok(fs.readFileSync(path.join(ex, 'data', 'big.bin')).equals(big));
      const inspect = await ocimount(['inspect', '--cache-dir', cache, ref]);
      assertOk(inspect);
      assert.match(inspect.stdout, new RegExp(`${host().replace(/\./g, '\\.')}/${kind}/app:1`));
      const diffAB = await ocimount(['diff', '--cache-dir', cache, ref, saved]);
      assertOk(diffAB);
      assert.equal(diffAB.stdout, '', 'no difference between the registry image and the archive');
    });
  }

  async function open(ref: string, cacheDir: string): Promise<{ view: ImageView; files: RegistryArchiveFiles }> {
    const view = await ImageView.open(ref, { cache: new IndexCache(cacheDir) });
    return { view, files: view.archive.files as RegistryArchiveFiles };
  }
  const fileNode = (view: ImageView, p: string) => {
    const n = view.merged.lookup(p);
    assert.ok(n >= 0, p);
    return n;
  };

  it('uncompressed: indexing reads headers, a read fetches what it reads, a remount nothing', async () => {
    const cache = scratch('lazy-plain');
    const ref = `docker://${host()}/plain/app:1`;
    const { view, files } = await open(ref, cache);
    try {
      // Headers in 64 KiB blocks, the first and last 64 KiB (the cache key's sample): never the 6 MiB file.
      assert.ok(files.fetchedBytes < 1024 * 1024, `indexing fetched ${files.fetchedBytes} bytes`);
      const before = files.fetchedBytes;
      assert.equal((await view.readFile(view.merged, fileNode(view, '/data/after.txt'))).toString(), 'after the big file\n');
      assert.ok(files.fetchedBytes - before <= 128 * 1024, `a small read fetched ${files.fetchedBytes - before} bytes`);
      assert.ok((await view.readFile(view.merged, fileNode(view, '/data/big.bin'))).equals(big));
      assert.ok(files.fetchedBytes >= big.length);
    } finally {
      await view.close();
    }
    const again = await open(ref, cache);
    try {
      assert.ok((await again.view.readFile(again.view.merged, fileNode(again.view, '/data/big.bin'))).equals(big));
      assert.equal(again.files.fetchedBytes, 0, 'the index and the blocks read before come from the cache');
    } finally {
      await again.view.close();
    }
  });

  it('gzip: one streamed pass that keeps nothing on disk, then ranges from checkpoints; the index is shared by digest across tags', async () => {
    const cache = scratch('lazy-gzip');
    const ref = `docker://${host()}/gzip/app:1`;
    const { view, files } = await open(ref, cache);
    let stored = 0;
    try {
      stored = view.layers[0].storedSize;
      assert.ok(stored > big.length, 'random bytes do not compress');
      // The pass reads the blob once (plus the 64 KiB samples and the magic).
      assert.ok(files.fetchedBytes < stored + view.layers.reduce((n, l) => n + l.storedSize, 0) + 512 * 1024, `fetched ${files.fetchedBytes}`);
      const blocks = path.join(cache, 'registry', 'blocks');
      const kept = fs.readdirSync(blocks).filter((f) => f.endsWith('.data')).reduce((n, f) => n + fs.statSync(path.join(blocks, f)).blocks * 512, 0);
      assert.ok(kept < 1024 * 1024, `the pass kept ${kept} bytes on disk`);
      const before = files.fetchedBytes;
      assert.equal((await view.readFile(view.merged, fileNode(view, '/data/after.txt'))).toString(), 'after the big file\n');
      assert.ok(files.fetchedBytes - before < 3 * 1024 * 1024, `a small read near the end fetched ${files.fetchedBytes - before} bytes (one span)`);
    } finally {
      await view.close();
    }
    // Same blobs under another repository and tag: the index cached by digest serves it.
    await skopeoCopy(`docker://${host()}/gzip/app:1`, `docker://${host()}/gzip-copy/other:2`, ['--src-tls-verify=false', '--dest-tls-verify=false']);
    const other = await open(`docker://${host()}/gzip-copy/other:2`, cache);
    try {
      assert.ok(other.files.fetchedBytes < 1024 * 1024, `the second image fetched ${other.files.fetchedBytes} bytes to open`);
      assert.equal((await other.view.readFile(other.view.merged, fileNode(other.view, '/app/run.sh'))).toString(), '#!/bin/sh\necho hi\n');
    } finally {
      await other.view.close();
    }
  });

  it('what was read is read again without the registry (by digest, or a tag as last seen)', async () => {
    const cache = scratch('offline');
    const ref = `docker://${host()}/gzip/app:1`;
    const first = await ocimount(['cat', '--cache-dir', cache, ref, '/etc/os-release']);
    assertOk(first);
    const inspect = JSON.parse((await ocimount(['inspect', '--json', '--cache-dir', cache, ref])).stdout);
    const digest: string = inspect.images[0].manifestDigest;
    await reg.kill();
    try {
      const byTag = await ocimount(['cat', '--cache-dir', cache, '--registry-timeout', '2', ref, '/etc/os-release']);
      assert.equal(byTag.code, 0, byTag.stderr);
      assert.equal(byTag.stdout, 'ID=top\n');
      assert.match(byTag.stderr, /last seen/);
      // By digest, nothing needs the registry at all: no warning.
      const byDigest = await ocimount(['cat', '--cache-dir', cache, '--registry-timeout', '2', `docker://${host()}/gzip/app@${digest}`, '/etc/os-release']);
      assert.equal(byDigest.code, 0, byDigest.stderr);
      assert.equal(byDigest.stdout, 'ID=top\n');
      assert.equal(byDigest.stderr, '');
      const unread = await ocimount(['cat', '--cache-dir', cache, '--registry-timeout', '2', ref, '/data/big.bin']);
      assert.equal(unread.code, 3, unread.stderr);
      const said = lines(unread.stderr);
      assert.match(said[0], /warning: .*last seen/);
      assert.match(said[1], new RegExp(`^ocimount: ${host().replace(/\./g, '\\.')}: blob sha256:[0-9a-f]{12} of gzip/app bytes \\d+-\\d+: connect ECONNREFUSED .*gave up after [\\d.]+ s`));
      assert.equal(said.length, 2);
    } finally {
      await reg.restart();
    }
  });

  it('an index picks this machine\'s platform, or the one --platform names', async () => {
    const ref = `docker://${host()}/multi/app:1`;
    const cache = scratch('multi');
    const arm = await ocimount(['cat', '--cache-dir', cache, '--platform', 'linux/arm64', ref, '/arch']);
    assertOk(arm);
    assert.equal(arm.stdout, 'arm64\n');
    if (process.arch === 'x64') {
      const host = await ocimount(['cat', '--cache-dir', cache, ref, '/arch']);
      assertOk(host);
      assert.equal(host.stdout, 'amd64\n');
    }
    const none = await ocimount(['cat', '--cache-dir', cache, '--platform', 'linux/s390x', ref, '/arch']);
    assertError(none, 1, /no image for platform linux\/s390x/);
  });

  it('a missing repository or tag is exit 1, one line', async () => {
    const r = await ocimount(['ls', '--no-cache', `docker://${host()}/nothing/here:1`]);
    assertError(r, 1, new RegExp(`${host().replace(/\./g, '\\.')}: no manifest nothing/here:1`));
  });
});

process.on('exit', () => configureRegistry(DEFAULT_REGISTRY_SETTINGS));
