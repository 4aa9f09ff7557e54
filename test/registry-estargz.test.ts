import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import { buildArchive, layerTar, type EntrySpec } from './helpers/archive-builder';
import { toEstargz, toSeekableZstd, writeEstargzLayout, writeLayout, type Estargz } from './helpers/estargz';
import { ocimount, run, withMount } from './helpers/mount-harness';
import { lines, scratchDirs } from './helpers/cli-checks';
import { pushLayout, skopeoCopy, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './helpers/registry';

/*
 * eStargz images (written by test/helpers/estargz.ts as stargz-snapshotter writes them) pushed
 * as they are to a real registry and mounted with FUSE: the tree equals the same image from a
 * docker save-style archive and from its OCI layout on disk (the gzip path); a mount and a cat of
 * one small file fetch a small fraction of the blobs (counted by the proxy in front of the
 * registry, from its Range headers); a chunk whose bytes do not match the TOC's chunkDigest is
 * EIO on that file with the mount still up; a layer whose footer is broken is read whole; a
 * remount works offline for what was read. The same image as zstd:chunked (written by skopeo)
 * and as seekable multi-frame zstd (frames + seek table) is mounted from its manifest or seek
 * table with the same tree and a small fraction of its blobs fetched.
 */

const scratch = scratchDirs();

const bigs = [randomBytes(6 << 20), randomBytes(6 << 20), randomBytes(6 << 20)];
const lower: EntrySpec[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/hostname', content: 'estargz\n' },
  { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
  { path: 'etc/old', content: 'to be deleted\n' },
  { path: 'opaque/', type: 'dir' },
  { path: 'opaque/hidden', content: 'hidden by the upper layer\n' },
  { path: 'bin/', type: 'dir' },
  { path: 'bin/tool', content: 'cap', mode: 0o755, xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) } },
  { path: 'bin/sh', type: 'symlink', target: 'tool' },
  { path: 'bin/tool-again', type: 'link', target: 'bin/tool' },
  { path: 'data/', type: 'dir' },
  ...bigs.map((b, i) => ({ path: `data/big${i}`, content: b })),
  ...Array.from({ length: 200 }, (_, i) => ({ path: `data/small/f${i}`, content: `file ${i}\n`.repeat(i + 1), uid: i, gid: 1000 + i, mtime: new Date(Date.UTC(2020, 0, 1, 0, 0, i)) })),
];
const upper: EntrySpec[] = [
  { path: 'etc/.wh.old', content: '' },
  { path: 'opaque/.wh..wh..opq', content: '' },
  { path: 'opaque/new', content: 'new\n' },
  { path: 'etc/motd', content: 'hi\n', mode: 0o600, uid: 7, gid: 8, xattrs: { 'user.note': 'hello' } },
];

let reg: Registry;
let proxy: FaultProxy;
let work: string;
let layers: Estargz[];

/** Sum of the Range lengths the proxy saw for `digests`' blobs (a blob fetched without a range counts whole). */
function fetched(digests: string[], sizes: number[]): number {
  let n = 0;
  for (const l of proxy.log) {
    const k = digests.findIndex((d) => l.includes(`/blobs/${d}`));
    if (k < 0) continue;
    const m = / bytes=(\d+)-(\d+) /.exec(l);
    n += m ? Number(m[2]) - Number(m[1]) + 1 : sizes[k];
  }
  return n;
}

/** A copy of `e` whose member holding the first chunk of `name` carries other bytes, with a valid gzip CRC (stored members: level 0). */
function corruptChunk(e: Estargz, name: string): Buffer {
  const ent = e.toc.entries.find((x) => x.name === name)! as { offset: number };
  const blob = Buffer.from(e.blob);
  // A stored member: 10-byte gzip header, 5-byte stored block header, then the data itself.
  blob[ent.offset + 15] ^= 0xff;
  const next = Math.min(...e.toc.entries.map((x) => x.offset as number).filter((o) => o > ent.offset), e.tocOffset);
  const member = blob.subarray(ent.offset, next);
  const crc = crc32(zlib.inflateRawSync(member.subarray(10, member.length - 8)));
  member.writeUInt32LE(crc, member.length - 8);
  return blob;
}

