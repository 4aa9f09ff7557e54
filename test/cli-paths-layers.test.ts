import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, tempDir, type RunResult } from './helpers/mount-harness';

/*
 * Paths inside the image as people type them: relative to the config's WorkingDir, with a
 * trailing slash meaning "a directory"; and what "no such file" should say when the layers know
 * better (a later layer deleted it, or --layer names a layer without it), with find --all-layers
 * listing every copy in every layer.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

let img: string;
let plain: string;
before(async () => {
  const dir = tempDir('paths-layers');
  cleanup.push(dir);
  img = path.join(dir, 'app.tar');
  await buildArchive(img, {
    layout: 'docker25',
    images: [
      {
        tags: ['app:1'],
        config: { WorkingDir: '/app', Cmd: ['./server'] },
        layers: [
          {
            createdBy: 'COPY . /app # buildkit',
            entries: [
              { path: 'app/', type: 'dir' },
              { path: 'app/server', content: 'ELF-server', mode: 0o755 },
              { path: 'app/trace.log', content: 'trace v1\n' },
              { path: 'tmp/', type: 'dir' },
              { path: 'tmp/build-scratch.txt', content: 'scratch bytes\n' },
            ],
          },
          { createdBy: 'RUN rm /tmp/build-scratch.txt # buildkit', entries: [{ path: 'tmp/.wh.build-scratch.txt', content: '' }] },
          { createdBy: 'RUN ./server --trace # buildkit', entries: [{ path: 'app/trace.log', content: 'trace v2\n' }] },
        ],
      },
    ],
  });
  plain = path.join(dir, 'plain.tar');
  await buildArchive(plain, { layout: 'docker25', images: [{ layers: [{ entries: [{ path: 'etc/hostname', content: 'box\n' }] }] }] });
});

function oneError(r: RunResult, code: number): string {
  assert.equal(r.code, code, r.stderr);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  return r.stderr;
}

describe('relative paths resolve against WorkingDir', { concurrency: 4 }, () => {
  it('cat IMG ./server reads /app/server (WorkingDir /app, Cmd ["./server"])', async () => {
    const r = await ocimount(['cat', img, './server']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ELF-server');
    assert.equal((await ocimount(['cat', img, 'trace.log'])).stdout, 'trace v2\n');
  });
  it('ls, find, extract and blame take relative paths too', async () => {
    const ls = await ocimount(['ls', img, '.']);
    assert.deepEqual(ls.stdout.split('\n').filter(Boolean), ['server', 'trace.log']);
    const find = await ocimount(['find', img, '.', '-name', 'server']);
    assert.equal(find.stdout, '/app/server\n');
    const out = tempDir('rel-extract');
    cleanup.push(out);
    const ex = await ocimount(['extract', img, './server', '-o', out]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(fs.readFileSync(path.join(out, 'app', 'server'), 'utf8'), 'ELF-server');
    const blame = await ocimount(['blame', img, 'trace.log']);
    assert.equal(blame.code, 0, blame.stderr);
    assert.match(blame.stdout, /^0 .*A {2}\/app\/trace\.log/m);
    assert.match(blame.stdout, /^2 .*M {2}\/app\/trace\.log/m);
  });
  it('without a WorkingDir a relative path starts at /', async () => {
    assert.equal((await ocimount(['cat', plain, 'etc/hostname'])).stdout, 'box\n');
  });
});

describe('a trailing slash asks for a directory', () => {
  it('cat IMG /app/trace.log/ is "not a directory", exit 1', async () => {
    const r = await ocimount(['cat', img, '/app/trace.log/']);
    assert.equal(r.stdout, '');
    assert.match(oneError(r, 1), /^ocimount: \/app\/trace\.log\/: not a directory/);
  });
});

describe('what a missing path says', { concurrency: 4 }, () => {
  it('a file a later layer deleted: which layer, which step, and which layer still has the bytes', async () => {
    const r = await ocimount(['cat', img, '/tmp/build-scratch.txt']);
    const msg = oneError(r, 1);
    assert.match(msg, /\/tmp\/build-scratch\.txt: no such file in the image: deleted by layer 1 \(sha256:[0-9a-f]{12}, RUN rm \/tmp\/build-scratch\.txt # buildkit\)/);
    assert.match(msg, /layer 0 still holds it: ocimount cat --layer 0 \S+app\.tar \/tmp\/build-scratch\.txt/);
    const again = await ocimount(['cat', '--layer', '0', img, '/tmp/build-scratch.txt']);
    assert.equal(again.stdout, 'scratch bytes\n');
  });
  it('--layer N on a path the image has but layer N does not: says so and where it is', async () => {
    const msg = oneError(await ocimount(['cat', '--layer', '1', img, '/app/server']), 1);
    assert.match(msg, /^ocimount: \/app\/server: not in layer 1 \(sha256:[0-9a-f]{12}\); the image has it from layer 0: ocimount cat --layer 0 /);
    const ls = oneError(await ocimount(['ls', '--layer', '2', img, '/app/server']), 1);
    assert.match(ls, /not in layer 2 .*from layer 0/);
  });
  it('a path no layer ever had is still plain "no such file"', async () => {
    assert.match(oneError(await ocimount(['cat', img, '/nope']), 1), /\/nope: no such file or directory in the image$/m);
  });
});

describe('find --all-layers', { concurrency: 4 }, () => {
  it('lists every occurrence with its layer and what the merged image shows', async () => {
    const r = await ocimount(['find', '--all-layers', img, '/', '-name', '*.*']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
    assert.deepEqual(rows, [
      ['LAYER', 'IN IMAGE', 'PATH'],
      ['0', 'replaced by 2', '/app/trace.log'],
      ['0', 'deleted by 1', '/tmp/build-scratch.txt'],
      ['1', 'whiteout', '/tmp/.wh.build-scratch.txt'],
      ['2', 'shown', '/app/trace.log'],
    ]);
  });
  it('--json carries layer, status and shown', async () => {
    const r = await ocimount(['find', '--all-layers', '--json', img, '/app', '-name', 'trace.log']);
    const hits = JSON.parse(r.stdout);
    assert.deepEqual(
      hits.map((h: { layer: number; path: string; shown: boolean; status: string; by?: number; size: number }) => [h.layer, h.path, h.shown, h.status, h.by, h.size]),
      [
        [0, '/app/trace.log', false, 'replaced', 2, 9],
        [2, '/app/trace.log', true, 'shown', undefined, 9],
      ],
    );
  });
});
