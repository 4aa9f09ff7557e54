import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { FileSource } from '../src/io/byte-source';
import { scanTar } from '../src/tar/scan';
import { scanTarInWorker } from '../src/tar/scan-workers';
import { encodeTarIndex } from '../src/tar/tar-index-codec';
import { dockerArchive, file, layer, outerTar, paxFile, sha256 } from './helpers/hostile-build';
import { ocimount, tempDir } from './helpers/mount-harness';
import * as raw from './helpers/raw-tar';

/*
 * Layers scanned on worker threads (src/tar/scan-workers.ts) give the very index, warnings and
 * errors a scan on the main thread gives. OCIMOUNT_SCAN_WORKER_MIN_BYTES=0 sends every plain
 * layer of these small archives to a worker, as the large layers of real images are.
 */

const work = tempDir('scan-workers');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const out = (name: string) => path.join(work, `${n++}-${name}`);

/** A layer with most of what the scanner folds together: pax and GNU long names, links, xattrs, sparse files. */
function variedLayer(): Buffer {
  const long = `deep/${'d'.repeat(120)}/${'f'.repeat(90)}`;
  return layer(
    raw.entry({ name: 'deep/', typeflag: '5', mode: 0o755 }),
    paxFile(long, 'pax long name\n'),
    raw.gnuLong('L', `gnu/${'g'.repeat(150)}`),
    raw.entry({ name: 'ignored', format: 'gnu', mode: 0o600, uid: 1234, gid: 99 }, Buffer.from('gnu long\n')),
    raw.entry({ name: 'link-to-long', typeflag: '2', linkname: long }),
    raw.entry({ name: 'hard', typeflag: '1', linkname: long }),
    paxFile('with-xattr', 'x', {}, [['SCHILY.xattr.user.k', 'v']]),
    raw.oldGnuSparse('sparse-old', 64 * 1024, [{ offset: 4096, data: Buffer.from('middle') }]),
    raw.paxSparse10('sparse-pax', 32 * 1024, [{ offset: 0, data: Buffer.from('head') }]),
    raw.entry({ name: 'odd-type', typeflag: 'Z' }, Buffer.from('read as a file')),
    ...Array.from({ length: 300 }, (_, i) => file(`many/f${i}`, `file ${i}\n`.repeat(i % 7))),
  );
}

async function scanBoth(bytes: Buffer, at: number): Promise<[Awaited<ReturnType<typeof scanTar>>, Awaited<ReturnType<typeof scanTar>>]> {
  const p = out('layer.bin');
  fs.writeFileSync(p, Buffer.concat([Buffer.alloc(at, 0xee), bytes, Buffer.alloc(700, 0xee)]));
  const f = await FileSource.open(p);
  try {
    const { SliceSource } = await import('../src/io/byte-source');
    const slice = new SliceSource(f, at, bytes.length);
    return [await scanTar(slice, 'layer x'), await scanTarInWorker(f, at, bytes.length, 'layer x')];
  } finally {
    await f.close();
  }
}

describe('layer scans on worker threads', () => {
  it('give the same index, warnings and end as the main thread, also at an offset in the file', async () => {
    const bytes = variedLayer();
    for (const at of [0, 1536]) {
      const [here, there] = await scanBoth(bytes, at);
      assert.ok(here.index.count > 300);
      assert.ok(encodeTarIndex(there.index).equals(encodeTarIndex(here.index)), 'same index bytes');
      assert.deepEqual(there.warnings, here.warnings);
      assert.deepEqual(there.issues, here.issues);
      assert.equal(there.endOffset, here.endOffset);
      assert.ok(here.warnings.some((w) => /unknown entry type "Z"/.test(w)), here.warnings.join('\n'));
    }
  });

  it('report a cut-off layer the same way', async () => {
    const bytes = variedLayer();
    const cut = bytes.subarray(0, bytes.length - 3000 + 100);
    const [here, there] = await scanBoth(cut, 512);
    assert.ok(here.truncation, 'the cut is noticed');
    assert.equal(there.truncation, here.truncation);
    assert.deepEqual(there.warnings, here.warnings);
    assert.ok(encodeTarIndex(there.index).equals(encodeTarIndex(here.index)));
  });

  it('fail with the same error on a bad header', async () => {
    const bad = Buffer.from(variedLayer());
    bad[512 * 3 + 7] ^= 0x01;
    const p = out('bad.bin');
    fs.writeFileSync(p, bad);
    const f = await FileSource.open(p);
    try {
      const here = await scanTar(f, 'layer 9').then(() => undefined, (e: Error) => e);
      const there = await scanTarInWorker(f, 0, bad.length, 'layer 9').then(() => undefined, (e: Error) => e);
      assert.ok(here && there);
      assert.equal(there.message, here.message);
      assert.equal(there.constructor, here.constructor);
    } finally {
      await f.close();
    }
  });

  it('an image opened with worker scans equals one opened without, warnings in layer order', async () => {
    // Cut inside b's data.
    const trunc = layer(file('a', 'x'.repeat(30_000)), file('b', 'y'.repeat(30_000))).subarray(0, 40_000);
    const a = dockerArchive([variedLayer(), layer(file('top', 'top\n'), file('many/.wh.f3', '')), trunc]);
    const p = out('image.tar');
    fs.writeFileSync(p, outerTar(a.members));
    const open = async (min: string | undefined) => {
      const before = process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES;
      if (min === undefined) delete process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES;
      else process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES = min;
      try {
        const warnings: string[] = [];
        const v = await ImageView.open(p, { onWarning: (t) => warnings.push(t) });
        const listing = [...v.merged.walk()].map((node) => `${v.merged.path(node)} ${JSON.stringify(v.merged.stat(node))}`);
        const indexes = v.layers.map((l) => encodeTarIndex(l.index).toString('hex'));
        await v.close();
        return { warnings, listing, indexes };
      } finally {
        if (before === undefined) delete process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES;
        else process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES = before;
      }
    };
    const inWorkers = await open('0');
    const onMain = await open(String(2 ** 40));
    assert.deepEqual(inWorkers, onMain);
    assert.ok(onMain.warnings.some((w) => /^layer 2 .*truncated/.test(w)), onMain.warnings.join('\n'));
    const firstOf = (re: RegExp) => onMain.warnings.findIndex((w) => re.test(w));
    assert.ok(firstOf(/^layer 0 /) < firstOf(/^layer 2 /), 'warnings come in layer order');
  });

  it('a bad layer is still one line, exit 3, naming the layer and the byte (the CLI, scanning in workers)', async () => {
    const bad = Buffer.from(layer(file('app/one', 'one\n'), file('app/two', 'two\n')));
    bad[512 + 512 + 3] ^= 0x01;
    const a = dockerArchive([layer(file('ok', 'ok\n')), bad]);
    const p = out('bad-image.tar');
    fs.writeFileSync(p, outerTar(a.members));
    const before = process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES;
    process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES = '0';
    try {
      const r = await ocimount(['ls', '--no-cache', p, '/']);
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], new RegExp(`^ocimount: .*layer 1 \\(${sha256(bad)}\\): invalid tar header at byte 1024: `));
    } finally {
      if (before === undefined) delete process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES;
      else process.env.OCIMOUNT_SCAN_WORKER_MIN_BYTES = before;
    }
  });
});
