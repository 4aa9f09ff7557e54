import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES, isMounted, run, tempDir, withMount } from './helpers/mount-harness';

/*
 * Zero-message OPENDIR (native/fuse/fuse-native.c): the kernel's first OPENDIR is answered ENOSYS
 * and no OPENDIR or RELEASEDIR is sent after it; READDIRs arrive without a handle and the channel
 * wrapper gives them one of libfuse's. These tests hold it to the same listings as the round-trip
 * way (OCIMOUNT_FUSE_ZERO_OPENDIR=0), count the requests, check that a listing spread over many
 * READDIRs is built once, and that many readers at once all get whole, right listings.
 */

const DIRS = 60;
const BIG = 5000;

interface Report {
  readdirCalls: Record<string, number>;
  counters: { kernelOpendirs: number; dirHandlesMade: number; dirHandlesReused: number };
}

/** Starts test/helpers/dir-tree-server in a child; resolves once it is mounted. */
async function startServer(mnt: string, zero: boolean): Promise<{ server: ChildProcess; report: () => Promise<Report>; stop: () => Promise<void> }> {
  const server = spawn(process.execPath, [path.join(__dirname, 'helpers', 'dir-tree-server.js'), mnt, String(DIRS), String(BIG)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, OCIMOUNT_FUSE_ZERO_OPENDIR: zero ? '1' : '0' },
  });
  let stdout = '';
  let stderr = '';
  server.stdout!.on('data', (d) => (stdout += d));
  server.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  for (let i = 0; i < 300 && !stdout.includes('ready\n') && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (!stdout.includes('ready\n')) {
    server.kill('SIGKILL');
    throw new Error(`dir-tree-server did not mount: ${stderr}`);
  }
  const report = async (): Promise<Report> => {
    const before = stdout.length;
    server.stdin!.write('report\n');
    for (let i = 0; i < 200 && !stdout.slice(before).includes('\n'); i++) await new Promise((r) => setTimeout(r, 25));
    return JSON.parse(stdout.slice(before).split('\n')[0]) as Report;
  };
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
  };
  return { server, report, stop };
}

/** `find` of the mount, sorted; and the size of every directory as `ls -a` counts it. */
async function walk(mnt: string): Promise<{ paths: string[]; big: number }> {
  const found = await run('find', ['.'], { cwd: mnt });
  assert.equal(found.code, 0, found.stderr);
  const big = await run('sh', ['-c', 'ls -a big | wc -l'], { cwd: mnt });
  return { paths: found.stdout.trim().split('\n').sort(), big: Number(big.stdout.trim()) };
}

function expectedPaths(): string[] {
  const p = ['.', './big'];
  for (let i = 0; i < DIRS; i++) {
    const d = `./d${String(i).padStart(3, '0')}`;
    p.push(d, `${d}/sub`, `${d}/sub/a`, `${d}/sub/b`, `${d}/sub/c`);
    for (let f = 0; f < 10; f++) p.push(`${d}/f${f}`);
  }
  for (let i = 0; i < BIG; i++) p.push(`./big/entry-with-a-longish-name-${String(i).padStart(5, '0')}`);
  return p.sort();
}

