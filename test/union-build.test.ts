import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import { collectGarbage } from '../src/io/collect-garbage';
import { buildTree, type BuildOptions } from '../src/union/build';
import { EntryType } from '../src/tar/entry';
import { TarIndexBuilder, type TarIndex } from '../src/tar/tar-index';
import type { Tree } from '../src/union/tree';
import { buildTree as referenceBuild } from './helpers/union-reference';
import { prng } from './helpers/hostile-build';

/*
 * The union build works on typed-array columns and a hash of (parent, name) instead of a Map per
 * directory; it must give exactly the tree the obvious build gives (test/helpers/union-reference.ts):
 * the same nodes in the same order, the same objects (inode numbers), the same warnings.
 * Random layers over a small alphabet of names make the collisions that matter: a file over a
 * directory, a directory over a file, duplicates, whiteouts and opaque markers of lower and own
 * paths, hard links to files, directories, absent and lower-layer targets, odd slashes.
 */

const NAMES = ['a', 'b', 'c', 'ab', 'B', '\xe9', '.wh.a', '.wh.b', '.wh.c', '.wh..wh..opq', '.wh.', '.wh..wh.plnk', ''];

function randomLayer(next: () => number, size: number): TarIndex {
  const b = new TarIndexBuilder();
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)];
  const randomPath = () => {
    const depth = 1 + Math.floor(next() * 3);
    const parts: string[] = [];
    for (let i = 0; i < depth; i++) parts.push(pick(NAMES));
    // Mostly ordinary names; an empty part now and then gives `a//b` and `/a`.
    return parts.filter((p, i) => p !== '' || next() < 0.3 || i === depth - 1).join('/');
  };
  for (let i = 0; i < size; i++) {
    const r = next();
    const type = r < 0.35 ? EntryType.Directory : r < 0.8 ? EntryType.File : r < 0.9 ? EntryType.HardLink : EntryType.Symlink;
    const path = next() < 0.02 ? '' : randomPath();
    b.add({
      path, type, mode: 0o644, uid: i, gid: 0, size: type === EntryType.File && next() < 0.2 ? 5 : 0, mtime: i, mtimeNsec: 0,
      dataOffset: i * 512, storedSize: 0,
      ...(type === EntryType.HardLink || type === EntryType.Symlink ? { linkname: randomPath() } : {}),
    });
  }
  return b.finish();
}

/** Everything a Tree holds, as plain arrays. */
function columns(t: Tree) {
  const names: string[] = [];
  for (let n = 0; n < t.nodeCount; n++) names.push(t.name(n));
  return {
    names, parent: [...t.parent], childFirst: [...t.childFirst], childCount: [...t.childCount],
    nodeObj: [...t.nodeObj], objLayer: [...t.objLayer], objEntry: [...t.objEntry], objNlink: [...t.objNlink], bytes: t.byteSize(),
  };
}

function assertSame(layers: TarIndex[], apply: number[], opts: BuildOptions, what: string) {
  const want = referenceBuild(layers, apply, opts);
  const got = buildTree(layers, apply, opts);
  assert.deepEqual(columns(got.tree), columns(want.tree), what);
  assert.deepEqual(got.warnings, want.warnings, what);
}

