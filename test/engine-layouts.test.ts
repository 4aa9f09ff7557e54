import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageArchive, ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import { buildArchive, emptyLayerTar, type ImageSpec, type Layout } from './helpers/archive-builder';
import { concatTar, endOfArchive, entry, gnuLong, header, oldGnuSparse, paxHeader, paxSparse10, sparseContent } from './helpers/raw-tar';
import { tempDir } from './helpers/mount-harness';

/*
 * Every archive layout, built by the test builder and read back by the engine; every tar
 * feature the indexer must decode, written block by block. Expected trees are written by hand.
 */

const work = tempDir('layouts');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let serial = 0;
const out = (layout: Layout) => path.join(work, `${serial++}-${layout}${layout === 'oci-dir' ? '' : '.tar'}`);

const twoLayers: ImageSpec = {
  tags: ['myapp:1.0'],
  config: { Cmd: ['/app/run'], WorkingDir: '/app' },
  layers: [
    {
      createdBy: 'ADD rootfs /',
      entries: [
        { path: 'etc/', type: 'dir' },
        { path: 'etc/os-release', content: 'ID=test\n' },
        { path: 'app/', type: 'dir' },
        { path: 'app/old.txt', content: 'old' },
      ],
    },
    {
      createdBy: 'COPY run /app/run',
      entries: [
        { path: 'app/run', content: '#!/bin/sh\necho run\n', mode: 0o755 },
        { path: 'app/.wh.old.txt', content: '' },
      ],
    },
  ],
  emptyHistory: [{ index: 1, createdBy: 'ENV A=1' }],
};

async function open(file: string, opts: Parameters<typeof ImageView.open>[1] = {}) {
  return ImageView.open(file, { ...opts });
}

async function listing(v: ImageView, tree = v.merged): Promise<string[]> {
  return [...tree.walk()].slice(1).map((n) => tree.path(n) + (tree.isDir(n) ? '/' : ''));
}

async function content(v: ImageView, p: string, tree = v.merged): Promise<string> {
  const n = tree.lookup(p);
  assert.ok(n >= 0, `${p} missing`);
  return (await v.readFile(tree, n)).toString();
}

