import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, isMounted, ocimount, run, tempDir, type RunResult } from './helpers/mount-harness';

/*
 * Errors that come from this machine, not from the archive or the command line, say what is
 * wrong and have their own exit code; the mount says which layers it shows; `ocimount list`
 * and `umount --all` know the mounts ocimount started.
 *
 * Every mount here is started with a TMPDIR of the test's own (so list and umount --all see only
 * this test's mounts), and ended in `finally` by its own server pid and a lazy unmount.
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const IS_ROOT = process.getuid?.() === 0;
const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function dir(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Ends what a background mount left: its server (by the pid it printed) and the mount. */
async function endMount(mnt: string, pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
}

const serverPid = (out: string) => Number(/server pid (\d+)/.exec(out)?.[1]);

describe('environment errors', { concurrency: 2 }, () => {
  it('a mountpoint that is not empty says so (exit 4); --nonempty mounts over it', async () => {
    const tmp = dir('env-tmp');
    const mnt = dir('env-nonempty');
    fs.writeFileSync(path.join(mnt, 'already-here'), 'x');
    const r = await cli([DIVE, mnt], { TMPDIR: tmp });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^ocimount: \S+: mountpoint is not empty \(1 entry\); mount on an empty folder, or add --nonempty/);
    assert.doesNotMatch(r.stderr, /fuse failed/);
    let pid = NaN;
    try {
      const ok = await cli(['--nonempty', DIVE, mnt], { TMPDIR: tmp });
      assert.equal(ok.code, 0, ok.stderr);
      pid = serverPid(ok.stdout);
      assert.ok(fs.existsSync(path.join(mnt, 'rootfs', 'root', 'saved.txt')));
      assert.ok(!fs.existsSync(path.join(mnt, 'already-here')));
      assert.equal((await cli(['umount', mnt], { TMPDIR: tmp })).code, 0);
      assert.ok(fs.existsSync(path.join(mnt, 'already-here')));
    } finally {
      await endMount(mnt, Number.isNaN(pid) ? [] : [pid]);
    }
  });

  it('no permission on /dev/fuse is a permission problem, not "modprobe fuse" (exit 4)', async (t) => {
    const st = fs.statSync('/dev/fuse', { throwIfNoEntry: false });
    if (!IS_ROOT || !st || (st.mode & 0o006) === 0o006 || !fs.existsSync('/usr/bin/setpriv')) {
      t.skip('needs root, setpriv and a /dev/fuse that other users may not open');
      return;
    }
    const mnt = dir('env-perm');
    fs.chmodSync(mnt, 0o777);
    const tmp = dir('env-perm-tmp');
    fs.chmodSync(tmp, 0o777);
    const r = await run('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'env', `TMPDIR=${tmp}`, process.execPath, BIN, DIVE, mnt]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^ocimount: \/dev\/fuse: permission denied for uid 65534 .*a permission problem, not a missing module/);
    assert.doesNotMatch(r.stderr, /modprobe/);
  });

  it('--layer 99 and --layers 9 out of range exit with the same code (1, not found)', async () => {
    const one = await ocimount(['ls', '--layer', '99', DIVE]);
    const many = await ocimount(['ls', '--layers', '..99', DIVE]);
    assert.equal(one.code, 1, one.stderr);
    assert.equal(many.code, 1, many.stderr);
    assert.match(many.stderr, /layer 99 does not exist \(the image has layers 0-13\)/);
  });

  it('a checkout without dist/ (or while a build rewrites it) says so, exit 70, and --help documents 70', async () => {
    const fake = dir('env-nobuild');
    fs.mkdirSync(path.join(fake, 'bin'));
    fs.copyFileSync(BIN, path.join(fake, 'bin', 'ocimount'));
    const missing = await run(process.execPath, [path.join(fake, 'bin', 'ocimount'), 'ls', DIVE]);
    assert.equal(missing.code, 70);
    assert.match(missing.stderr, /^ocimount: not built: dist\/ is missing in .*run 'npm run build' there and try again \(exit 70\)\n$/);
    fs.mkdirSync(path.join(fake, 'dist', 'src', 'cli'), { recursive: true });
    fs.writeFileSync(path.join(fake, 'dist', 'src', 'cli', 'main.js'), "require('./common');\n");
    const partial = await run(process.execPath, [path.join(fake, 'bin', 'ocimount'), 'ls', DIVE]);
    assert.equal(partial.code, 70, partial.stderr);
    assert.match(partial.stderr, /^ocimount: not built: dist\/ is incomplete in /);
    assert.equal(partial.stderr.split('\n').filter(Boolean).length, 1);
    const help = await ocimount(['--help']);
    assert.match(help.stdout, /^ {2}70 {2}ocimount itself: not built/m);
    assert.match(help.stdout, /\/dev\/fuse not permitted for this\n? *user \(a permission problem\)/);
  });
});

