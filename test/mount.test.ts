import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, isMounted, ocimount, run, stopServer, tempDir, withMount } from './helpers/mount-harness';
import { referenceExtract } from './helpers/reference-extract';

/*
 * Real FUSE mounts served by a child `ocimount --foreground`, checked with real processes.
 * Every test ends its own server by PID and leaves nothing mounted (see withMount).
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** The layer tars of a legacy docker save, in manifest order, extracted to a temp folder. */
async function legacyLayerFiles(archive: string): Promise<string[]> {
  const dir = tempDir('layers');
  cleanup.push(dir);
  await run('tar', ['-xf', archive, '-C', dir]);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  return manifest[0].Layers.map((l: string) => path.join(dir, l));
}

describe('ocimount IMAGE MOUNTPOINT', () => {
  it('shows rootfs, layers, config, manifest and history; rootfs equals a whiteout-aware extraction', async () => {
    const reference = await referenceExtract(await legacyLayerFiles(DIVE));
    cleanup.push(reference);
    await withMount(DIVE, [], async ({ mnt }) => {
      const top = await run('ls', [mnt]);
      assert.deepEqual(top.stdout.split('\n').filter(Boolean), ['config.json', 'history', 'layers', 'manifest.json', 'rootfs']);
      const diff = await run('diff', ['-r', '--no-dereference', reference, path.join(mnt, 'rootfs')]);
      assert.equal(diff.code, 0, `diff -r against the reference extraction:\n${diff.stdout}${diff.stderr}`);
      // Whiteouts: the directory and the file are gone, nothing named .wh.* shows.
      assert.equal((await run('ls', [path.join(mnt, 'rootfs/root/example')])).code, 2);
      const wh = await run('find', [path.join(mnt, 'rootfs'), '-name', '.wh.*']);
      assert.equal(wh.stdout, '');
      // Modes, owners and sizes as in the image.
      const st = await run('stat', ['-c', '%a %u %g %s %F', path.join(mnt, 'rootfs/etc/shadow'), path.join(mnt, 'rootfs/home'), path.join(mnt, 'rootfs/root/saved.txt')]);
      assert.deepEqual(st.stdout.trim().split('\n'), ['600 0 0 243 regular file', '755 65534 65534 0 directory', '755 0 0 6405 regular file']);
      // 0600 root-owned files still read for the mounting user.
      assert.match((await run('cat', [path.join(mnt, 'rootfs/etc/shadow')])).stdout, /^root:/);
      // Hard links share an inode and count their links.
      const same = await run('find', [path.join(mnt, 'rootfs/bin'), '-samefile', path.join(mnt, 'rootfs/bin/[')]);
      assert.equal(same.stdout.split('\n').filter(Boolean).length, 393);
      const links = await run('stat', ['-c', '%h %i', path.join(mnt, 'rootfs/bin/['), path.join(mnt, 'rootfs/bin/ls')]);
      const [a, b] = links.stdout.trim().split('\n');
      assert.equal(a, b);
      assert.match(a, /^393 /);
      // Each layer alone, whiteout markers included, under its diff_id and its position.
      const layers = (await run('ls', [path.join(mnt, 'layers')])).stdout.split('\n').filter(Boolean);
      assert.equal(layers.filter((l) => l.startsWith('sha256:')).length, 14);
      assert.equal((await run('readlink', [path.join(mnt, 'layers/9')])).stdout.trim().slice(0, 7), 'sha256:');
      assert.equal((await run('ls', ['-A', path.join(mnt, 'layers/9/root')])).stdout.trim(), '.wh.example');
      assert.equal((await run('stat', ['-c', '%a', path.join(mnt, 'layers/4/root/example/somefile1.txt')])).stdout.trim(), '444');
      const history = fs.readFileSync(path.join(mnt, 'history'), 'utf8');
      assert.equal(history.trim().split('\n').length, 15);
      const config = JSON.parse(fs.readFileSync(path.join(mnt, 'config.json'), 'utf8'));
      assert.equal(config.rootfs.diff_ids.length, 14);
      assert.ok(Array.isArray(JSON.parse(fs.readFileSync(path.join(mnt, 'manifest.json'), 'utf8')).Layers));
    });
  });

  it('refuses every write with EROFS and reports a read-only filesystem', async () => {
    await withMount(DIVE, [], async ({ mnt }) => {
      const rootfs = path.join(mnt, 'rootfs');
      for (const [cmd, args] of [
        ['touch', [path.join(rootfs, 'new-file')]],
        ['mkdir', [path.join(rootfs, 'new-dir')]],
        ['rm', ['-f', path.join(rootfs, 'somefile.txt')]],
        ['chmod', ['777', path.join(rootfs, 'somefile.txt')]],
        ['mv', [path.join(rootfs, 'somefile.txt'), path.join(rootfs, 'moved.txt')]],
        ['ln', ['-s', 'x', path.join(rootfs, 'link')]],
        ['sh', ['-c', `echo hi >> ${path.join(rootfs, 'somefile.txt')}`]],
      ] as const) {
        const r = await run(cmd, [...args]);
        assert.notEqual(r.code, 0, `${cmd} should fail`);
        assert.match(r.stderr, /Read-only file system/, `${cmd}: ${r.stderr}`);
      }
      const df = await run('stat', ['-f', '-c', '%T', mnt]);
      assert.equal(df.code, 0);
      const mountLine = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt)!;
      assert.match(mountLine, / ro[, ]/);
      assert.match(mountLine, /fuse\.ocimount/);
    });
  });

  it('--rootfs-only puts the merged tree at the mountpoint; --layers shows the image as of a layer', async () => {
    await withMount(DIVE, ['--rootfs-only'], async ({ mnt }) => {
      const ls = (await run('ls', [mnt])).stdout.split('\n').filter(Boolean);
      assert.ok(ls.includes('bin') && ls.includes('etc') && !ls.includes('rootfs'));
    });
    await withMount(DIVE, ['--layers', '..7', '--rootfs-only'], async ({ mnt }) => {
      // Layer 7 deleted somefile3.txt; layer 9 (not applied) would delete root/example.
      const r = await run('ls', [path.join(mnt, 'root/example')]);
      assert.deepEqual(r.stdout.split('\n').filter(Boolean), ['really', 'somefile1.txt', 'somefile2.txt']);
    });
  });

  it('SIGTERM unmounts cleanly and the server exits 0', async () => {
    const mnt = tempDir('sigterm');
    const server = spawn(process.execPath, [BIN, '--foreground', DIVE, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout!.on('data', (d) => String(d).includes('Ctrl-C') && resolve());
        server.on('exit', (c) => reject(new Error(`exited ${c}`)));
      });
      assert.ok(isMounted(mnt));
      const code = await new Promise<number | null>((resolve) => {
        server.once('exit', (c) => resolve(c));
        server.kill('SIGTERM');
      });
      assert.equal(code, 0);
      assert.equal(isMounted(mnt), false);
    } finally {
      await stopServer(server, mnt);
      fs.rmdirSync(mnt);
    }
  });

  it('backgrounds itself once ready, and `ocimount umount` ends it', async () => {
    const mnt = tempDir('bg');
    let pid = 0;
    try {
      const r = await ocimount([DIVE, mnt]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^mounted .* at /);
      pid = Number(/server pid (\d+)/.exec(r.stdout)?.[1]);
      assert.ok(pid > 0);
      assert.match((await run('cat', [path.join(mnt, 'rootfs/root/saved.txt')])).stdout, /\S/);
      const u = await ocimount(['umount', mnt]);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(isMounted(mnt), false);
      // The server notices the unmount and exits by itself.
      for (let i = 0; i < 50 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(processAlive(pid), false);
    } finally {
      if (pid && processAlive(pid)) process.kill(pid, 'SIGTERM');
      if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
      fs.rmdirSync(mnt);
    }
  });
});

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('mountpoint errors', () => {
  it('a missing mountpoint, a file, a busy mountpoint, and a dead FUSE mount each get one line', async () => {
    const missingParent = tempDir('missing');
    cleanup.push(missingParent);
    const missing = path.join(missingParent, 'nope');
    let r = await ocimount([DIVE, missing]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /mountpoint does not exist \(create it: mkdir -p/);

    const fileParent = tempDir('file');
    cleanup.push(fileParent);
    const file = path.join(fileParent, 'f');
    fs.writeFileSync(file, '');
    r = await ocimount([DIVE, file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not a directory/);

    await withMount(DIVE, [], async ({ mnt }) => {
      // Not a typo but this machine's state: an environment error.
      const again = await ocimount([DIVE, mnt]);
      assert.equal(again.code, 4);
      assert.match(again.stderr, /already mounted there/);
    });

    // A dead mount: a FUSE server without auto_unmount killed with SIGKILL.
    const dead = tempDir('dead');
    const script = `const F=require('fuse-native');const f=new F(${JSON.stringify(dead)},{},{});f.mount(e=>{if(e)throw e;console.log('up')})`;
    const server = spawn(process.execPath, ['-e', script], { cwd: path.dirname(BIN), stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_PATH: path.join(path.dirname(BIN), '..', 'node_modules') } });
    try {
      await new Promise<void>((resolve) => server.stdout!.on('data', () => resolve()));
      server.kill('SIGKILL');
      await new Promise((resolve) => server.once('exit', resolve));
      assert.ok(isMounted(dead));
      r = await ocimount([DIVE, dead]);
      assert.equal(r.code, 4);
      assert.match(r.stderr, /Transport endpoint is not connected.*ocimount umount/);
      const u = await ocimount(['umount', dead]);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(isMounted(dead), false);
    } finally {
      await stopServer(server, dead);
      fs.rmdirSync(dead);
    }
  });

  it('an archive that is not an image fails before mounting, with exit code 3', async () => {
    const mnt = tempDir('notimage');
    const junkParent = tempDir('junk');
    cleanup.push(junkParent);
    const junk = path.join(junkParent, 'junk.tar');
    fs.writeFileSync(junk, 'this is not a tar file at all'.repeat(40));
    try {
      const r = await ocimount([junk, mnt]);
      assert.equal(r.code, 3);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(isMounted(mnt), false);
    } finally {
      fs.rmdirSync(mnt);
    }
  });
});