describe('archive layouts', () => {
  for (const layout of ['docker25', 'docker-legacy', 'skopeo', 'kaniko', 'docker-pre110', 'oci-archive', 'oci-dir'] as const) {
    it(`${layout}: finds the image, its layers by diff_id, history and the merged tree`, async () => {
      const file = out(layout);
      const built = await buildArchive(file, { layout, images: [twoLayers] });
      const v = await open(file);
      try {
        assert.deepEqual(await listing(v), ['app/', 'app/run', 'etc/', 'etc/os-release']);
        assert.equal(await content(v, 'app/run'), '#!/bin/sh\necho run\n');
        assert.equal(v.merged.stat(v.merged.lookup('app/run')).mode & 0o777, 0o755);
        assert.deepEqual(v.layers.map((l) => l.descriptor.diffId), built.images[0].diffIds);
        if (layout !== 'docker-pre110') {
          assert.deepEqual(v.image.config.config?.Cmd, ['/app/run']);
          // History: the empty ENV step sits between the two layers and owns none.
          const steps = v.image.history.map((h) => [h.createdBy, h.layer]);
          assert.deepEqual(steps, [['ADD rootfs /', 0], ['ENV A=1', undefined], ['COPY run /app/run', 1]]);
        } else {
          assert.deepEqual(v.image.history.map((h) => h.layer), [0, 1]);
        }
        assert.ok(v.image.record.names.some((n) => n.endsWith('myapp:1.0')), v.image.record.names.join());
        // The layer alone shows its whiteout marker.
        assert.deepEqual(await listing(v, v.layerTree(1)), ['app/', 'app/.wh.old.txt', 'app/run']);
        if (built.images[0].manifestDigest) assert.equal(v.image.record.manifestDigest, built.images[0].manifestDigest);
      } finally {
        await v.close();
      }
    });
  }

  it('kaniko gzip layers and gzip/zstd layers in OCI layouts read like plain ones', async () => {
    for (const [layout, compression] of [['kaniko', 'gzip'], ['oci-archive', 'gzip'], ['oci-archive', 'zstd'], ['docker25', 'gzip']] as const) {
      const file = out(layout);
      await buildArchive(file, { layout, images: [{ ...twoLayers, layers: twoLayers.layers.map((l) => ({ ...l, compression })) }] });
      const v = await open(file);
      try {
        assert.deepEqual(v.layers.map((l) => l.compression), [compression, compression]);
        assert.equal(await content(v, 'etc/os-release'), 'ID=test\n');
        assert.deepEqual(await listing(v), ['app/', 'app/run', 'etc/', 'etc/os-release']);
      } finally {
        await v.close();
      }
    }
  });

  it('a compressed outer archive (docker save | gzip, | zstd) reads like the plain one', async () => {
    for (const outerCompression of ['gzip', 'zstd'] as const) {
      const file = out('docker-legacy');
      await buildArchive(file, { layout: 'docker-legacy', images: [twoLayers], outerCompression });
      const v = await open(file);
      try {
        assert.equal(await content(v, 'app/run'), '#!/bin/sh\necho run\n');
      } finally {
        await v.close();
      }
    }
  });

  it('several images: listed in archive order, chosen by position, tag or digest; one needs no choice', async () => {
    for (const layout of ['docker-legacy', 'docker25', 'oci-archive'] as const) {
      const file = out(layout);
      const a: ImageSpec = { tags: ['alpha:1'], layers: [{ entries: [{ path: 'a.txt', content: 'A' }] }] };
      const b: ImageSpec = { tags: ['beta:2'], layers: [{ entries: [{ path: 'b.txt', content: 'B' }] }] };
      const built = await buildArchive(file, { layout, images: [a, b] });
      const archive = await ImageArchive.open(file);
      try {
        assert.equal(archive.records.length, 2);
        assert.throws(() => archive.select({}), /holds 2 images; choose one with --image/);
        assert.equal(archive.select({ image: '1' }).position, 1);
        assert.equal(archive.select({ image: 'beta:2' }).position, 1);
        assert.equal(archive.select({ image: 'docker.io/library/alpha:1' }).position, 0);
        assert.equal(archive.select({ image: built.images[1].configDigest }).position, 1);
        if (built.images[1].manifestDigest) assert.equal(archive.select({ image: built.images[1].manifestDigest.slice(0, 20) }).position, 1);
      } finally {
        await archive.close();
      }
      const v = await open(file, { image: 'beta:2' });
      try {
        assert.deepEqual(await listing(v), ['b.txt']);
      } finally {
        await v.close();
      }
    }
  });

  it('a multi-platform index: platforms listed, --platform picks one, the default is this machine', async () => {
    const file = out('oci-archive');
    const img = (arch: string, variant?: string): ImageSpec => ({
      tags: ['multi:1'],
      architecture: arch,
      variant,
      layers: [{ entries: [{ path: 'arch', content: arch + (variant ?? '') }] }],
    });
    await buildArchive(file, { layout: 'oci-archive', images: [img('amd64'), img('arm64', 'v8')], multiPlatform: true });
    const archive = await ImageArchive.open(file);
    try {
      assert.deepEqual(archive.records.map((r) => `${r.platform?.os}/${r.platform?.architecture}`), ['linux/amd64', 'linux/arm64']);
    } finally {
      await archive.close();
    }
    const arm = await open(file, { platform: 'linux/arm64' });
    try {
      assert.equal(await content(arm, 'arch'), 'arm64v8');
    } finally {
      await arm.close();
    }
    if (process.arch === 'x64') {
      const host = await open(file);
      try {
        assert.equal(await content(host, 'arch'), 'amd64');
      } finally {
        await host.close();
      }
    }
    await assert.rejects(open(file, { platform: 'linux/s390x' }), /no image for platform linux\/s390x/);
  });

  it('the same layer twice, an empty layer tar and a layer file that is a link to another', async () => {
    const file = out('docker-legacy');
    const base = { entries: [{ path: 'x', content: 'x' }] };
    await buildArchive(file, {
      layout: 'docker-legacy',
      images: [{ layers: [base, { entries: emptyLayerTar() }, { entries: [{ path: 'y', content: 'y' }] }, { entries: emptyLayerTar() }] }],
      dedupeLayerFiles: 'symlink',
    });
    const v = await open(file);
    try {
      assert.equal(v.layers.length, 4);
      assert.equal(v.layers[1].descriptor.diffId, 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
      assert.equal(v.layers[3].descriptor.diffId, v.layers[1].descriptor.diffId);
      assert.deepEqual(await listing(v), ['x', 'y']);
    } finally {
      await v.close();
    }
  });
});

describe('tar features in layers', () => {
  async function oneLayer(tar: Buffer): Promise<ImageView> {
    const file = out('oci-archive');
    await buildArchive(file, { layout: 'oci-archive', images: [{ layers: [{ entries: tar }] }] });
    return open(file);
  }

  it('pax and GNU long names and link names, base-256 sizes and ids, pax mtime fractions and xattrs', async () => {
    const long = 'd/' + 'n'.repeat(150) + '/' + 'f'.repeat(120);
    const gnuName = 'g/' + 'x'.repeat(200);
    const tar = concatTar([
      paxHeader([['path', long], ['mtime', '1700000000.25'], ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0])], ['SCHILY.xattr.user.note', 'hi']]),
      entry({ name: 'placeholder', size: 5 }, Buffer.from('hello')),
      gnuLong('L', gnuName),
      entry({ name: 'trunc', size: 3, uid: 3_000_000, gid: 70_000, base256: ['uid', 'gid', 'size'] }, Buffer.from('abc')),
      gnuLong('K', long),
      gnuLong('L', 'links/' + 'l'.repeat(130)),
      entry({ name: 'trunc2', typeflag: '2', linkname: 'trunc' }),
      entry({ name: 'dev/null', typeflag: '3', devmajor: 1, devminor: 3, mode: 0o666 }),
      entry({ name: 'dev/sda', typeflag: '4', devmajor: 8, devminor: 0 }),
      entry({ name: 'run/fifo', typeflag: '6' }),
    ]);
    const v = await oneLayer(tar);
    try {
      const m = v.merged;
      assert.equal(await content(v, long), 'hello');
      const st = m.stat(m.lookup(long));
      assert.deepEqual([st.mtime, st.mtimeNsec], [1700000000, 250000000]);
      assert.deepEqual(m.xattrs(m.lookup(long))['security.capability'], Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]));
      assert.equal(m.xattrs(m.lookup(long))['user.note'].toString(), 'hi');
      const g = m.stat(m.lookup(gnuName));
      assert.deepEqual([g.uid, g.gid, g.size], [3_000_000, 70_000, 3]);
      assert.equal(await content(v, gnuName), 'abc');
      assert.equal(m.symlinkTarget(m.lookup('links/' + 'l'.repeat(130))), long);
      const nul = m.stat(m.lookup('dev/null'));
      assert.deepEqual([nul.type, nul.devmajor, nul.devminor, nul.mode & 0o777], [EntryType.CharDevice, 1, 3, 0o666]);
      assert.equal(m.stat(m.lookup('dev/sda')).type, EntryType.BlockDevice);
      assert.equal(m.stat(m.lookup('run/fifo')).type, EntryType.Fifo);
    } finally {
      await v.close();
    }
  });

  it('old GNU and pax 1.0 sparse files read back with their holes as zeros', async () => {
    const chunks = [
      { offset: 0, data: Buffer.from('start'.repeat(200)) },
      { offset: 100_000, data: Buffer.from('middle') },
      { offset: 300_000, data: Buffer.from('end'.repeat(50)) },
    ];
    const tar = concatTar([oldGnuSparse('sparse-old', 400_000, chunks), paxSparse10('sparse-pax', 400_000, chunks)]);
    const expected = sparseContent(400_000, chunks);
    const v = await oneLayer(tar);
    try {
      for (const name of ['sparse-old', 'sparse-pax']) {
        const n = v.merged.lookup(name);
        assert.equal(v.merged.stat(n).size, 400_000);
        assert.ok((await v.readFile(v.merged, n)).equals(expected), name);
        // A read in the middle of a hole and across a data run.
        const buf = Buffer.alloc(20);
        await v.read(v.merged, n, buf, 0, 20, 99_990);
        assert.ok(buf.equals(expected.subarray(99_990, 100_010)));
      }
    } finally {
      await v.close();
    }
  });

  it('a bad header checksum is an error naming the layer and the byte', async () => {
    const bad = Buffer.from(entry({ name: 'ok', size: 1 }, Buffer.from('x')));
    bad[148] = 0x37; // corrupt the checksum field
    const file = out('oci-archive');
    await buildArchive(file, { layout: 'oci-archive', images: [{ layers: [{ entries: Buffer.concat([bad, endOfArchive()]) }] }] });
    await assert.rejects(open(file), /layer 0 \(sha256:[0-9a-f]{64}\): invalid tar header at byte 0/);
  });

  it('entries that climb out of the root are skipped with a warning, never followed', async () => {
    const tar = concatTar([
      entry({ name: '../escape', size: 1 }, Buffer.from('x')),
      entry({ name: 'a/../../escape2', size: 1 }, Buffer.from('x')),
      entry({ name: '/abs/ok', size: 2 }, Buffer.from('ok')),
      entry({ name: 'hl', typeflag: '1', linkname: '../../etc/passwd' }),
      entry({ name: './a/./b/../c', size: 1 }, Buffer.from('c')),
      header({ name: 'plain', size: 0 }),
    ]);
    const warnings: string[] = [];
    const file = out('oci-archive');
    await buildArchive(file, { layout: 'oci-archive', images: [{ layers: [{ entries: tar }] }] });
    const v = await ImageView.open(file, { onWarning: (w) => warnings.push(w) });
    try {
      assert.deepEqual(await listing(v), ['a/', 'a/c', 'abs/', 'abs/ok', 'plain']);
      assert.equal(warnings.filter((w) => /leaves the root/.test(w)).length, 3, warnings.join('\n'));
    } finally {
      await v.close();
    }
  });
});
