import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { isMounted, ocimount, tempDir, withMount } from './helpers/mount-harness';

/*
 * --platform is never silently wrong: it is checked against the selected image's config (os,
 * architecture, variant), also when the archive lists no platform at all (docker save of one
 * image), for the mount-free commands and for the mount.
 */

const work = tempDir('platform');
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** docker save of one amd64 image: manifest.json records no platform, only the config does. */
let amd64: string;
/** The same with an arm64/v8 config. */
let arm64: string;
/** A config whose architecture is empty: nothing to check against. */
let noArch: string;

before(async () => {
  const layers = [{ entries: [{ path: 'bin/sh', content: 'amd64 shell\n' }] }];
  amd64 = (await buildArchive(path.join(work, 'amd64.tar'), { layout: 'docker-legacy', images: [{ tags: ['x:1'], layers }] })).path;
  arm64 = (await buildArchive(path.join(work, 'arm64.tar'), { layout: 'docker25', images: [{ tags: ['x:1'], architecture: 'arm64', variant: 'v8', layers: [{ entries: [{ path: 'bin/sh', content: 'arm64 shell\n' }] }] }] })).path;
  noArch = (await buildArchive(path.join(work, 'noarch.tar'), { layout: 'docker-legacy', images: [{ architecture: '', layers }] })).path;
});

describe('--platform against the image config', () => {
  it('cat, ls, inspect: a platform the config does not have is exit 1 naming both, with no bytes', async () => {
    const cat = await ocimount(['cat', '--no-cache', '--platform', 'linux/arm64', amd64, '/bin/sh']);
    assert.equal(cat.code, 1, cat.stderr);
    assert.equal(cat.stdout, '');
    assert.equal(cat.stderr, `ocimount: ${amd64}: image 0 is linux/amd64, not linux/arm64\n`);
    for (const args of [['ls', amd64, '/bin'], ['inspect', amd64], ['find', amd64, '/']]) {
      const r = await ocimount([args[0], '--no-cache', '--platform', 'linux/arm64', ...args.slice(1)]);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stdout, '', args[0]);
      assert.match(r.stderr, /image 0 is linux\/amd64, not linux\/arm64\n$/, args[0]);
    }
    // The wrong variant of the right architecture is refused too; no variant asked takes any.
    const variant = await ocimount(['cat', '--no-cache', '--platform', 'linux/arm64/v9', arm64, '/bin/sh']);
    assert.equal(variant.code, 1, variant.stderr);
    assert.match(variant.stderr, /image 0 is linux\/arm64\/v8, not linux\/arm64\/v9\n$/);
    const os = await ocimount(['cat', '--no-cache', '--platform', 'windows/amd64', amd64, '/bin/sh']);
    assert.equal(os.code, 1);
    assert.match(os.stderr, /image 0 is linux\/amd64, not windows\/amd64\n$/);
  });

  it('the right platform (any spelling the config means) still reads', async () => {
    for (const [archive, platform, bytes] of [
      [amd64, 'linux/amd64', 'amd64 shell\n'],
      [arm64, 'linux/arm64', 'arm64 shell\n'],
      [arm64, 'linux/arm64/v8', 'arm64 shell\n'],
      [arm64, 'linux/aarch64', 'arm64 shell\n'],
    ]) {
      const r = await ocimount(['cat', '--no-cache', '--platform', platform, archive, '/bin/sh']);
      assert.equal(r.code, 0, `${platform}: ${r.stderr}`);
      assert.equal(r.stdout, bytes);
      assert.equal(r.stderr, '');
    }
    const diff = await ocimount(['diff', '--no-cache', '--platform', 'linux/arm64', amd64, arm64]);
    assert.equal(diff.code, 1, 'diff checks the first image too');
    assert.match(diff.stderr, /amd64\.tar: image 0 is linux\/amd64, not linux\/arm64/);
  });

  it('a config with no architecture: accepted with a warning that it could not be checked', async () => {
    const r = await ocimount(['cat', '--no-cache', '--platform', 'linux/arm64', noArch, '/bin/sh']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'amd64 shell\n');
    assert.equal(r.stderr, "ocimount: warning: image 0's config records no architecture (os linux); taking it as linux/arm64 unchecked\n");
  });

  it('the mount refuses a platform the config does not have, and mounts the one it has', async () => {
    const mnt = tempDir('platform-mnt');
    try {
      const r = await ocimount(['--no-cache', '--platform', 'linux/arm64', amd64, mnt]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, `ocimount: ${amd64}: image 0 is linux/amd64, not linux/arm64\n`);
      assert.ok(!isMounted(mnt));
    } finally {
      if (isMounted(mnt)) await ocimount(['umount', mnt]);
      fs.rmdirSync(mnt);
    }
    await withMount(amd64, ['--no-cache', '--platform', 'linux/amd64'], async ({ mnt: m }) => {
      assert.equal(fs.readFileSync(path.join(m, 'rootfs/bin/sh'), 'utf8'), 'amd64 shell\n');
    });
  });
});
