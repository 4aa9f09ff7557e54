import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ImageArchive, ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import { FIXTURES } from './helpers/mount-harness';

/*
 * The engine over real archives written by Docker, kaniko, skopeo, buildkit and
 * go-containerregistry (see test/fixtures/README.md). Expectations come from listing the
 * layers with GNU tar by hand.
 */

const fixture = (name: string) => path.join(FIXTURES, name);

async function withView<T>(name: string, opts: Parameters<typeof ImageView.open>[1], fn: (v: ImageView) => Promise<T> | T): Promise<T> {
  const view = await ImageView.open(fixture(name), opts);
  try {
    return await fn(view);
  } finally {
    await view.close();
  }
}

const text = async (v: ImageView, p: string) => {
  const node = v.merged.lookup(p);
  assert.ok(node >= 0, `${p} should exist`);
  return (await v.readFile(v.merged, node)).toString('utf8');
};

describe('real-world archives', () => {
  it('legacy docker save with whiteouts (dive): file and directory whiteouts, chmod layer, busybox hard links', async () => {
    await withView('dive-legacy-whiteouts.tar', {}, async (v) => {
      assert.equal(v.image.record.layout, 'docker-archive');
      assert.deepEqual(v.image.record.names, ['dive-test:latest']);
      assert.equal(v.layers.length, 14);
      // Legacy layer folder names are v1 ids; the layers are named by the config's diff_ids.
      assert.equal(v.layers[0].descriptor.diffId, v.image.config.rootfs!.diff_ids![0]);
      assert.ok(!v.layers[0].descriptor.blobPath.includes(v.layers[0].descriptor.diffId.slice(7)));
      const m = v.merged;
      assert.equal(m.lookup('root/example'), -1, 'root/.wh.example removes the directory');
      assert.equal(m.lookup('root/example/somefile3.txt'), -1);
      assert.ok(m.lookup('root/saved.txt') >= 0);
      assert.ok(m.lookup('root/.saved.txt') >= 0);
      assert.ok(m.lookup('tmp/saved.again1.txt') >= 0);
      assert.ok(m.lookup('root/.data/saved.again2.txt') >= 0);
      assert.ok(m.lookup('somefile.txt') >= 0);
      // The last layer re-adds root/saved.txt with mode 0755: the upper entry wins.
      assert.equal(m.stat(m.lookup('root/saved.txt')).mode & 0o777, 0o755);
      assert.equal(m.stat(m.lookup('etc/shadow')).mode & 0o777, 0o600);
      assert.equal(m.stat(m.lookup('root')).mode & 0o777, 0o700);
      assert.equal(m.stat(m.lookup('home')).uid, 65534);
      // No whiteout marker is ever visible in the merged tree.
      for (const n of m.walk()) assert.ok(!m.name(n).startsWith('.wh.'), `${m.path(n)} is a whiteout marker`);
      // busybox: 392 hard links to bin/[ share its inode, and nlink counts them all.
      const target = m.stat(m.lookup('bin/['));
      const acpid = m.stat(m.lookup('bin/acpid'));
      assert.equal(acpid.ino, target.ino);
      assert.equal(target.nlink, 393);
      assert.equal(target.type, EntryType.File);
      const a = await v.readFile(m, m.lookup('bin/['));
      const b = await v.readFile(m, m.lookup('bin/acpid'));
      assert.ok(a.length > 100_000 && a.equals(b));
      // The whiteout layer's own view shows the marker as stored.
      const wl = v.layerTree(9);
      assert.ok(wl.lookup('root/.wh.example') >= 0);
    });
  });

  it('go-containerregistry whiteout_image: ./.wh.foo.txt hides foo.txt; an empty layer is fine', async () => {
    await withView('ggcr-whiteout-file.tar', {}, async (v) => {
      assert.equal(v.layers.length, 3);
      assert.equal(v.layers[2].index.count, 0);
      assert.deepEqual(v.merged.children(0).map((n) => v.merged.name(n)), ['bar.txt']);
      assert.equal(await text(v, 'bar.txt'), 'bar\n');
      // As of layer 0 (before the whiteout) foo.txt is still there.
      const before = await ImageView.open(fixture('ggcr-whiteout-file.tar'), { layers: '..0' });
      try {
        assert.equal(await text(before, 'foo.txt'), 'foo\n');
      } finally {
        await before.close();
      }
    });
  });

  it('go-containerregistry overwritten_file: a symlink replaces a lower file', async () => {
    await withView('ggcr-overwritten-file.tar', {}, async (v) => {
      const m = v.merged;
      const foo = m.lookup('foo.txt');
      assert.equal(m.stat(foo).type, EntryType.Symlink);
      assert.equal(m.symlinkTarget(foo), 'bar.txt');
      assert.equal(await text(v, 'bar.txt'), 'bar\n');
    });
  });

  it('Docker 25 save (OCI layout + manifest.json, index with null manifests)', async () => {
    await withView('ggcr-hello-world-docker25.tar', {}, async (v) => {
      assert.equal(v.layers.length, 1);
      assert.equal(v.layers[0].descriptor.blobPath, 'blobs/sha256/12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43');
      const hello = v.merged.lookup('hello');
      assert.ok(hello >= 0);
      assert.equal(v.merged.stat(hello).mode & 0o111, 0o111);
      assert.deepEqual(v.image.config.config?.Cmd, ['/hello']);
    });
  });

  it('two images in one legacy archive: listed, chosen by position, name or digest', async () => {
    const archive = await ImageArchive.open(fixture('ggcr-legacy-two-images.tar'));
    try {
      assert.deepEqual(archive.records.map((r) => r.names), [['test_image_2'], ['test_image_1']]);
      assert.throws(() => archive.select({}), /holds 2 images; choose one with --image/);
      assert.equal(archive.select({ image: '1' }).names[0], 'test_image_1');
      assert.equal(archive.select({ image: 'test_image_2' }).position, 0);
      assert.equal(archive.select({ image: 'test_image_1:latest' }).position, 1);
      const digest = archive.records[1].configDigest!;
      assert.equal(archive.select({ image: digest.slice(0, 19) }).position, 1);
      assert.throws(() => archive.select({ image: 'nope' }), /no image "nope"/);
    } finally {
      await archive.close();
    }
    await withView('ggcr-legacy-two-images.tar', { image: 'test_image_1' }, (v) => {
      assert.deepEqual(v.merged.children(0).map((n) => v.merged.name(n)), ['bar', 'foo']);
    });
  });

  it('one-layer legacy, almost-empty legacy and uncompressed oci-archive', async () => {
    await withView('ggcr-legacy-one-layer.tar', {}, (v) => assert.deepEqual(v.merged.children(0).map((n) => v.merged.name(n)), ['bar', 'foo']));
    await withView('containers-image-almostempty.tar', {}, (v) => {
      assert.deepEqual(v.image.record.names, ['emptyimage:latest']);
      assert.deepEqual(v.merged.children(0).map((n) => v.merged.name(n)), ['emptyfile']);
      assert.equal(v.merged.stat(v.merged.lookup('emptyfile')).size, 0);
    });
    await withView('dive-oci-uncompressed.tar', {}, async (v) => {
      assert.equal(v.image.record.layout, 'oci-layout');
      assert.match(await text(v, 'README.md'), /\S/);
    });
  });
});