function crc32(b: Buffer): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function layerOf(blob: Buffer, e: Estargz): Estargz {
  const whole = zlib.gunzipSync(blob);
  return { ...e, blob, diffId: `sha256:${createHash('sha256').update(whole).digest('hex')}` };
}

before(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host);
  work = scratch('registry-estargz');
  layers = [toEstargz(await layerTar(lower), { chunkSize: 1 << 20 }), toEstargz(await layerTar(upper))];
  writeEstargzLayout(path.join(work, 'oci'), layers);
  await pushLayout(path.join(work, 'oci'), reg.host, 'estargz/app', '1');
  // The same image as docker save writes it: the uncompressed tars (what any gzip reader sees).
  await buildArchive(path.join(work, 'saved.tar'), {
    layout: 'docker25',
    images: [{ tags: ['app:1'], layers: layers.map((l) => ({ entries: zlib.gunzipSync(l.blob), compression: 'none' as const, createdBy: 'estargz test layer' })) }],
  });
  // The same image from its entries, for the zstd:chunked and seekable zstd forms (their tars are rewritten or split).
    await buildArchive(path.join(work, 'plain-saved.tar'), { layout: 'docker25', images: [{ tags: ['app:1'], layers: [{ entries: lower, compression: 'none' }, { entries: upper, compression: 'none' }] }] });
  // Level 0 members, so one byte can change in place; the chunk of etc/passwd then does not match its digest.
  const stored = toEstargz(await layerTar(lower), { chunkSize: 1 << 20, level: 0 });
  writeEstargzLayout(path.join(work, 'corrupt'), [layerOf(corruptChunk(stored, 'etc/passwd'), stored)]);
  await pushLayout(path.join(work, 'corrupt'), reg.host, 'estargz/corrupt', '1');
  // A toc.digest annotation naming another TOC.
  writeEstargzLayout(path.join(work, 'badtoc'), [{ ...layers[1], tocDigest: `sha256:${'1'.repeat(64)}` }]);
  await pushLayout(path.join(work, 'badtoc'), reg.host, 'estargz/badtoc', '1');
  // The footer's magic broken ("STARGZ" -> "STARGX"): still a valid gzip stream.
  const broken = Buffer.from(layers[0].blob);
  broken[broken.length - 14] ^= 0x02;
  writeEstargzLayout(path.join(work, 'nofooter'), [layerOf(broken, layers[0])]);
  await pushLayout(path.join(work, 'nofooter'), reg.host, 'estargz/nofooter', '1');
});
after(async () => {
  await proxy?.close();
  await reg?.stop();
});

