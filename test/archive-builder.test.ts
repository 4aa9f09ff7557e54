// Tests of the fixture builder itself. Its output is checked with GNU tar, gzip, zstd and
// getfattr plus plain JSON parsing, never with ocimount's own engine, so a bug in the engine
// cannot hide a bug in the fixtures (or the other way round).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildArchive, emptyLayerTar, layerTar, type BuildOptions, type BuiltImage, type EntrySpec, type ImageSpec, type Layout,
} from './helpers/archive-builder';
import * as raw from './helpers/raw-tar';

let tmp = '';
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'archive-builder-test-')); });
after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

// ---- small helpers around the real tools ----

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (digest: string): string => digest.replace(/^sha256:/, '');
let counter = 0;
const tmpPath = (name: string): string => path.join(tmp, `${counter++}-${name}`);

function run(cmd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync(cmd, args, { input, maxBuffer: 64 << 20, stdio: ['pipe', 'pipe', 'pipe'] });
}
/** Member names as GNU tar lists them. */
const tarNames = (archive: string, flags: string[] = []): string[] =>
  run('tar', [...flags, '-tf', archive]).toString().split('\n').filter(Boolean);
/** `tar -tvf` lines, for checking types, modes and link targets. */
const tarLong = (archive: string, flags: string[] = []): string[] =>
  run('tar', [...flags, '--numeric-owner', '-tvf', archive]).toString().split('\n').filter(Boolean);
const tarCat = (archive: string, member: string, flags: string[] = []): Buffer => run('tar', [...flags, '-xOf', archive, member]);
const tarJson = (archive: string, member: string): any => JSON.parse(tarCat(archive, member).toString());

/** Writes bytes to a temp file so GNU tar can read them. */
function saveTmp(name: string, data: Buffer): string {
  const p = tmpPath(name);
  fs.writeFileSync(p, data);
  return p;
}

/** Decompresses with the command line tools, choosing by magic bytes. */
function decompressCli(blob: Buffer): Buffer {
  if (blob[0] === 0x1f && blob[1] === 0x8b) return run('gzip', ['-dc'], blob);
  if (blob.readUInt32BE(0) === 0x28b52ffd) return run('zstd', ['-dc'], blob);
  return blob;
}

// ---- the image most layout tests build ----

