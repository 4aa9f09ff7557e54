import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, tempDir } from './helpers/mount-harness';
import { pushLayout, startFaultProxy, startRegistry, type Registry } from './helpers/registry';

/*
 * The on-disk cache of downloaded blob blocks is capped (--registry-cache-size): past the cap the
 * least recently used blob goes whole. Seen from outside, through a proxy that logs requests: what
 * was read last is read again from the cache, what was evicted is fetched again.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('the registry block cache', { timeout: 300_000 }, () => {
  let reg: Registry;
  let work: string;
  let layers: string[];
  const one = 'one\n'.repeat(150 * 1024);
  const two = 'two\n'.repeat(150 * 1024);

  before(async () => {
    work = tempDir('registry-cache');
    cleanup.push(work);
    // Two uncompressed layers, one file each: two blobs of ~600 KiB, read partly and lazily.
    await buildArchive(path.join(work, 'img'), {
      layout: 'oci-dir',
      images: [{ tags: ['app:1'], layers: [{ entries: [{ path: 'one.bin', content: one }] }, { entries: [{ path: 'two.bin', content: two }] }] }],
    });
    const img = path.join(work, 'img');
    const index = JSON.parse(fs.readFileSync(path.join(img, 'index.json'), 'utf8'));
    const manifest = JSON.parse(fs.readFileSync(path.join(img, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    layers = manifest.layers.map((l: { digest: string }) => l.digest.slice(7));
    reg = await startRegistry();
    await pushLayout(path.join(work, 'img'), reg.host, 'plain/app', '1');
  });
  after(async () => reg?.stop());

  it('is capped by --registry-cache-size: the least recently used blob is evicted whole, and fetched again when read', async () => {
    const proxy = await startFaultProxy(reg.host);
    try {
      const cache = path.join(work, 'cache');
      const ref = `docker://${proxy.host}/plain/app:1`;
      const cat = async (file: string, want: string) => {
        const r = await ocimount(['cat', '--cache-dir', cache, '--registry-cache-size', '1', ref, file], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, want);
      };
      const blocksDir = path.join(cache, 'registry', 'blocks');
      const kept = () => fs.readdirSync(blocksDir).filter((n) => n.endsWith('.map')).map((n) => n.slice(0, -4));
      const keptBytes = () => kept().reduce((n, hex) => n + (JSON.parse(fs.readFileSync(path.join(blocksDir, `${hex}.map`), 'utf8')).blocks as number[][]).reduce((m, b) => m + b[2], 0), 0);
      /** Blob bytes asked of the registry for layer `i` since the log was cleared. */
      const fetched = (i: number) =>
        proxy.log.filter((l) => l.includes(`/blobs/sha256:${layers[i]}`)).reduce((n, l) => {
          const m = / bytes=(\d+)-(\d+) /.exec(l);
          return n + (m ? Number(m[2]) - Number(m[1]) + 1 : 0);
        }, 0);

      await cat('/one.bin', one);
      assert.ok(kept().includes(layers[0]), 'the first layer is kept after the first read');
      await cat('/two.bin', two);
      assert.deepEqual(kept(), [layers[1]], 'only the second layer is kept after the second read');
      assert.ok(keptBytes() <= 1024 * 1024, `kept ${keptBytes()} bytes, cap 1 MiB`);

      proxy.log.length = 0;
      await cat('/two.bin', two);
      assert.equal(fetched(1), 0, `the kept layer is read from the cache: ${proxy.log.join('\n')}`);
      proxy.log.length = 0;
      await cat('/one.bin', one);
      // Opening the image already read the blob's head and samples of it again (the index cache
      // key), so the file's middle is what this read has to fetch anew.
      assert.ok(fetched(0) >= one.length / 2, `the evicted layer is fetched again: ${proxy.log.join('\n')}`);
    } finally {
      await proxy.close();
    }
  });
});
