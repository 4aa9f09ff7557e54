import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { run, tempDir, withMount } from './helpers/mount-harness';

/*
 * A mount lets go of the layer indexes' paths once the merged tree is built, when the index
 * cache can give them back (ImageView.releaseLayerPaths), and a layer's own view reads them back
 * on first use. These mounts must show every layer view exactly as a mount that kept its paths
 * (--no-cache): listings, stats, contents, hard links to a lower layer, whiteout markers. A
 * cache entry that changed under the mount fails that view (EIO), never shows other paths; an
 * archive changed under the mount fails reads there as in rootfs/.
 */

const work = tempDir('released');
const archive = path.join(work, 'layers.tar');

before(async () => {
  await buildArchive(archive, {
    layout: 'docker25',
    images: [
      {
        tags: ['released:1'],
        layers: [
          {
            entries: [
              { path: 'a/', type: 'dir' },
              { path: 'a/x', content: 'content of x\n' },
              { path: 'a/y', content: 'y, whited out above\n' },
              { path: 'a/sub/deep', content: 'deep\n', mode: 0o600, uid: 1000, gid: 1000 },
              { path: 'opq/old', content: 'hidden by the opaque marker\n' },
            ],
          },
          {
            entries: [
              { path: 'b/', type: 'dir' },
              { path: 'b/hl', type: 'link', target: 'a/x' },
              { path: 'a/.wh.y', content: '' },
              { path: 'opq/.wh..wh..opq', content: '' },
              { path: 'opq/new', content: 'new in layer 1\n' },
              { path: 'c/link', type: 'symlink', target: '../a/x' },
            ],
          },
          { entries: [{ path: 'b/hl2', type: 'link', target: 'b/hl' }, { path: 'top', content: 'top\n' }] },
        ],
      },
    ],
  });
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** Every path under layers/ with its type, mode, owner, size, links and inode, and every file's bytes. */
async function snapshot(mnt: string): Promise<{ listing: string; contents: Record<string, string> }> {
  const found = await run('find', [path.join(mnt, 'layers') + '/', '-printf', '%P %y %m %U %G %s %n %i %l\n']);
  assert.equal(found.code, 0, found.stderr);
  const listing = found.stdout.split('\n').filter(Boolean).sort().join('\n');
  const contents: Record<string, string> = {};
  for (const line of listing.split('\n')) {
    const [rel, type] = line.split(' ');
    if (type === 'f') contents[rel] = fs.readFileSync(path.join(mnt, 'layers', rel), 'latin1');
  }
  return { listing, contents };
}

describe('layer views of a mount that released its layer paths', () => {
  let reference: { listing: string; contents: Record<string, string> };
  const cache = path.join(work, 'cache');

  it('a mount without a cache keeps its paths: the reference', async () => {
    reference = await withMount(archive, ['--no-cache'], async ({ mnt }) => snapshot(mnt));
    // The cases below are in it: a hard link into a lower layer, whiteout and opaque markers.
    assert.match(reference.listing, /\/b\/hl f 644 0 0 13 1 /);
    assert.match(reference.listing, /\/a\/\.wh\.y f /);
    assert.match(reference.listing, /\/opq\/\.wh\.\.wh\.\.opq f /);
    assert.ok(Object.entries(reference.contents).some(([k, v]) => k.endsWith('/b/hl') && v === 'content of x\n'));
  });

  it('the first mount (indexes, then writes the cache) and a mount from the cache show the same layer views', async () => {
    for (const round of ['first', 'from the cache']) {
      const got = await withMount(archive, ['--cache-dir', cache], async ({ mnt }) => snapshot(mnt));
      assert.equal(got.listing, reference.listing, round);
      assert.deepEqual(got.contents, reference.contents, round);
    }
  });

  it('a cache entry changed under the mount fails that layer view with EIO; rootfs/ is untouched', async () => {
    await withMount(archive, ['--cache-dir', cache], async ({ mnt, stderr }) => {
      // Every layer index entry rewritten with one byte changed: its checksum no longer matches.
      const entries = fs.readdirSync(cache, { recursive: true }).map(String).filter((f) => f.endsWith('.idx'));
      assert.ok(entries.length >= 3, 'the layer indexes are in the cache');
      for (const f of entries) {
        const file = path.join(cache, f);
        const bytes = fs.readFileSync(file);
        bytes[bytes.length - 1] ^= 0xff;
        fs.writeFileSync(file, bytes);
      }
      const layers = fs.readdirSync(path.join(mnt, 'layers')).filter((n) => n.startsWith('sha256:'));
      const ls = await run('ls', [path.join(mnt, 'layers', layers[0])]);
      assert.notEqual(ls.code, 0);
      assert.match(ls.stderr, /Input\/output error/);
      assert.match(stderr(), /checksum mismatch|changed since it was mounted/);
      assert.equal(fs.readFileSync(path.join(mnt, 'rootfs/b/hl'), 'latin1'), 'content of x\n');
      assert.deepEqual(fs.readdirSync(path.join(mnt, 'rootfs/opq')), ['new']);
    });
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('an archive changed under the mount: layer views list as before, reads fail as in rootfs/', async () => {
    const copy = path.join(work, 'changing.tar');
    fs.copyFileSync(archive, copy);
    // The cache written first, so the second mount's layer views read their paths back from it.
    await withMount(copy, ['--cache-dir', cache], async () => undefined);
    await withMount(copy, ['--cache-dir', cache], async ({ mnt }) => {
      fs.appendFileSync(copy, Buffer.alloc(512));
      const found = await run('find', [path.join(mnt, 'layers') + '/', '-printf', '%P %y %m %U %G %s %n %i %l\n']);
      assert.equal(found.stdout.split('\n').filter(Boolean).sort().join('\n'), reference.listing);
      const layer1 = reference.listing.split('\n').find((l) => / f /.test(l) && l.includes('/b/hl '))!.split(' ')[0];
      const viaLayer = await run('cat', [path.join(mnt, 'layers', layer1)]);
      const viaRoot = await run('cat', [path.join(mnt, 'rootfs/top')]);
      assert.notEqual(viaLayer.code, 0);
      assert.notEqual(viaRoot.code, 0);
      assert.match(viaLayer.stderr, /Input\/output error/);
    });
  });
});