const LAYER0: EntrySpec[] = [
  { path: 'etc/' },
  { path: 'etc/hostname', content: 'box\n' },
  { path: 'bin/sh', type: 'symlink', target: 'busybox' },
];
const LAYER1: EntrySpec[] = [
  { path: 'etc/.wh.hostname' },
  { path: 'app/' },
  { path: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
];
const LAYER_NAMES = [['etc/', 'etc/hostname', 'bin/sh'], ['etc/.wh.hostname', 'app/', 'app/run.sh']];

function twoLayerImage(extra: Partial<ImageSpec> = {}, compressions: BuildOptions['outerCompression'][] = []): ImageSpec {
  return {
    tags: ['myapp:1.0'],
    config: { Cmd: ['/app/run.sh'], WorkingDir: '/app' },
    layers: [
      { entries: LAYER0, createdBy: 'ADD rootfs.tar /', compression: compressions[0] },
      { entries: LAYER1, createdBy: 'COPY app /app', comment: 'buildkit.dockerfile.v0', compression: compressions[1] },
    ],
    ...extra,
  };
}

/** Every layer: stored bytes hash to layerDigests, uncompressed bytes to diff_ids, and list right. */
function checkLayerBlobs(img: BuiltImage, blobs: Buffer[]): void {
  assert.equal(blobs.length, img.diffIds.length);
  blobs.forEach((blob, i) => {
    assert.equal(sha(blob), img.layerDigests[i], `layer ${i} digest`);
    const tar = decompressCli(blob);
    assert.equal(sha(tar), img.diffIds[i], `layer ${i} diff_id`);
    assert.deepEqual(tarNames(saveTmp(`layer${i}.tar`, tar)), LAYER_NAMES[i]);
  });
  assert.deepEqual(img.config.rootfs, { type: 'layers', diff_ids: img.diffIds });
}

/** Checks a Docker-style manifest.json (docker25, legacy, skopeo, kaniko) against what was built. */
function checkDockerManifest(archive: string, built: BuiltImage[]): any[] {
  const manifest = tarJson(archive, 'manifest.json');
  assert.ok(Array.isArray(manifest));
  assert.equal(manifest.length, built.length);
  manifest.forEach((m: any, i: number) => {
    const configBytes = tarCat(archive, m.Config);
    assert.equal(sha(configBytes), built[i].configDigest);
    assert.deepEqual(JSON.parse(configBytes.toString()), built[i].config);
    assert.deepEqual(m.RepoTags, built[i].tags);
    checkLayerBlobs(built[i], m.Layers.map((l: string) => tarCat(archive, l)));
  });
  return manifest;
}

async function build(layout: Layout, images: ImageSpec[], extra: Partial<BuildOptions> = {}) {
  const out = tmpPath(layout === 'oci-dir' ? 'layout' : `${layout}.tar`);
  return buildArchive(out, { layout, images, ...extra });
}

// ---- layouts ----

describe('layouts', () => {
  it('docker25: oci-layout, index.json, manifest.json, repositories and blobs/sha256', async () => {
    const { path: archive, images: [img] } = await build('docker25', [twoLayerImage()]);
    const names = tarNames(archive);
    for (const n of ['blobs/', 'blobs/sha256/', 'index.json', 'manifest.json', 'oci-layout', 'repositories']) assert.ok(names.includes(n), n);
    assert.ok(names.filter((n) => n !== 'blobs/' && n !== 'blobs/sha256/' && n.startsWith('blobs/')).every((n) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(n)));
    const [m] = checkDockerManifest(archive, [img]);
    assert.equal(m.Config, `blobs/sha256/${hex(img.configDigest)}`);
    assert.deepEqual(m.Layers, img.diffIds.map((d) => `blobs/sha256/${hex(d)}`)); // uncompressed blobs
    assert.equal(tarCat(archive, 'oci-layout').toString(), '{"imageLayoutVersion": "1.0.0"}');

    const index = tarJson(archive, 'index.json');
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(index.manifests[0].annotations, {
      'io.containerd.image.name': 'docker.io/library/myapp:1.0', 'org.opencontainers.image.ref.name': '1.0',
    });
    assert.equal(index.manifests[0].digest, img.manifestDigest);
    const manifestBlob = tarCat(archive, `blobs/sha256/${hex(img.manifestDigest)}`);
    assert.equal(sha(manifestBlob), img.manifestDigest);
    assert.deepEqual(JSON.parse(manifestBlob.toString()).layers.map((l: any) => l.mediaType), [
      'application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar',
    ]);
    const repos = tarJson(archive, 'repositories');
    assert.deepEqual(Object.keys(repos), ['myapp']);
    assert.match(repos.myapp['1.0'], /^[0-9a-f]{64}$/);
  });

  it('docker-legacy: <id>/{VERSION,json,layer.tar}, <hex>.json config, manifest.json, repositories', async () => {
    const { path: archive, images: [img] } = await build('docker-legacy', [twoLayerImage()]);
    const [m] = checkDockerManifest(archive, [img]);
    assert.equal(m.Config, `${hex(img.configDigest)}.json`);
    const ids = m.Layers.map((l: string) => l.replace(/\/layer\.tar$/, ''));
    for (const id of ids) {
      assert.match(id, /^[0-9a-f]{64}$/);
      assert.ok(!img.diffIds.includes(`sha256:${id}`), 'v1 ids must differ from diff_ids');
      assert.equal(tarCat(archive, `${id}/VERSION`).toString(), '1.0');
    }
    assert.deepEqual(tarNames(archive), [
      `${ids[0]}/`, `${ids[0]}/VERSION`, `${ids[0]}/json`, `${ids[0]}/layer.tar`,
      `${ids[1]}/`, `${ids[1]}/VERSION`, `${ids[1]}/json`, `${ids[1]}/layer.tar`,
      m.Config, 'manifest.json', 'repositories',
    ]);
    const top = tarJson(archive, `${ids[1]}/json`);
    assert.equal(top.id, ids[1]);
    assert.equal(top.parent, ids[0]);
    assert.equal(tarJson(archive, `${ids[0]}/json`).parent, undefined);
    assert.deepEqual(tarJson(archive, 'repositories'), { myapp: { '1.0': ids[1] } });
  });

  it('skopeo: <hex>.json config and <diff_id hex>.tar layers, no repositories', async () => {
    const { path: archive, images: [img] } = await build('skopeo', [twoLayerImage()]);
    const [m] = checkDockerManifest(archive, [img]);
    assert.equal(m.Config, `${hex(img.configDigest)}.json`);
    assert.deepEqual(m.Layers, img.diffIds.map((d) => `${hex(d)}.tar`));
    assert.deepEqual(tarNames(archive).sort(), [m.Config, ...m.Layers, 'manifest.json'].sort());
  });

  it('kaniko: Config "sha256:<hex>" and gzip layers <hex>.tar.gz', async () => {
    const { path: archive, images: [img] } = await build('kaniko', [twoLayerImage()]);
    const [m] = checkDockerManifest(archive, [img]);
    assert.equal(m.Config, img.configDigest);
    assert.deepEqual(m.Layers, img.layerDigests.map((d) => `${hex(d)}.tar.gz`));
    for (const l of m.Layers) assert.equal(tarCat(archive, l).readUInt16BE(0), 0x1f8b);
    assert.notDeepEqual(img.layerDigests, img.diffIds);
  });

  it('docker-pre110: no manifest.json, v1 json parent chain with config, repositories', async () => {
    const { path: archive, images: [img] } = await build('docker-pre110', [twoLayerImage()]);
    const names = tarNames(archive);
    assert.ok(!names.includes('manifest.json'));
    const repos = tarJson(archive, 'repositories');
    const topId: string = repos.myapp['1.0'];
    // Walk the parent chain from the top, as an engine would.
    const chain: any[] = [];
    for (let id: string | undefined = topId; id; id = chain[chain.length - 1].parent) chain.push(tarJson(archive, `${id}/json`));
    chain.reverse();
    assert.equal(chain.length, 2);
    for (const j of chain) {
      assert.ok(j.container_config && j.config, 'v1 json has container_config and config');
      assert.equal(tarCat(archive, `${j.id}/VERSION`).toString(), '1.0');
      assert.ok(!img.diffIds.includes(`sha256:${j.id}`));
    }
    assert.deepEqual(chain[1].config.Cmd, ['/app/run.sh']);
    assert.deepEqual(chain[1].container_config.Cmd, ['/bin/sh', '-c', 'COPY app /app']);
    assert.equal(img.configDigest, '');
    checkLayerBlobs({ ...img, config: { rootfs: { type: 'layers', diff_ids: img.diffIds } } },
      chain.map((j) => tarCat(archive, `${j.id}/layer.tar`)));
  });

  it('oci-archive: gzip and zstd layers decompress with gzip -dc / zstd -dc to the diff_ids', async () => {
    const { path: archive, images: [img] } = await build('oci-archive', [twoLayerImage({}, ['gzip', 'zstd'])]);
    const names = tarNames(archive);
    assert.ok(!names.includes('manifest.json'));
    assert.deepEqual(names.filter((n) => !n.startsWith('blobs/')), ['index.json', 'oci-layout']);
    assert.deepEqual(tarJson(archive, 'oci-layout'), { imageLayoutVersion: '1.0.0' });
    const index = tarJson(archive, 'index.json');
    assert.equal(index.manifests.length, 1);
    const desc = index.manifests[0];
    assert.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(desc.annotations['org.opencontainers.image.ref.name'], '1.0');
    const manifestBlob = tarCat(archive, `blobs/sha256/${hex(desc.digest)}`);
    assert.equal(manifestBlob.length, desc.size);
    const manifest = JSON.parse(manifestBlob.toString());
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(manifest.config.digest, img.configDigest);
    assert.deepEqual(manifest.layers.map((l: any) => l.mediaType), [
      'application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd',
    ]);
    assert.deepEqual(tarJson(archive, `blobs/sha256/${hex(img.configDigest)}`), img.config);
    checkLayerBlobs(img, manifest.layers.map((l: any) => tarCat(archive, `blobs/sha256/${hex(l.digest)}`)));
  });

  it('oci-dir: the same layout as real files on disk', async () => {
    const { path: dir, images: [img] } = await build('oci-dir', [twoLayerImage({}, ['gzip'])]);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['blobs', 'index.json', 'oci-layout']);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
    const blob = (d: string): Buffer => fs.readFileSync(path.join(dir, 'blobs', 'sha256', hex(d)));
    const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
    assert.equal(sha(blob(img.manifestDigest)), img.manifestDigest);
    checkLayerBlobs(img, manifest.layers.map((l: any) => blob(l.digest)));
  });
});

