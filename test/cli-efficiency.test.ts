import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { FIXTURES, ocimount, tempDir } from './helpers/mount-harness';

/*
 * `ocimount efficiency` against dive's own numbers: dive's test suite
 * (dive/image/docker/image_archive_analysis_test.go) states them for .data/test-docker-image.tar,
 * which is test/fixtures/dive-legacy-whiteouts.tar, and its CI evaluator tests
 * (cmd/dive/cli/internal/command/ci/evaluator_test.go) state which gates pass for that image.
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

let built: string;
before(async () => {
  const dir = tempDir('efficiency');
  cleanup.push(dir);
  built = path.join(dir, 'waste.tar');
  await buildArchive(built, {
    layout: 'docker25',
    images: [
      {
        layers: [
          {
            entries: [
              { path: 'a/', type: 'dir' },
              { path: 'a/big', content: Buffer.alloc(1000, 1) },
              { path: 'd/', type: 'dir' },
              { path: 'd/x', content: Buffer.alloc(300, 2) },
              { path: 'd/y', content: Buffer.alloc(400, 3) },
            ],
          },
          // a/big again, twice the size; its parent only implied by the path.
          { entries: [{ path: 'a/big', content: Buffer.alloc(2000, 4) }] },
          // A directory whiteout: counts the 700 bytes it removes.
          { entries: [{ path: '.wh.d', content: '' }] },
          // dive's quirks: a whiteout of a directory whose last writer only implied it counts 0;
          // a whiteout of a path not below ends the layer's visit (zzz is never counted) with its
          // record's "unmeasured" -1 in the sum of smallest sizes.
          { entries: [{ path: '.wh.a', content: '' }, { path: '.wh.nothere', content: '' }, { path: 'zzz', content: Buffer.alloc(100, 5) }] },
        ],
      },
    ],
  });
});

describe('ocimount efficiency', { concurrency: 4 }, () => {
  it("matches dive's Test_Analysis numbers for dive's test-docker-image.tar exactly", async () => {
    const r = await ocimount(['efficiency', '--json', DIVE]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.efficiency, 0.9844212134184309);
    assert.equal(doc.sizeBytes, 1220598);
    assert.equal(doc.userSizeBytes, 66237);
    assert.equal(doc.wastedBytes, 32025);
    assert.equal(doc.userWastedPercent, 0.4834911001404049);
    assert.deepEqual(doc.inefficiencies, [
      { path: '/root/saved.txt', count: 2, cumulativeSize: 12810 },
      { path: '/root/example/somefile1.txt', count: 2, cumulativeSize: 12810 },
      { path: '/root/example/somefile3.txt', count: 2, cumulativeSize: 6405 },
    ]);
  });

  it('prints the analysis the way dive --ci does', async () => {
    const r = await ocimount(['efficiency', DIVE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'Analysis:',
        '  efficiency:        98.44 %',
        '  wastedBytes:       32025 bytes (32 kB)',
        '  userWastedPercent: 48.35 %',
        '',
        'Inefficient Files:',
        '  Count  Wasted Space  File Path',
        '  2      13 kB         /root/saved.txt',
        '  2      13 kB         /root/example/somefile1.txt',
        '  2      6.4 kB        /root/example/somefile3.txt',
        '',
      ].join('\n'),
    );
  });

  // dive's evaluator_test.go cases for the same image.
  for (const [name, eff, bytes, pct, pass, statuses] of [
    ['allFail', '0.99', '1B', '0.01', false, ['FAIL', 'FAIL', 'FAIL']],
    ['allPass', '0.9', '50kB', '0.5', true, ['PASS', 'PASS', 'PASS']],
    ['allDisabled', 'disabled', 'disabled', 'disabled', true, ['SKIP', 'SKIP', 'SKIP']],
    ['mixedResults', '0.9', '1B', '0.5', false, ['PASS', 'FAIL', 'PASS']],
  ] as const) {
    it(`gates as dive's evaluator test "${name}": exit ${pass ? 0 : 1}, one PASS/FAIL line per gate`, async () => {
      const r = await ocimount(['efficiency', DIVE, '--lowest-efficiency', eff, '--highest-wasted-bytes', bytes, '--highest-user-wasted-percent', pct]);
      assert.equal(r.code, pass ? 0 : 1, r.stderr);
      const lines = r.stdout.split('\n');
      const gate = (n: string) => lines.find((l) => new RegExp(`^  (PASS|FAIL|SKIP)  ${n} `).test(l))?.trim().split(' ')[0];
      assert.deepEqual([gate('lowestEfficiency'), gate('highestWastedBytes'), gate('highestUserWastedPercent')], statuses);
      assert.match(lines.filter(Boolean).at(-1)!, pass ? /^PASS \[/ : /^FAIL \[/);
    });
  }

  it('--ci uses dive --ci defaults (efficiency 0.9, user wasted 0.1): this image fails on user waste', async () => {
    const r = await ocimount(['efficiency', '--ci', DIVE]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^ {2}FAIL {2}highestUserWastedPercent \(too many bytes wasted, relative to the user bytes added \(%-user-wasted-bytes=0\.48 > threshold=0\.1\)\)$/m);
    assert.match(r.stdout, /^ {2}SKIP {2}highestWastedBytes \(disabled\)$/m);
    assert.match(r.stdout, /^FAIL \[pass:1 fail:1 skip:1\]$/m);
  });

  it("--highest-wasted-bytes takes go-humanize's units: 32kB fails (32,000 < 32,025), 32KiB passes", async () => {
    assert.equal((await ocimount(['efficiency', DIVE, '--highest-wasted-bytes', '32kB'])).code, 1);
    assert.equal((await ocimount(['efficiency', DIVE, '--highest-wasted-bytes', '32 KiB'])).code, 0);
    assert.equal((await ocimount(['efficiency', DIVE, '--highest-wasted-bytes', '32025'])).code, 0);
    assert.equal((await ocimount(['efficiency', DIVE, '--highest-wasted-bytes', '32024'])).code, 1);
    const bad = await ocimount(['efficiency', DIVE, '--highest-wasted-bytes', '20XB']);
    assert.equal(bad.code, 2);
    assert.equal((await ocimount(['efficiency', DIVE, '--lowest-efficiency', '1.5'])).code, 2);
  });

  it("dive's one-layer OCI test images: nothing wasted, efficiency 1", async () => {
    for (const f of ['dive-oci-gzip.tar', 'dive-oci-zstd.tar', 'dive-oci-uncompressed.tar']) {
      const doc = JSON.parse((await ocimount(['efficiency', '--json', path.join(FIXTURES, f)])).stdout);
      assert.deepEqual([doc.efficiency, doc.sizeBytes, doc.wastedBytes, doc.inefficiencies], [1, 11189, 0, []], f);
    }
  });

  it('a built image: rewrites, a directory whiteout and dive\'s quirks, computed by hand', async () => {
    const doc = JSON.parse((await ocimount(['efficiency', '--json', built])).stdout);
    // smallest sizes: a/big 1000, d/x 300, d/y 400, d 700, a 0, nothere -1 = 2399
    // all sizes:      a/big 3000, d/x 300, d/y 400, d 700, a 0, nothere 0  = 4400
    assert.equal(doc.efficiency, 2399 / 4400);
    assert.equal(doc.wastedBytes, 3000);
    assert.equal(doc.sizeBytes, 1700 + 2000 + 0 + 100);
    assert.equal(doc.userSizeBytes, 2100);
    assert.equal(doc.userWastedPercent, 3000 / 2100);
    assert.deepEqual(doc.inefficiencies, [{ path: '/a/big', count: 2, cumulativeSize: 3000 }]);
  });

  it('reads an archive from standard input too', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync('bash', ['-c', `cat "${DIVE}" | "${process.execPath}" "${path.resolve(__dirname, '..', '..', 'bin', 'ocimount')}" efficiency --json -`]);
    assert.equal(JSON.parse(out.toString()).wastedBytes, 32025);
  });
});