/** Every path with type, mode, owner, size, mtime, link target, xattrs and content hash. */
async function describeTree(dir: string): Promise<string> {
  const r = await run(
    'sh',
    ['-c', 'cd "$1" && find . -printf "%p %y %m %U:%G %s %T@ %n %l\\n" | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum && getfattr -R -h -d -m - --absolute-names . 2>/dev/null | awk \'/^# file:/ { f = $3; next } NF { print f " " $0 }\' | sort', 'sh', dir],
    { timeoutMs: 120_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}
// manifest.json, index.json and the like differ between a registry, a layout and docker save.
const rootfs = (t: string) => lines(t).filter((l) => l.includes('./rootfs') || /^[0-9a-f]{64} {2}\.\/rootfs/.test(l)).join('\n');

describe('an eStargz image from a registry', { timeout: 600_000 }, () => {
  it('mounts from its TOC, with the same tree as its docker save archive and its OCI layout', async () => {
    const fromRegistry = await withMount(`docker://${reg.host}/estargz/app:1`, ['--cache-dir', scratch('c1')], (m) => describeTree(m.mnt));
    const fromArchive = await withMount(path.join(work, 'saved.tar'), ['--no-cache'], (m) => describeTree(m.mnt));
    const fromLayout = await withMount(path.join(work, 'oci'), ['--no-cache'], (m) => describeTree(m.mnt));
    assert.equal(rootfs(fromRegistry), rootfs(fromArchive));
    assert.equal(rootfs(fromRegistry), rootfs(fromLayout));
    // What the comparison must have covered.
    const t = rootfs(fromRegistry);
    assert.match(t, /\.\/rootfs\/etc\/motd f 600 7:8 3 /);
    assert.doesNotMatch(t, /etc\/old|opaque\/hidden/);
    assert.match(t, /\.\/rootfs\/bin\/tool f 755 0:0 3 \S+ 2 /);
    assert.match(t, /\.\/rootfs\/bin\/sh l .* tool$/m);
    assert.match(t, /security\.capability=0s/);
    assert.match(t, /\.\/rootfs\/stargz\.index\.json f /);
    assert.match(t, /\.\/rootfs\/\.no\.prefetch\.landmark f /);
  });

  it('a mount and a cat of one small file fetch a small fraction of the blobs', async (t) => {
    proxy.log.length = 0;
    const digests = layers.map((l) => `sha256:${createHash('sha256').update(l.blob).digest('hex')}`);
    const sizes = layers.map((l) => l.blob.length);
    const total = sizes.reduce((a, b) => a + b, 0);
    await withMount(`docker://${proxy.host}/estargz/app:1`, ['--cache-dir', scratch('c2')], async (m) => {
      assert.equal(fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'small', 'f3'), 'utf8'), 'file 3\n'.repeat(4));
      assert.doesNotMatch(m.stderr(), /TOC not usable|reading it whole/);
    });
    const n = fetched(digests, sizes);
    t.diagnostic(`fetched ${n} of ${total} blob bytes`);
    assert.ok(n > 0, proxy.log.join('\n'));
    assert.ok(n < total * 0.05, `fetched ${n} of ${total} blob bytes`);
    assert.ok(proxy.log.every((l) => !/bytes=\d+- /.test(l)), 'never an open-ended range');
  });

  it('a chunk that does not match its digest is EIO on that file; the mount stays up', async () => {
    await withMount(`docker://${reg.host}/estargz/corrupt:1`, ['--cache-dir', scratch('c3')], async (m) => {
      const r = await run('cat', [path.join(m.mnt, 'rootfs', 'etc', 'passwd')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal(fs.readFileSync(path.join(m.mnt, 'rootfs', 'etc', 'hostname'), 'utf8'), 'estargz\n');
      assert.ok(fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'big1')).equals(bigs[1]));
      assert.match(m.stderr(), /chunk of etc\/passwd at \d+ does not match its digest/);
    });
  });

  it('a remount works offline for what was read: footer, TOC and chunks come from the block cache', async () => {
    const cache = scratch('c5');
    const small = (m: { mnt: string }) => fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'small', 'f9'), 'utf8');
    await withMount(`docker://${reg.host}/estargz/app:1`, ['--cache-dir', cache], async (m) => assert.equal(small(m), 'file 9\n'.repeat(10)));
    await reg.kill();
    try {
      await withMount(`docker://${reg.host}/estargz/app:1`, ['--cache-dir', cache, '--registry-timeout', '2'], async (m) => {
        assert.equal(small(m), 'file 9\n'.repeat(10));
        const r = await run('cat', [path.join(m.mnt, 'rootfs', 'data', 'big1')]);
        assert.match(r.stderr, /Input\/output error/, 'what was never read needs the registry');
      });
    } finally {
      await reg.restart();
    }
  });

  it('inspect gives the layers the uncompressed sizes the manifest says, as a full read does', async () => {
    const sizes = async (extra: string[]) => {
      const r = await ocimount(['inspect', '--no-cache', '--json', ...extra, `docker://${reg.host}/estargz/app:1`]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { image: { layers: Array<{ size: number }> } }).image.layers.map((l) => l.size);
    };
    assert.deepEqual(await sizes([]), layers.map((l) => l.uncompressedSize));
    assert.deepEqual(await sizes(['--verify']), layers.map((l) => l.uncompressedSize));
  });

  it('a TOC that is not the one the manifest names: a one-line error', async () => {
    const r = await ocimount(['cat', '--no-cache', `docker://${reg.host}/estargz/badtoc:1`, '/etc/motd']);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^ocimount: .*layer 0 \(sha256:[0-9a-f]{64}\): eStargz TOC digest is sha256:[0-9a-f]{64}, the manifest says sha256:1{64}$/m);
  });

  it('a broken footer: the layer is read whole (the gzip path), with a note', async () => {
    await withMount(`docker://${reg.host}/estargz/nofooter:1`, ['--cache-dir', scratch('c4')], async (m) => {
      assert.equal(fs.readFileSync(path.join(m.mnt, 'rootfs', 'etc', 'hostname'), 'utf8'), 'estargz\n');
      assert.ok(fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'big2')).equals(bigs[2]));
      assert.match(m.stderr(), /annotated as eStargz but has no eStargz footer; reading it whole/);
    });
  });
});

