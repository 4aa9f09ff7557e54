import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeEntry, encodeEntry, IndexCache } from '../src/cache/index-cache';
import { ImageView } from '../src/engine';
import { buildArchive, type EntrySpec } from './helpers/archive-builder';
import { run, tempDir, withMount } from './helpers/mount-harness';

/*
 * The merged tree kept in the index cache (src/cache/tree-snapshot.ts): a later open is served
 * from it and gives exactly the tree a fresh build gives, whiteouts, hard links, warnings and
 * --layers selections included; a damaged, inconsistent or stale snapshot is never used.
 */

const work = tempDir('tree-snapshot');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const out = (name: string) => path.join(work, `${n++}-${name}`);

const f = (p: string, content = p): EntrySpec => ({ path: p, content });
const d = (p: string): EntrySpec => ({ path: `${p}/`, type: 'dir' });
const LAYERS: EntrySpec[][] = [
  [d('etc'), f('etc/passwd', 'root:x:0:0\n'), d('opt'), d('opt/app'), f('opt/app/old'), f('opt/app/keep'), d('var'), f('var/log', 'log\n'), f('bin/tool', 'tool')],
  [f('opt/app/.wh.old', ''), { path: 'bin/tool-link', type: 'link', target: 'bin/tool' }, { path: 'etc/alias', type: 'symlink', target: 'passwd' }, f('new/file', 'new')],
  [f('var/.wh..wh..opq', ''), f('var/fresh', 'fresh'), f('etc/.wh.passwd', ''), d('etc/.wh.ignored-dir'), f('top', 'top')],
];

async function image(layers = LAYERS): Promise<string> {
  const p = out('image.tar');
  await buildArchive(p, { layout: 'oci-archive', images: [{ layers: layers.map((entries) => ({ entries })) }] });
  return p;
}

/** Everything a reader can see of the merged tree, plus the columns themselves. */
async function snapshotOf(p: string, opts: { cache?: IndexCache; layers?: string }) {
  const warnings: string[] = [];
  const v = await ImageView.open(p, { ...opts, onWarning: (t) => warnings.push(t) });
  try {
    const t = v.merged;
    const listing = [];
    for (const node of t.walk()) {
      const st = t.stat(node);
      listing.push(`${t.path(node)} ${JSON.stringify(st)} ${t.symlinkTarget(node) ?? ''} ${st.type === 0 ? (await v.readFile(t, node)).toString() : ''}`);
    }
    const cols = Object.fromEntries(Object.entries(t.columns()).map(([k, c]) => [k, Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('hex')]));
    return { listing, cols, warnings };
  } finally {
    await v.close();
  }
}

const treeFiles = (dir: string): string[] =>
  fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.tree')).map((x) => path.join(dir, x)).sort() : [];

