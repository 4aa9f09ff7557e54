import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { FIXTURES, ocimount, tempDir } from './helpers/mount-harness';

/* Small things the CLI said wrong or not at all. */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

let work: string;
let gzipLayers: string;
before(async () => {
  work = tempDir('small');
  cleanup.push(work);
  gzipLayers = path.join(work, 'kaniko.tar');
  await buildArchive(gzipLayers, {
    layout: 'kaniko',
    images: [{ layers: [0, 1, 2].map((i) => ({ entries: [{ path: `f${i}`, content: `layer ${i}\n` }] })) }],
  });
});

describe('small fixes', { concurrency: 4 }, () => {
  it('inspect --json fills images[].platform from the config when the archive does not say', async () => {
    const doc = JSON.parse((await ocimount(['inspect', '--json', DIVE])).stdout);
    assert.equal(doc.images[0].platform, 'linux/amd64');
    const two = JSON.parse((await ocimount(['inspect', '--json', path.join(FIXTURES, 'ggcr-legacy-two-images.tar')])).stdout);
    assert.deepEqual(two.images.map((i: { platform: string }) => i.platform), ['linux/amd64', 'linux/amd64']);
  });

  it('a gzip of something that is not a tar says so, not "truncated"', async () => {
    const f = path.join(work, 'hello.gz');
    fs.writeFileSync(f, execFileSync('gzip', ['-c'], { input: 'hello\n' }));
    const r = await ocimount(['inspect', f]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `ocimount: ${f}: not a tar archive (gzip of text: "hello")\n`);
    const z = path.join(work, 'noise.zst');
    fs.writeFileSync(z, execFileSync('zstd', ['-qc'], { input: Buffer.alloc(3000, 7) }));
    const rz = await ocimount(['ls', z]);
    assert.equal(rz.code, 3);
    assert.match(rz.stderr, /: not a tar archive \(zstd of 3000 bytes of binary data\)\n$/);
  });

  it('a cache folder that cannot be made is one warning, not one per layer', async () => {
    const file = path.join(work, 'a-file');
    fs.writeFileSync(file, '');
    const r = await ocimount(['ls', '--cache-dir', path.join(file, 'cache'), gzipLayers, '/']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'f0\nf1\nf2\n');
    const warnings = r.stderr.split('\n').filter((l) => l.includes('cache'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0], /^ocimount: warning: cache: cannot write to .*a-file\/cache \(.*\): layer indexes are not kept/);
  });
});
