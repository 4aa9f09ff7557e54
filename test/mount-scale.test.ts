import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import { buildArchive, type EntrySpec } from './helpers/archive-builder';
import { tempDir, withMount } from './helpers/mount-harness';

/*
 * Listings at scale through a real mount: a directory of 25,000 names (bytes above 0x7f among
 * them), a wide and deep tree, whiteouts and hard links, walked with find. Readdir answers are
 * packed from the tree's columns and the directories that follow are primed into the native
 * answer cache ahead of the walk (src/fuse/ops.ts), so what find sees must be exactly the merged
 * tree: every path, type, size, inode and link count. The same again with an answer cache too
 * small for the big listing (it then never goes into the native cache and is answered by JS).
 */

const execFileP = promisify(execFile);
const work = tempDir('scale');
after(() => fs.rmSync(work, { recursive: true, force: true }));

const BIG = 25_000;

function lowerLayer(): EntrySpec[] {
  const e: EntrySpec[] = [{ path: 'big', type: 'dir' }];
  for (let i = 0; i < BIG; i++) e.push({ path: `big/f-\u00e9\u00df-${i}`, content: i % 1000 === 0 ? `file ${i}` : '' });
  for (let a = 0; a < 60; a++) {
    for (let b = 0; b < 10; b++) {
      for (let f = 0; f < 4; f++) e.push({ path: `tree/a${a}/b${b}/f${f}`, content: `${a}/${b}/${f}` });
    }
  }
  let deep = 'deep';
  for (let d = 0; d < 40; d++) {
    deep += `/d${d}`;
    e.push({ path: `${deep}/x`, content: 'x' });
  }
  e.push({ path: 'tree/a0/b0/hard', type: 'link', target: 'tree/a0/b0/f0' });
  e.push({ path: 'tree/sym', type: 'symlink', target: 'a1/b1' });
  return e;
}

function upperLayer(): EntrySpec[] {
  return [
    { path: 'tree/.wh.a3', content: '' },
    { path: 'tree/a5/.wh..wh..opq', content: '' },
    { path: 'tree/a5/new', content: 'new' },
    { path: 'big/.wh.f-\u00e9\u00df-7', content: '' },
    { path: 'z-last/only', content: 'z' },
  ];
}

let archive = '';
let expected: string[] = [];

/** `find -printf '%P\t%y\t%s\t%i\t%n'` of rootfs as the merged tree says it, sorted. */
function expectedLines(view: ImageView): string[] {
  const tree = view.merged;
  const lines: string[] = [];
  for (const n of tree.walk()) {
    const st = tree.stat(n);
    const y = st.type === EntryType.Directory ? 'd' : st.type === EntryType.Symlink ? 'l' : 'f';
    // The mount shows the merged tree at rootfs/, its inodes from 100 up (namespace.ts).
    lines.push(`${tree.path(n)}\t${y}\t${st.size}\t${100 + st.ino}\t${st.nlink}`);
  }
  return lines.sort();
}

async function findThroughMount(mnt: string): Promise<string[]> {
  const { stdout } = await execFileP('find', [path.join(mnt, 'rootfs'), '-printf', '%P\\t%y\\t%s\\t%i\\t%n\\n'], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  return stdout.split('\n').filter((l) => l !== '').sort();
}

describe('listings at scale through the mount', () => {
  before(async () => {
    archive = path.join(work, 'scale.tar');
    await buildArchive(archive, { layout: 'docker25', images: [{ layers: [{ entries: lowerLayer() }, { entries: upperLayer() }] }] });
    const view = await ImageView.open(archive);
    expected = expectedLines(view);
    await view.close();
  });

  it('find sees exactly the merged tree (packed listings, primed ahead of the walk)', { timeout: 300_000 }, async () => {
    assert.ok(expected.length > BIG + 2_400, `${expected.length} paths expected`);
    assert.ok(expected.some((l) => l.startsWith('big/f-\xc3\xa9\xc3\x9f-1\t')), 'a name with bytes above 0x7f');
    await withMount(archive, ['--no-cache'], async ({ mnt }) => {
      const first = await findThroughMount(mnt);
      assert.equal(first.length, expected.length);
      assert.deepEqual(first, expected);
      // The second walk is answered from the kernel's and the native side's caches.
      assert.deepEqual(await findThroughMount(mnt), expected);
      // A name of the big listing, looked up directly (LOOKUP from the native cache), reads right.
      const named = path.join(mnt, 'rootfs', Buffer.from('big/f-\u00e9\u00df-3000', 'utf8').toString());
      assert.equal((await execFileP('cat', [named], { encoding: 'utf8' })).stdout, 'file 3000');
    });
  });

  it('a listing larger than the native answer cache still lists right', { timeout: 300_000 }, async () => {
    process.env.OCIMOUNT_FUSE_DIR_CACHE_BYTES = String(1024 * 1024);
    try {
      await withMount(archive, ['--no-cache'], async ({ mnt }) => {
        assert.deepEqual(await findThroughMount(mnt), expected);
        const big = await execFileP('ls', ['-f', path.join(mnt, 'rootfs', 'big')], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 });
        assert.equal(big.stdout.split('\n').filter((l) => l !== '').length, BIG - 1 + 2);
      });
    } finally {
      delete process.env.OCIMOUNT_FUSE_DIR_CACHE_BYTES;
    }
  });
});
