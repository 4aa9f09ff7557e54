import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import { buildArchive, type EntrySpec } from './helpers/archive-builder';
import { tempDir } from './helpers/mount-harness';

/*
 * The OCI layer rules, one case each: layers given as entry lists (bottom first), the merged
 * tree checked against a listing written by hand as `path` (dirs end in /) or `path=content`.
 */

const work = tempDir('union');
const opened: ImageView[] = [];
after(async () => {
  await Promise.all(opened.map((v) => v.close()));
  fs.rmSync(work, { recursive: true, force: true });
});
let n = 0;

async function merge(layers: EntrySpec[][], warnings: string[] = []): Promise<ImageView> {
  const file = path.join(work, `${n++}.tar`);
  await buildArchive(file, { layout: 'oci-archive', images: [{ layers: layers.map((entries) => ({ entries })) }] });
  const v = await ImageView.open(file, { onWarning: (w) => warnings.push(w) });
  opened.push(v);
  return v;
}

async function tree(v: ImageView): Promise<string[]> {
  const m = v.merged;
  const out: string[] = [];
  for (const node of [...m.walk()].slice(1)) {
    const st = m.stat(node);
    if (st.type === EntryType.Directory) out.push(`${m.path(node)}/`);
    else if (st.type === EntryType.Symlink) out.push(`${m.path(node)}->${m.symlinkTarget(node)}`);
    else out.push(`${m.path(node)}=${(await v.readFile(m, node)).toString()}`);
  }
  return out;
}

async function expectTree(layers: EntrySpec[][], expected: string[]): Promise<ImageView> {
  const v = await merge(layers);
  assert.deepEqual(await tree(v), expected);
  return v;
}

const f = (p: string, content = p): EntrySpec => ({ path: p, content });
const d = (p: string, mode?: number): EntrySpec => ({ path: p.endsWith('/') ? p : `${p}/`, type: 'dir', mode });
const wh = (p: string): EntrySpec => ({ path: p, content: '' });

describe('union rules', () => {
  it('.wh.NAME hides NAME (and its subtree) from lower layers and is never shown', async () => {
    await expectTree(
      [[d('a'), f('a/keep'), f('a/gone'), d('a/sub'), f('a/sub/deep')], [wh('a/.wh.gone'), wh('a/.wh.sub')]],
      ['a/', 'a/keep=a/keep'],
    );
  });

  it('a whiteout never removes what its own layer adds, before or after it in the tar', async () => {
    await expectTree(
      [[f('x', 'old'), f('y', 'old')], [f('x', 'new'), wh('.wh.x'), wh('.wh.y'), f('y', 'new')]],
      ['x=new', 'y=new'],
    );
  });

  it('rm -rf then recreate in one step: lower children gone, the new ones stay', async () => {
    await expectTree([[d('a'), f('a/old')], [wh('.wh.a'), d('a'), f('a/new')]], ['a/', 'a/new=a/new']);
  });

  it('.wh..wh..opq hides every lower child of its directory and keeps the layer\'s own', async () => {
    await expectTree(
      [[d('a'), f('a/lower'), d('a/sub'), f('a/sub/x'), f('b')], [d('a'), f('a/mine'), wh('a/.wh..wh..opq'), f('a/after')]],
      ['a/', 'a/after=a/after', 'a/mine=a/mine', 'b=b'],
    );
  });

  it('an opaque marker over a lower file makes the path a directory', async () => {
    await expectTree([[f('a')], [wh('a/.wh..wh..opq')]], ['a/']);
  });

  it('a file over a directory replaces the subtree; a directory over a file replaces the file', async () => {
    await expectTree([[d('a'), f('a/x'), f('b')], [f('a', 'file now'), d('b'), f('b/y')]], ['a=file now', 'b/', 'b/y=b/y']);
  });

  it('directories merge, the upper directory\'s metadata wins', async () => {
    const v = await expectTree([[d('a', 0o700), f('a/x')], [d('a', 0o755), f('a/y')]], ['a/', 'a/x=a/x', 'a/y=a/y']);
    assert.equal(v.merged.stat(v.merged.lookup('a')).mode & 0o777, 0o755);
  });

  it('a later duplicate in one layer wins', async () => {
    await expectTree([[f('x', 'first'), f('x', 'second'), { path: 'l', type: 'symlink', target: 'x' }, f('l', 'file wins')]], ['l=file wins', 'x=second']);
  });

  it('missing parents are implied; a lower directory keeps its metadata', async () => {
    const v = await expectTree([[d('keep', 0o711)], [f('keep/deep/er/file'), f('new/dir/file')]], [
      'keep/', 'keep/deep/', 'keep/deep/er/', 'keep/deep/er/file=keep/deep/er/file', 'new/', 'new/dir/', 'new/dir/file=new/dir/file',
    ]);
    assert.equal(v.merged.stat(v.merged.lookup('keep')).mode & 0o777, 0o711);
    assert.equal(v.merged.stat(v.merged.lookup('new/dir')).mode & 0o777, 0o755);
  });

  it('./a, a/ and /a name the same path', async () => {
    await expectTree([[d('./a'), f('/a/x', 'one'), f('a//x', 'two'), d('a/')]], ['a/', 'a/x=two']);
  });

  it('hard links: same layer and lower layer targets share one inode and count links', async () => {
    const v = await expectTree(
      [[f('bin/busybox', 'BB'), { path: 'bin/sh', type: 'link', target: 'bin/busybox' }], [{ path: 'usr/bin/ls', type: 'link', target: 'bin/busybox' }]],
      ['bin/', 'bin/busybox=BB', 'bin/sh=BB', 'usr/', 'usr/bin/', 'usr/bin/ls=BB'],
    );
    const m = v.merged;
    const inos = ['bin/busybox', 'bin/sh', 'usr/bin/ls'].map((p) => m.stat(m.lookup(p)));
    assert.ok(inos.every((s) => s.ino === inos[0].ino && s.nlink === 3));
  });

  it("a layer's own view shows a hard link whose target only a lower layer holds, with its bytes", async () => {
    const v = await merge([[f('bin/busybox', 'BB')], [{ path: 'usr/bin/ls', type: 'link', target: 'bin/busybox' }]]);
    const top = v.layerTree(1);
    const ls = top.lookup('usr/bin/ls');
    assert.ok(ls >= 0, 'usr/bin/ls is in layer 1 alone');
    assert.equal((await v.readFile(top, ls)).toString(), 'BB');
  });

  it('a hard link keeps its content when a later layer deletes the target', async () => {
    const v = await expectTree([[f('t', 'data'), { path: 'l', type: 'link', target: 't' }], [wh('.wh.t')]], ['l=data']);
    assert.equal(v.merged.stat(v.merged.lookup('l')).nlink, 1);
  });

  it('invalid whiteouts (.wh., .wh.., .wh..wh.plnk) are ignored; bad ones are reported', async () => {
    const warnings: string[] = [];
    const v = await merge([[f('a/x')], [wh('a/.wh.'), wh('a/.wh..'), wh('.wh..wh.plnk')]], warnings);
    assert.deepEqual(await tree(v), ['a/', 'a/x=a/x']);
    assert.equal(warnings.filter((w) => /invalid whiteout/.test(w)).length, 2, warnings.join('\n'));
  });

  it('a whiteout does not follow a lower symlink to delete elsewhere', async () => {
    await expectTree([[d('real'), f('real/x'), { path: 'link', type: 'symlink', target: 'real' }], [wh('link/.wh.x')]], [
      'link->real', 'real/', 'real/x=real/x',
    ]);
  });
});