describe('zero-message OPENDIR', () => {
  it('lists exactly what the round-trip way lists, with one OPENDIR in all instead of one per opendir', async () => {
    const want = expectedPaths();
    const seen: Record<string, Report> = {};
    for (const zero of [true, false]) {
      const mnt = tempDir('zero-opendir');
      const s = await startServer(mnt, zero);
      try {
        for (let pass = 0; pass < 2; pass++) {
          const w = await walk(mnt);
          assert.deepEqual(w.paths, want, `zero ${zero}, pass ${pass}`);
          assert.equal(w.big, BIG + 2);
        }
        seen[String(zero)] = await s.report();
      } finally {
        await s.stop();
        fs.rmdirSync(mnt);
      }
    }
    const dirs = 1 + 1 + DIRS * 2; // root, big, each dN and its sub
    const zero = seen.true.counters;
    const trips = seen.false.counters;
    // Round trips: every opendir of every pass (find and ls) is an OPENDIR.
    assert.ok(trips.kernelOpendirs >= 2 * dirs, `round-trip way: ${trips.kernelOpendirs} OPENDIRs`);
    assert.equal(trips.dirHandlesMade, 0);
    // Zero-message: the first OPENDIR is refused (a few more may be in flight at that moment).
    assert.ok(zero.kernelOpendirs >= 1 && zero.kernelOpendirs <= 4, `zero-message way: ${zero.kernelOpendirs} OPENDIRs`);
    assert.ok(zero.dirHandlesMade >= dirs, `${zero.dirHandlesMade} handles for ${dirs} directories`);
  });

  it('a listing the kernel reads in many READDIRs is built once, and once per directory when the kernel keeps it', async () => {
    const mnt = tempDir('zero-opendir');
    const s = await startServer(mnt, true);
    try {
      const first = await run('sh', ['-c', 'ls -f big | wc -l'], { cwd: mnt });
      assert.equal(Number(first.stdout.trim()), BIG + 2);
      const r = await s.report();
      assert.equal(r.readdirCalls['/big'], 1, `JS built /big's listing ${r.readdirCalls['/big']} times`);
      assert.ok(r.counters.dirHandlesReused >= 3, `${r.counters.dirHandlesReused} reuses: the big listing should take many READDIRs`);
      // Listed again: the kernel keeps listings (FOPEN_CACHE_DIR), so no READDIR at all.
      const made = r.counters.dirHandlesMade;
      await run('sh', ['-c', 'ls -f big >/dev/null; ls -f big >/dev/null'], { cwd: mnt });
      const again = await s.report();
      assert.equal(again.counters.dirHandlesMade, made);
      assert.equal(again.readdirCalls['/big'], 1);
    } finally {
      await s.stop();
      fs.rmdirSync(mnt);
    }
  });

  it('many readers at once, more than the wrapper keeps handles for, each get whole listings', async () => {
    const mnt = tempDir('zero-opendir');
    const s = await startServer(mnt, true);
    try {
      // 64 processes at once, half on the big listing, half on small ones: more READDIRs in flight
      // than the 32 kept handles, so some get handles of their own.
      const jobs = Array.from({ length: 64 }, (_, i) =>
        i % 2 === 0
          ? run('sh', ['-c', 'ls -f big | wc -l'], { cwd: mnt }).then((r) => assert.equal(Number(r.stdout.trim()), BIG + 2))
          : run('sh', ['-c', `ls -f d${String(i % DIRS).padStart(3, '0')} | sort | tr '\\n' ' '`], { cwd: mnt }).then((r) =>
              assert.equal(r.stdout.trim(), '. .. f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 sub'),
            ),
      );
      await Promise.all(jobs);
      const w = await walk(mnt);
      assert.deepEqual(w.paths, expectedPaths());
      assert.ok(s.server.exitCode === null, 'the server is still up');
    } finally {
      await s.stop();
      fs.rmdirSync(mnt);
    }
  });

  it('ocimount mounts list the same trees either way (rootfs, layers, whiteouts)', async () => {
    const archive = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
    const listings: string[] = [];
    for (const zero of ['1', '0']) {
      process.env.OCIMOUNT_FUSE_ZERO_OPENDIR = zero;
      try {
        listings.push(
          await withMount(archive, [], async (m) => {
            const r = await run('find', ['.', '-printf', '%p %y %s %m\\n'], { cwd: m.mnt });
            assert.equal(r.code, 0, r.stderr);
            return r.stdout.split('\n').sort().join('\n');
          }),
        );
      } finally {
        delete process.env.OCIMOUNT_FUSE_ZERO_OPENDIR;
      }
    }
    assert.ok(listings[0].split('\n').length > 20, 'the archive lists something');
    assert.equal(listings[0], listings[1]);
  });
});