describe('a zstd:chunked image from a registry (written by skopeo)', { timeout: 600_000 }, () => {
  before(async () => {
    await buildArchive(path.join(work, 'plain'), { layout: 'oci-dir', images: [{ tags: ['app:1'], layers: [{ entries: lower }, { entries: upper }] }] });
    await skopeoCopy(`oci:${path.join(work, 'plain')}:1`, `docker://${reg.host}/zchunked/app:1`, ['--dest-tls-verify=false', '--dest-compress-format', 'zstd:chunked']);
  });

  it('mounts from its manifest, with the same tree as docker save; a cat of a small file fetches a small fraction', async (t) => {
    const r = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/zchunked/app:1`]);
    const manifest = JSON.parse(r.stdout) as { layers: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
    assert.ok(manifest.layers.every((l) => Object.keys(l.annotations ?? {}).some((k) => k.endsWith('zstd-chunked.manifest-position'))), r.stdout);
    const fromRegistry = await withMount(`docker://${reg.host}/zchunked/app:1`, ['--cache-dir', scratch('z1')], (m) => describeTree(m.mnt));
    const fromArchive = await withMount(path.join(work, 'plain-saved.tar'), ['--no-cache'], (m) => describeTree(m.mnt));
    assert.equal(rootfs(fromRegistry), rootfs(fromArchive));
    assert.match(rootfs(fromRegistry), /\.\/rootfs\/etc\/motd f 600 7:8 3 /);

    proxy.log.length = 0;
    await withMount(`docker://${proxy.host}/zchunked/app:1`, ['--cache-dir', scratch('z2')], async (m) => {
      assert.equal(fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'small', 'f3'), 'utf8'), 'file 3\n'.repeat(4));
      assert.doesNotMatch(m.stderr(), /not usable|reading it whole/);
    });
    const total = manifest.layers.reduce((a, l) => a + l.size, 0);
    const n = fetched(manifest.layers.map((l) => l.digest), manifest.layers.map((l) => l.size));
    t.diagnostic(`fetched ${n} of ${total} blob bytes`);
    assert.ok(n > 0 && n < total * 0.05, `fetched ${n} of ${total} blob bytes`);
  });
});

describe('a seekable multi-frame zstd image from a registry', { timeout: 600_000 }, () => {
  let blobs: Buffer[];
  before(async () => {
    const tars = [await layerTar(lower), await layerTar(upper)];
    blobs = tars.map((t) => toSeekableZstd(t));
    writeLayout(
      path.join(work, 'seekable'),
      tars.map((t, i) => ({ blob: blobs[i], diffId: `sha256:${createHash('sha256').update(t).digest('hex')}`, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' })),
    );
    await pushLayout(path.join(work, 'seekable'), reg.host, 'seekable/app', '1');
  });

  it('is indexed by reading the frames holding tar headers: same tree as docker save, little fetched', async (t) => {
    const fromRegistry = await withMount(`docker://${reg.host}/seekable/app:1`, ['--cache-dir', scratch('s1')], (m) => describeTree(m.mnt));
    const fromArchive = await withMount(path.join(work, 'plain-saved.tar'), ['--no-cache'], (m) => describeTree(m.mnt));
    assert.equal(rootfs(fromRegistry), rootfs(fromArchive));

    proxy.log.length = 0;
    await withMount(`docker://${proxy.host}/seekable/app:1`, ['--cache-dir', scratch('s2')], async (m) => {
      assert.equal(fs.readFileSync(path.join(m.mnt, 'rootfs', 'data', 'small', 'f3'), 'utf8'), 'file 3\n'.repeat(4));
    });
    const total = blobs.reduce((a, b) => a + b.length, 0);
    const n = fetched(blobs.map((b) => `sha256:${createHash('sha256').update(b).digest('hex')}`), blobs.map((b) => b.length));
    t.diagnostic(`fetched ${n} of ${total} blob bytes`);
    // The headers sit in a few frames (the small files' and one after each big file); the big files' frames stay unread.
    assert.ok(n > 0 && n < total * 0.15, `fetched ${n} of ${total} blob bytes`);
  });
});