describe('the mount says what it shows; list and umount --all', () => {
  it('--layers: the "mounted" line and the history file say which layers are applied', async () => {
    const tmp = dir('layers-tmp');
    const mnt = dir('layers-mnt');
    let pid = NaN;
    try {
      const r = await cli(['--layers', '..2', DIVE, mnt], { TMPDIR: tmp });
      assert.equal(r.code, 0, r.stderr);
      pid = serverPid(r.stdout);
      assert.match(r.stdout, /^mounted \S+ \(dive-test:latest sha256:75ae28b8ebf8, layers 0-2 of 0-13 applied \(--layers \.\.2\), \d+ paths\) at /);
      const history = fs.readFileSync(path.join(mnt, 'history'), 'utf8').split('\n');
      assert.equal(history[0], '# rootfs/ applies layers 0-2 of 0-13 (--layers ..2); * marks a layer not applied');
      assert.match(history[2], /^0\tsha256:23bc2b70b201/);
      assert.match(history[5], /^3\*\tsha256:4abad3abe3cb/);
    } finally {
      await endMount(mnt, Number.isNaN(pid) ? [] : [pid]);
    }
  });

  it('list shows mountpoint, archive, image and server pid; umount --all ends them and their logs', async () => {
    const tmp = dir('list-tmp');
    const a = dir('list-a');
    const b = dir('list-b');
    const pids: number[] = [];
    try {
      for (const [mnt, extra] of [[a, []], [b, ['--layers', '..1']]] as const) {
        const r = await cli([...extra, DIVE, mnt], { TMPDIR: tmp });
        assert.equal(r.code, 0, r.stderr);
        pids.push(serverPid(r.stdout));
      }
      const list = await cli(['list'], { TMPDIR: tmp });
      assert.equal(list.code, 0, list.stderr);
      const rows = list.stdout.trim().split('\n').map((l) => l.split(/\s{2,}/));
      assert.deepEqual(rows[0], ['MOUNTPOINT', 'ARCHIVE', 'IMAGE', 'LAYERS', 'PID']);
      const byMnt = new Map(rows.slice(1).map((r) => [r[0], r]));
      assert.deepEqual(byMnt.get(a), [a, DIVE, 'dive-test:latest sha256:75ae28b8ebf8', '14 layers', String(pids[0])]);
      assert.deepEqual(byMnt.get(b), [b, DIVE, 'dive-test:latest sha256:75ae28b8ebf8', 'layers 0-1 of 0-13 applied (--layers ..1)', String(pids[1])]);
      const json = JSON.parse((await cli(['list', '--json'], { TMPDIR: tmp })).stdout);
      assert.deepEqual(json.map((m: { pid: number }) => m.pid).sort(), [...pids].sort());
      const logs = fs.readdirSync(path.join(tmp, `ocimount-${process.getuid?.()}`)).filter((f) => f.endsWith('.log'));
      assert.equal(logs.length, 2);

      const all = await cli(['umount', '--all'], { TMPDIR: tmp });
      assert.equal(all.code, 0, all.stderr);
      assert.ok(!isMounted(a) && !isMounted(b));
      assert.deepEqual(fs.readdirSync(path.join(tmp, `ocimount-${process.getuid?.()}`)), [], 'records and logs of ended mounts are removed');
      assert.equal((await cli(['list'], { TMPDIR: tmp })).stdout, 'no ocimount mounts\n');
    } finally {
      await endMount(a, pids);
      await endMount(b, []);
    }
  });
});