describe('union build (columns) agrees with the reference build', () => {
  it('random layers, merged and single, all and some layers applied', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const next = prng(seed);
      const layers = Array.from({ length: 1 + Math.floor(next() * 4) }, () => randomLayer(next, 1 + Math.floor(next() * 40)));
      const all = layers.map((_, i) => i);
      assertSame(layers, all, { mode: 'merged' }, `seed ${seed}, merged`);
      assertSame(layers, all.filter(() => next() < 0.6), { mode: 'merged' }, `seed ${seed}, some layers`);
      const top = layers.length - 1;
      // The layer view's hard links to lower layers resolve through resolveOutside.
      const below = (path: string) => {
        for (let p = top - 1; p >= 0; p--) for (let i = 0; i < layers[p].count; i++) if (layers[p].path(i) === path) return { layerSlot: p, entry: i };
        return undefined;
      };
      assertSame(layers, [top], { mode: 'single', resolveOutside: below }, `seed ${seed}, single`);
    }
  });

  it('a directory of 50,000 names, some of them bytes above 0x7f, sorts and numbers the same', () => {
    const b = new TarIndexBuilder();
    const next = prng(7);
    b.add({ path: 'big', type: EntryType.Directory, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, dataOffset: 0, storedSize: 0 });
    for (let i = 0; i < 50_000; i++) {
      const name = `${String.fromCharCode(0x21 + Math.floor(next() * 0xde))}${i.toString(36)}`.replace('/', '_');
      b.add({ path: `big/${name}`, type: EntryType.File, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, dataOffset: 0, storedSize: 0 });
    }
    const layer = b.finish();
    assertSame([layer], [0], { mode: 'merged' }, 'big directory');
    assert.equal(buildTree([layer], [0], { mode: 'merged' }).tree.nodeCount, 50_002);
  });

  it('directories whose names share prefixes of every length, some past 256 bytes, sort the same', () => {
    // Names alike in their first 4, 8, ... bytes, names that are prefixes of others, bytes that
    // sort below and above the padding of a shorter name: each depth of the digit sort.
    const next = prng(11);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)];
    const stems = ['', 'l', 'lib', 'libx', 'libxy', 'libxyz', 'libxyzw', 'libxyzw.so', 'a'.repeat(255), 'a'.repeat(300), `${'a'.repeat(299)}\x01`, '\xff\xfe', '\x01'];
    const tails = ['', 'a', 'b', '\x01', '\xe9', 'z', '0', 'libxyzw'];
    const layer = () => {
      const b = new TarIndexBuilder();
      for (let i = 0; i < 3000; i++) {
        let name = pick(stems);
        for (let k = Math.floor(next() * 4); k > 0; k--) name += pick(tails);
        if (name === '') continue;
        const dir = pick(['d', 'd/e', 'f']);
        b.add({ path: `${dir}/${name}`, type: EntryType.File, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, dataOffset: 0, storedSize: 0 });
      }
      return b.finish();
    };
    const layers = [layer(), layer()];
    assertSame(layers, [0, 1], { mode: 'merged' }, 'shared prefixes');
    assertSame(layers, [1], { mode: 'single' }, 'shared prefixes, one layer');
  });

  it('builds without a JS object per entry: the heap does not grow with the tree (the reference build\'s does)', (t) => {
    const entries = 300_000;
    const b = new TarIndexBuilder();
    for (let i = 0; i < entries; i++) {
      const path = i % 10 === 0 ? `d${Math.floor(i / 10)}` : `d${Math.floor(i / 10)}/f${i}`;
      b.add({ path, type: i % 10 === 0 ? EntryType.Directory : EntryType.File, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, dataOffset: 0, storedSize: 0 });
    }
    const layer = b.finish();
    // Growth of V8's heap (objects, strings, Maps) across a build, per entry; typed-array columns live outside it.
    const heapGrowth = (build: typeof buildTree) => {
      // A full collection first, so what is counted is what the build keeps alive while it runs.
      collectGarbage();
      const before = v8.getHeapStatistics().total_heap_size;
      const built = build([layer], [0], { mode: 'merged' });
      const grown = v8.getHeapStatistics().total_heap_size - before;
      assert.equal(built.tree.nodeCount, entries + 1);
      return grown / entries;
    };
    const reference = heapGrowth(referenceBuild);
    const lean = heapGrowth(buildTree);
    assert.ok(reference > 100, `the measure sees per-entry objects: reference build grew the heap ${reference.toFixed(0)} B/entry`);
    t.diagnostic(`heap growth per entry: reference ${reference.toFixed(0)}, lean ${lean.toFixed(1)}`);
    assert.ok(lean < 20, `the build grew the heap ${lean.toFixed(1)} B/entry (reference: ${reference.toFixed(0)})`);
    // What the tree keeps: its columns, a few dozen bytes per node.
    const tree = buildTree([layer], [0], { mode: 'merged' }).tree;
    assert.ok(tree.byteSize() / tree.nodeCount < 64, `${(tree.byteSize() / tree.nodeCount).toFixed(1)} bytes per node`);
  });
});