// ---- options ----

describe('build options', () => {
  it('multiPlatform: index.json holds one image index descriptor; the nested index lists platforms', async () => {
    const amd = twoLayerImage({ tags: ['multi:2'] });
    const arm = twoLayerImage({ tags: ['multi:2'], architecture: 'arm64', variant: 'v8' });
    const built = await build('oci-archive', [amd, arm], { multiPlatform: true });
    const index = tarJson(built.path, 'index.json');
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0].mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.manifests[0].digest, built.indexDigest);
    assert.equal(index.manifests[0].annotations['io.containerd.image.name'], 'docker.io/library/multi:2');
    const nested = tarJson(built.path, `blobs/sha256/${hex(index.manifests[0].digest)}`);
    assert.deepEqual(nested.manifests.map((m: any) => m.platform), [
      { architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
    assert.deepEqual(nested.manifests.map((m: any) => m.digest), built.images.map((i) => i.manifestDigest));
    assert.equal(built.images[1].config.variant, 'v8');
  });

  it('two images sharing their base layer: one <id>/ folder, two manifest entries, two repositories', async () => {
    const a = twoLayerImage({ tags: ['a:1'] });
    const b: ImageSpec = { tags: ['b:2', 'b:latest'], layers: [a.layers[0], { entries: [{ path: 'b', content: 'b' }] }] };
    const { path: archive, images } = await build('docker-legacy', [a, b]);
    const manifest = tarJson(archive, 'manifest.json');
    assert.equal(manifest[0].Layers[0], manifest[1].Layers[0]);
    assert.equal(tarNames(archive).filter((n) => n === manifest[0].Layers[0]).length, 1);
    assert.deepEqual(Object.keys(tarJson(archive, 'repositories')).sort(), ['a', 'b']);
    assert.deepEqual(Object.keys(tarJson(archive, 'repositories').b).sort(), ['2', 'latest']);
    assert.equal(images[0].diffIds[0], images[1].diffIds[0]);
  });

  for (const style of ['symlink', 'hardlink'] as const) {
    it(`dedupeLayerFiles ${style}: a repeated layer is written as a tar ${style} to the first file`, async () => {
      // The same (empty) layer at two chain positions gets two v1 ids but one stored file.
      const spec: ImageSpec = { tags: ['dup:1'], layers: [{ entries: emptyLayerTar() }, { entries: LAYER0 }, { entries: emptyLayerTar() }] };
      const { path: archive, images: [img] } = await build('docker-legacy', [spec], { dedupeLayerFiles: style });
      const layers: string[] = tarJson(archive, 'manifest.json')[0].Layers;
      assert.notEqual(layers[0], layers[2]);
      const line = tarLong(archive).find((l) => l.includes(` ${layers[2]}`)) ?? '';
      if (style === 'symlink') assert.match(line, new RegExp(`^l.* ${layers[2]} -> \\.\\./${layers[0]}$`));
      else assert.match(line, new RegExp(`^h.* ${layers[2]} link to ${layers[0]}$`));
      const out = tmpPath('extract');
      fs.mkdirSync(out);
      run('tar', ['-xf', archive, '-C', out]);
      assert.equal(sha(fs.readFileSync(path.join(out, layers[2]))), img.diffIds[2]);
      assert.equal(img.diffIds[0], 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
    });
  }

  for (const c of ['gzip', 'zstd'] as const) {
    it(`outerCompression ${c}: the whole archive is compressed`, async () => {
      const { path: archive, images: [img] } = await build('docker-legacy', [twoLayerImage()], { outerCompression: c });
      const bytes = fs.readFileSync(archive);
      assert.notEqual(bytes.subarray(257, 262).toString(), 'ustar');
      assert.ok(tarNames(archive, [c === 'gzip' ? '-z' : '--zstd']).includes('manifest.json'));
      checkDockerManifest(saveTmp('plain.tar', decompressCli(bytes)), [img]);
    });
  }

  it('history: empty_layer entries inserted by position; override and null', async () => {
    const spec = twoLayerImage({ emptyHistory: [{ index: 0, createdBy: 'ARG X' }, { index: 2, createdBy: 'CMD ["/app/run.sh"]' }] });
    const { images: [img] } = await build('oci-archive', [spec]);
    assert.deepEqual(img.config.history.map((h: any) => [h.created_by, h.empty_layer ?? false]), [
      ['ARG X', true], ['ADD rootfs.tar /', false], ['COPY app /app', false], ['CMD ["/app/run.sh"]', true],
    ]);
    assert.equal(img.config.history[2].comment, 'buildkit.dockerfile.v0');
    assert.deepEqual(img.config.config, {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/app/run.sh'], WorkingDir: '/app',
    });
    const custom = await build('skopeo', [twoLayerImage({ history: [{ created_by: 'only one' }] })]);
    assert.deepEqual(custom.images[0].config.history, [{ created_by: 'only one' }]);
    const none = await build('skopeo', [twoLayerImage({ history: null })]);
    assert.ok(!('history' in none.images[0].config));
  });

  it('is reproducible: two builds are byte-identical', async () => {
    const a = await build('docker25', [twoLayerImage({}, ['gzip', 'zstd'])]);
    const b = await build('docker25', [twoLayerImage({}, ['gzip', 'zstd'])]);
    assert.ok(fs.readFileSync(a.path).equals(fs.readFileSync(b.path)));
  });
});

// ---- layer tar entries ----

describe('layerTar', () => {
  it('emptyLayerTar is 1024 zero bytes with the well-known diff_id', () => {
    assert.equal(sha(emptyLayerTar()), 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
  });

  it('writes every entry type with modes, owners and device numbers GNU tar agrees with', async () => {
    const tar = saveTmp('types.tar', await layerTar([
      { path: './d/' },
      { path: 'd2', type: 'dir', mode: 0o700 },                 // no trailing slash: written verbatim
      { path: './d/f', content: 'hello', uid: 1000, gid: 2000, uname: 'u', gname: 'g' },
      { path: './d/s', type: 'symlink', target: '../etc/passwd' },
      { path: './d/h', type: 'link', target: './d/f' },
      { path: 'dev/tty', type: 'char', devmajor: 5, devminor: 0, mode: 0o666 },
      { path: 'dev/sda', type: 'block', devmajor: 8, devminor: 1, mode: 0o660 },
      { path: 'fifo', type: 'fifo' },
      { path: 'locked', content: 'x', mode: 0 },
      { path: 'suid', content: 'x', mode: 0o4755 },
      { path: 'bigid', content: 'x', uid: 3_000_000, gid: 4_000_000 },
      { path: '.wh..wh..opq' },
    ]));
    const lines = tarLong(tar);
    const expect = [
      /^drwxr-xr-x 0\/0 .* \.\/d\/$/,
      /^drwx------ 0\/0 .* d2$/,
      /^-rw-r--r-- 1000\/2000 +5 .* \.\/d\/f$/,
      /^lrwxrwxrwx 0\/0 .* \.\/d\/s -> \.\.\/etc\/passwd$/,
      /^hrw-r--r-- 0\/0 .* \.\/d\/h link to \.\/d\/f$/,
      /^crw-rw-rw- 0\/0 +5,0 .* dev\/tty$/,
      /^brw-rw---- 0\/0 +8,1 .* dev\/sda$/,
      /^prw-r--r-- 0\/0 .* fifo$/,
      /^---------- 0\/0 .* locked$/,
      /^-rwsr-xr-x 0\/0 .* suid$/,
      /^-rw-r--r-- 3000000\/4000000 .* bigid$/,
      /^-rw-r--r-- 0\/0 +0 2024-01-02 03:04 \.wh\.\.wh\.\.opq$/,
    ];
    assert.equal(lines.length, expect.length, lines.join('\n'));
    lines.forEach((l, i) => assert.match(l, expect[i]));
    assert.equal(tarCat(tar, './d/f').toString(), 'hello');
    assert.match(run('tar', ['-tvf', tar]).toString(), / u\/g /);
  });

  it('writes hostile names verbatim', async () => {
    const buf = await layerTar([{ path: '/abs', content: 'a' }, { path: '../up', content: 'b' }, { path: 'a/../../x', type: 'symlink', target: '/etc' }]);
    assert.equal(buf.subarray(0, 4).toString(), '/abs');
    assert.deepEqual(tarNames(saveTmp('hostile.tar', buf), ['-P']), ['/abs', '../up', 'a/../../x']);
  });

  for (const style of ['pax', 'gnu'] as const) {
    it(`long names and link names in ${style} style`, async () => {
      const long = `${'dir-'.repeat(30)}/${'n'.repeat(120)}`;
      const target = `/${'t'.repeat(150)}`;
      const buf = await layerTar([
        { path: long, content: 'long body', longNameStyle: style },
        { path: 'sym', type: 'symlink', target, longNameStyle: style },
        { path: 'hard', type: 'link', target: long, longNameStyle: style },
      ]);
      const tar = saveTmp(`long-${style}.tar`, buf);
      assert.deepEqual(tarNames(tar), [long, 'sym', 'hard']);
      assert.match(tarLong(tar)[1], new RegExp(` sym -> ${target}$`));
      assert.match(tarLong(tar)[2], new RegExp(` hard link to ${long}$`));
      assert.equal(tarCat(tar, long).toString(), 'long body');
      const typeflags = new Set<string>();
      for (let off = 0; off + 512 <= buf.length; off += 512) {
        const block = buf.subarray(off, off + 512);
        if (block.subarray(257, 262).toString() === 'ustar') typeflags.add(String.fromCharCode(block[156]));
      }
      if (style === 'gnu') {
        assert.ok(typeflags.has('L') && typeflags.has('K') && !typeflags.has('x'));
      } else {
        assert.ok(typeflags.has('x') && !typeflags.has('L') && !typeflags.has('K'));
      }
    });
  }

  it('xattrs are pax SCHILY.xattr records with binary values intact', async () => {
    const value = Buffer.from([0x00, 0x01, 0xff, 0x0a, 0x3d]);
    const buf = await layerTar([{ path: 'cap', content: 'x', xattrs: { 'user.bin': value, 'user.text': 'héllo' } }]);
    assert.ok(buf.includes(Buffer.concat([Buffer.from('SCHILY.xattr.user.bin='), value, Buffer.from('\n')])));
    const tar = saveTmp('xattr.tar', buf);
    assert.match(tarLong(tar, ['--xattrs'])[0], /^-rw-r--r--\* /); // '*' marks extended attributes
    const out = tmpPath('xattr-out');
    fs.mkdirSync(out);
    run('tar', ['--xattrs', '--xattrs-include=*', '-xf', tar, '-C', out]);
    const dump = run('getfattr', ['-d', '-e', 'hex', path.join(out, 'cap')]).toString();
    assert.match(dump, /user\.bin=0x0001ff0a3d/);
    assert.match(dump, new RegExp(`user\\.text=0x${Buffer.from('héllo').toString('hex')}`));
  });
});

// ---- raw tar helpers ----

describe('raw-tar', () => {
  const chunks: raw.SparseChunk[] = [
    { offset: 0, data: Buffer.from('head') },
    { offset: 5000, data: Buffer.alloc(700, 0x41) },
    { offset: 9000, data: Buffer.from('tail') },
  ];
  const manyChunks: raw.SparseChunk[] = Array.from({ length: 30 }, (_, i) => ({ offset: i * 1024, data: Buffer.from(`chunk${i}`) }));

  it('base-256 size, uid, gid and mtime', () => {
    const tar = saveTmp('b256.tar', raw.concatTar([
      raw.entry({ name: 'forced', base256: ['size', 'uid', 'gid', 'mtime'], uid: 7, gid: 8, mtime: 1_700_000_000 }, Buffer.from('data')),
      raw.entry({ name: 'huge-ids', uid: 3_000_000_000, gid: 70_000_000 }, Buffer.from('x')),
    ]));
    const block = fs.readFileSync(tar).subarray(0, 512);
    assert.equal(block[124], 0x80);
    assert.match(tarLong(tar)[0], /^-rw-r--r-- 7\/8 +4 2023-11-14 \d\d:\d\d forced$/);
    assert.match(tarLong(tar)[1], /^-rw-r--r-- 3000000000\/70000000 /);
    assert.equal(tarCat(tar, 'forced').toString(), 'data');
  });

  it('GNU L/K entries and pax x/g records (binary value) are accepted', () => {
    const name = 'L'.repeat(250);
    const link = 'K'.repeat(180);
    const tar = saveTmp('lk.tar', raw.concatTar([
      raw.paxHeader([['comment', 'global'], ['SCHILY.xattr.user.g', Buffer.from([0xff, 0x00])]], { global: true }),
      raw.gnuLong('L', name), raw.gnuLong('K', link),
      raw.entry({ name: name.slice(0, 100), typeflag: '2', linkname: link.slice(0, 100), mode: 0o777, format: 'gnu' }),
      raw.paxHeader([['path', 'pax/long/' + 'p'.repeat(120)], ['mtime', '1700000000.5'], ['uid', '123456789']]),
      raw.entry({ name: 'placeholder' }, Buffer.from('pax body')),
    ]));
    assert.deepEqual(tarNames(tar), [name, `pax/long/${'p'.repeat(120)}`]);
    assert.match(tarLong(tar)[0], new RegExp(`^l.* ${name} -> ${link}$`));
    assert.match(tarLong(tar)[1], / 123456789\/0 /);
    assert.equal(tarCat(tar, `pax/long/${'p'.repeat(120)}`).toString(), 'pax body');
    // The length counts its own digits: a 98-byte body crosses from 2 to 3 digits (101, not 100).
    const recs = raw.paxRecords([['k', Buffer.from([0, 1, 2])], ['long', 'v'.repeat(91)]]);
    assert.ok(recs.equals(Buffer.concat([Buffer.from('8 k='), Buffer.from([0, 1, 2]), Buffer.from('\n'), Buffer.from(`101 long=${'v'.repeat(91)}\n`)])));
  });

  it('old GNU sparse (with extension blocks) and PAX sparse 1.0 extract to the right bytes', () => {
    const tar = saveTmp('sparse.tar', raw.concatTar([
      raw.oldGnuSparse('old', 20000, chunks),
      raw.oldGnuSparse('old-many', 40000, manyChunks),
      raw.paxSparse10('dir/pax', 20000, chunks),
      raw.paxSparse10('pax-many', 40000, manyChunks),
    ]));
    assert.deepEqual(tarNames(tar), ['old', 'old-many', 'dir/pax', 'pax-many']);
    assert.match(tarLong(tar)[0], / 20000 /);
    const want = raw.sparseContent(20000, chunks);
    const wantMany = raw.sparseContent(40000, manyChunks);
    assert.ok(tarCat(tar, 'old').equals(want));
    assert.ok(tarCat(tar, 'dir/pax').equals(want));
    assert.ok(tarCat(tar, 'old-many').equals(wantMany));
    assert.ok(tarCat(tar, 'pax-many').equals(wantMany));
    assert.equal(fs.readFileSync(tar)[156], 'S'.charCodeAt(0));
  });

  it('headers carry a valid checksum and end-of-archive is two zero blocks', () => {
    const h = raw.header({ name: 'x', size: 3 });
    assert.equal(parseInt(h.subarray(148, 154).toString(), 8), raw.checksum(h));
    assert.ok(raw.endOfArchive().equals(Buffer.alloc(1024)));
    assert.throws(() => raw.concatTar([Buffer.alloc(100)]));
  });
});
