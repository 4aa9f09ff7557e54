import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { run, tempDir, withMount } from './helpers/mount-harness';

/*
 * A built image with every kind of entry, mounted and read with the tools people use on it:
 * stat, readlink, getfattr, find -type, cp -a, du, diff -r.
 */

const work = tempDir('features');
const archive = path.join(work, 'features.tar');
const big = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;

before(async () => {
  await buildArchive(archive, {
    layout: 'docker25',
    images: [
      {
        tags: ['features:1'],
        layers: [
          {
            entries: [
              { path: 'bin/', type: 'dir' },
              { path: 'bin/tool', content: 'TOOL', mode: 0o4755, uid: 0, gid: 0 },
              { path: 'bin/tool-link', type: 'link', target: 'bin/tool' },
              { path: 'bin/ping', content: 'PING', mode: 0o755, xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 'user.origin': 'test' } },
              { path: 'dev/', type: 'dir' },
              { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
              { path: 'dev/loop0', type: 'block', devmajor: 7, devminor: 0, mode: 0o660 },
              { path: 'run/', type: 'dir' },
              { path: 'run/initctl', type: 'fifo', mode: 0o600 },
              { path: 'home/app/', type: 'dir', uid: 1000, gid: 1000, mode: 0o700 },
              { path: 'home/app/secret', content: 'only for app', uid: 1000, gid: 1000, mode: 0o600 },
              { path: 'data/big.bin', content: big },
              { path: 'etc/alternatives/editor', type: 'symlink', target: '/usr/bin/vi' },
              { path: 'mtime-file', content: 'm', mtime: new Date('2001-02-03T04:05:06Z') },
            ],
          },
        ],
      },
    ],
  });
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

describe('mount: entry kinds and tools', () => {
  it('stat, readlink, getfattr, find -type and big reads show the image as built', async () => {
    await withMount(archive, ['--rootfs-only'], async ({ mnt }) => {
      const p = (x: string) => path.join(mnt, x);
      const st = await run('stat', ['-c', '%n %F %a %u %g %h %t %T', p('bin/tool'), p('dev/null'), p('dev/loop0'), p('run/initctl'), p('home/app/secret')]);
      assert.deepEqual(st.stdout.trim().split('\n').map((l) => l.replace(mnt + '/', '')), [
        'bin/tool regular file 4755 0 0 2 0 0',
        'dev/null character special file 666 0 0 1 1 3',
        'dev/loop0 block special file 660 0 0 1 7 0',
        'run/initctl fifo 600 0 0 1 0 0',
        'home/app/secret regular file 600 1000 1000 1 0 0',
      ]);
      assert.equal((await run('readlink', [p('etc/alternatives/editor')])).stdout, '/usr/bin/vi\n');
      assert.equal((await run('stat', ['-c', '%Y', p('mtime-file')])).stdout.trim(), String(Date.parse('2001-02-03T04:05:06Z') / 1000));
      const attrs = await run('getfattr', ['-d', '-m', '-', '-e', 'hex', p('bin/ping')]);
      assert.match(attrs.stdout, /security\.capability=0x0100000200200000/);
      assert.match(attrs.stdout, /user\.origin=0x74657374/);
      const types = async (t: string) => (await run('find', [mnt, '-type', t])).stdout.split('\n').filter(Boolean).map((l) => l.slice(mnt.length)).sort();
      assert.deepEqual(await types('c'), ['/dev/null']);
      assert.deepEqual(await types('b'), ['/dev/loop0']);
      assert.deepEqual(await types('p'), ['/run/initctl']);
      assert.deepEqual(await types('l'), ['/etc/alternatives/editor']);
      const same = await run('find', [mnt, '-samefile', p('bin/tool')]);
      assert.equal(same.stdout.split('\n').filter(Boolean).length, 2);
      // Reads of every size and offset return the stored bytes (dd with odd block sizes).
      const whole = await run('sha256sum', [p('data/big.bin')]);
      const { createHash } = await import('node:crypto');
      assert.equal(whole.stdout.split(' ')[0], createHash('sha256').update(big).digest('hex'));
      const part = await run('sh', ['-c', `dd if=${p('data/big.bin')} bs=4099 skip=300 count=3 2>/dev/null | sha256sum`]);
      const expect = big.subarray(4099 * 300, 4099 * 303);
      assert.equal(part.stdout.split(' ')[0], createHash('sha256').update(expect).digest('hex'));
      // 0600 files owned by another uid are still readable by the user who mounted.
      assert.equal((await run('cat', [p('home/app/secret')])).stdout, 'only for app');
    });
  });

  it('cp -a out of the mount keeps modes, links and mtimes; du -s and diff -r agree with the copy', async () => {
    const copy = tempDir('cpa');
    try {
      await withMount(archive, ['--rootfs-only'], async ({ mnt }) => {
        const cp = await run('cp', ['-a', `${mnt}/bin`, `${mnt}/data`, `${mnt}/etc`, `${mnt}/home`, `${mnt}/mtime-file`, copy]);
        assert.equal(cp.code, 0, cp.stderr);
        for (const dir of ['bin', 'data', 'etc', 'home']) {
          const diff = await run('diff', ['-r', '--no-dereference', path.join(mnt, dir), path.join(copy, dir)]);
          assert.equal(diff.code, 0, diff.stdout + diff.stderr);
        }
        const a = await run('stat', ['-c', '%a %Y %h', path.join(copy, 'bin/tool'), path.join(copy, 'mtime-file')]);
        const b = await run('stat', ['-c', '%a %Y %h', path.join(mnt, 'bin/tool'), path.join(mnt, 'mtime-file')]);
        assert.equal(a.stdout, b.stdout);
        const du = await run('du', ['-s', '--apparent-size', '-B1', path.join(mnt, 'data')]);
        assert.ok(Number(du.stdout.split('\t')[0]) >= big.length);
      });
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('statfs reports a read-only filesystem with the image\'s totals', async () => {
    await withMount(archive, [], async ({ mnt }) => {
      const sf = await run('stat', ['-f', '-c', '%b %S %c %l', mnt]);
      const [blocks, bsize, files, namemax] = sf.stdout.trim().split(' ').map(Number);
      assert.ok(blocks * bsize >= big.length, sf.stdout);
      assert.ok(files >= 15);
      assert.equal(namemax, 255);
      const ro = await run('findmnt', ['-no', 'OPTIONS', mnt]);
      assert.match(ro.stdout, /^ro,/);
    });
  });
});