describe('the merged tree in the index cache', () => {
  it('a second open is served from the snapshot and equals a fresh build, for every --layers selection', async () => {
    const p = await image();
    const dir = out('cache');
    const notes: string[] = [];
    const cache = () => new IndexCache(dir, (m) => notes.push(m));
    // '^1' and '0,2' are the same layers: one snapshot serves both.
    const selections: Array<[string | undefined, number]> = [[undefined, 1], ['..1', 2], ['^1', 3], ['0,2', 3], ['2', 4]];
    for (const [layers, snapshots] of selections) {
      const fresh = await snapshotOf(p, { layers });
      const first = await snapshotOf(p, { cache: cache(), layers });
      const files = treeFiles(dir);
      assert.equal(files.length, snapshots, 'one snapshot per selection of layers');
      const stamps = files.map((x) => fs.statSync(x).mtimeMs);
      const second = await snapshotOf(p, { cache: cache(), layers });
      assert.deepEqual(treeFiles(dir).map((x) => fs.statSync(x).mtimeMs), stamps, 'served from the snapshot, not rebuilt');
      assert.deepEqual(first, fresh);
      assert.deepEqual(second, fresh);
    }
    const all = await snapshotOf(p, {});
    assert.ok(all.listing.some((l) => l.startsWith('var/fresh ')) && !all.listing.some((l) => l.startsWith('var/log ')), 'opaque directory applied');
    assert.ok(!all.listing.some((l) => l.startsWith('opt/app/old ')), 'whiteout applied');
    assert.ok(all.warnings.some((w) => /whiteout .*is a directory/.test(w)), all.warnings.join('\n'));
    assert.deepEqual(notes, []);
  });

  it('an entry of many sections is stored piece by piece, byte for byte what encodeEntry gives, and read back whole', async () => {
    const dir = out('pieces');
    const key = 'ab'.repeat(32);
    const cache = new IndexCache(dir);
    // More sections than one writev call takes, of sizes 0 up to 64 KiB.
    const sections = Array.from({ length: 1500 }, (_, i) => Buffer.alloc((i * 7919) % 65537, i & 0xff));
    const entry = { meta: { what: 'pieces' }, sections };
    const sum = await cache.put(key, entry);
    assert.ok(fs.readFileSync(path.join(dir, 'ab', `${key}.idx`)).equals(encodeEntry(entry)));
    const back = await cache.get(key);
    assert.equal(back?.sum, sum);
    assert.equal(back?.sections.length, 1500);
    back?.sections.forEach((s, i) => assert.ok(s.equals(sections[i]), `section ${i}`));
    // Read piece by piece, each section into memory of its own: decoders keep views of them.
    back?.sections.forEach((s, i) => assert.ok(s.byteOffset === 0 && s.byteLength === s.buffer.byteLength, `section ${i} owns its buffer`));
  });

  it('written behind (the mount\'s way): the open does not wait for the files, flush and close do, and the next open is served from them', async () => {
    const p = await image();
    const dir = out('cache');
    const cache = new IndexCache(dir);
    const v = await ImageView.open(p, { cache, cacheWriteBehind: true });
    let idx: string[];
    try {
      await v.cacheWritten();
      idx = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.idx'));
      assert.equal(idx.length, LAYERS.length, 'every layer index is on disk once cacheWritten resolves');
      assert.equal(treeFiles(dir).length, 1);
      assert.ok(!fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((x) => x.endsWith('.tmp')), 'no half-written file left');
    } finally {
      await v.close();
    }
    // A put that nobody flushes is still on disk once close() resolves.
    const dir2 = out('cache');
    const v2 = await ImageView.open(p, { cache: new IndexCache(dir2), cacheWriteBehind: true });
    await v2.close();
    assert.equal(treeFiles(dir2).length, 1);
    const fresh = await snapshotOf(p, {});
    assert.deepEqual(await snapshotOf(p, { cache: new IndexCache(dir) }), fresh);
  });

  it('a damaged snapshot is noticed, dropped and rebuilt', async () => {
    const p = await image();
    const dir = out('cache');
    const notes: string[] = [];
    const cache = () => new IndexCache(dir, (m) => notes.push(m));
    const fresh = await snapshotOf(p, { cache: cache() });
    const [file] = treeFiles(dir);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 40] ^= 0x55;
    fs.writeFileSync(file, bytes);
    assert.deepEqual(await snapshotOf(p, { cache: cache() }), fresh);
    assert.ok(notes.some((m) => /\.tree: checksum mismatch; rebuilding it/.test(m)), notes.join('\n'));
    assert.doesNotThrow(() => decodeEntry(fs.readFileSync(file)), 'rewritten whole');
  });

  it('a snapshot that does not fit its layers (checksum right, content wrong) is rebuilt, never served', async () => {
    const p = await image();
    const dir = out('cache');
    const notes: string[] = [];
    const cache = () => new IndexCache(dir, (m) => notes.push(m));
    const fresh = await snapshotOf(p, { cache: cache() });
    const [file] = treeFiles(dir);
    const entry = decodeEntry(fs.readFileSync(file));
    // objEntry (section 7): point the first object past the end of its layer's index.
    const objEntry = Buffer.from(entry.sections[7]);
    objEntry.writeInt32LE(1_000_000, 0);
    entry.sections[7] = objEntry;
    fs.writeFileSync(file, encodeEntry(entry));
    assert.deepEqual(await snapshotOf(p, { cache: cache() }), fresh);
    assert.ok(notes.some((m) => /tree snapshot is inconsistent \(entries\); rebuilding it/.test(m)), notes.join('\n'));
  });

  it('a changed archive at the same path misses the old snapshot', async () => {
    const dir = out('cache');
    const p = await image();
    await snapshotOf(p, { cache: new IndexCache(dir) });
    const changed = LAYERS.map((l, i) => (i === 2 ? [...l, f('top', 'changed')] : l));
    await buildArchive(p, { layout: 'oci-archive', images: [{ layers: changed.map((entries) => ({ entries })) }] });
    const fresh = await snapshotOf(p, {});
    assert.deepEqual(await snapshotOf(p, { cache: new IndexCache(dir) }), fresh);
    assert.ok(fresh.listing.some((l) => /^top .*changed$/.test(l)));
    assert.equal(treeFiles(dir).length, 2);
  });

  it('a second mount, served from the snapshot, shows the same tree as the first', async () => {
    const p = await image();
    const dir = out('cache');
    const walk = async (mnt: string) => (await run('find', [path.join(mnt, 'rootfs'), '-printf', '%P %y %s %m %n %l\\n'])).stdout.split('\n').sort();
    const cat = async (mnt: string) => (await run('cat', [path.join(mnt, 'rootfs', 'var', 'fresh'), path.join(mnt, 'rootfs', 'bin', 'tool-link')])).stdout;
    const first = await withMount(p, ['--cache-dir', dir], async ({ mnt }) => ({ listing: await walk(mnt), bytes: await cat(mnt) }));
    const [file] = treeFiles(dir);
    const stamp = fs.statSync(file).mtimeMs;
    const second = await withMount(p, ['--cache-dir', dir], async ({ mnt, stderr }) => {
      assert.doesNotMatch(stderr(), /rebuilding/);
      return { listing: await walk(mnt), bytes: await cat(mnt) };
    });
    assert.equal(fs.statSync(file).mtimeMs, stamp, 'the second mount read the snapshot');
    assert.deepEqual(second, first);
    assert.ok(first.listing.includes('var/fresh f 5 644 1 ') && !first.listing.some((l) => l.startsWith('var/log ')), first.listing.join('\n'));
    assert.equal(first.bytes, 'freshtool');
  });
});
