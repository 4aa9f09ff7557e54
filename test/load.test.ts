import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import {
  file,
  gzipBomb,
  hardlink,
  layer,
  measureOpen,
  prng,
  writeCompressedLayerArchive,
  writeDockerArchive,
  writeManyEntriesArchive,
  zstdBomb,
} from './helpers/hostile-build';
import { FIXTURES, isMounted, ocimount, run, tempDir, withMount } from './helpers/mount-harness';
import * as raw from './helpers/raw-tar';

/*
 * Issue 6, faults and load, and resource bounds: many readers on one mount for a while, readers
 * and servers killed mid-flight, failing reads beside good ones, index memory per entry at two
 * sizes, and decompression bombs. OCIMOUNT_LOAD_SECONDS sets how long the readers run (20 s by
 * default; `fuzz/fuzz.ts load` runs a full minute).
 */

const LOAD_SECONDS = Number(process.env.OCIMOUNT_LOAD_SECONDS ?? 20);
const work = tempDir('load');
after(() => fs.rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    if ((i & 63) === 0) x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> (i & 15)) & 0xff;
  }
  return b;
}

/** A busy image: 1,500 small files, a few big ones, overwrites, a whiteout, hard links, and a cut layer. */
function buildLoadImage(file0: string): { archive: string; huge: Buffer } {
  const needle = (i: number) => (i % 50 === 0 ? `\nNEEDLE-${i}\n` : '');
  const small: Buffer[] = [];
  for (let i = 0; i < 1500; i++) small.push(file(`data/f${i}`, Buffer.concat([pattern(((i * 997) % 20000) + 1, i), Buffer.from(needle(i))])));
  const huge = pattern(64 * 1024 * 1024, 99);
  const layer0 = layer(
    ...small,
    ...[0, 1, 2, 3].map((k) => file(`big/blob-${k}`, pattern(8 * 1024 * 1024, 100 + k))),
    file('big/huge.bin', huge),
  );
  const changed: Buffer[] = [];
  for (let i = 0; i < 1500; i += 10) changed.push(file(`data/f${i}`, Buffer.concat([pattern(3000 + i, 5000 + i), Buffer.from(needle(i))])));
  const layer1 = layer(...changed, file('data/.wh.f7'), ...[1, 2, 3, 11].map((j) => hardlink(`links/h${j}`, `data/f${j}`)));
  // A layer cut in the data of a file that claims 1 GiB: that file fails, the rest must not.
  const cutLayer = layer(file('broken/ok', 'fine\n'), raw.header({ name: 'broken/huge', size: 1024 ** 3, mtime: 1700000000 }), pattern(4096, 7)).subarray(0, 512 * 3 + 4096);
  writeDockerArchive(file0, [layer0, layer1, cutLayer]);
  return { archive: file0, huge };
}

interface Expected {
  /** Every readable regular file of the merged tree: path -> sha256. */
  sums: Map<string, string>;
  listing: string[];
  needles: string[];
}

async function expectedFromEngine(archive: string): Promise<Expected> {
  const v = await ImageView.open(archive);
  try {
    const sums = new Map<string, string>();
    const listing: string[] = [];
    const needles: string[] = [];
    for (const node of v.merged.walk()) {
      const st = v.merged.stat(node);
      if (st.type !== EntryType.File) continue;
      const p = v.merged.path(node);
      listing.push(`${p} ${st.size}`);
      if (p === 'broken/huge') continue;
      const bytes = await v.readFile(v.merged, node);
      sums.set(p, sha(bytes));
      if ((p.startsWith('data/') || p.startsWith('links/')) && bytes.includes('NEEDLE-')) needles.push(p);
    }
    return { sums, listing: listing.sort(), needles: needles.sort() };
  } finally {
    await v.close();
  }
}

describe('16 parallel readers on one mount', () => {
  let archive: string;
  let huge: Buffer;
  let expected: Expected;

  before(async () => {
    ({ archive, huge } = buildLoadImage(path.join(work, 'load.tar')));
    expected = await expectedFromEngine(archive);
    assert.equal(expected.sums.size, 1500 - 1 + 5 + 4 + 1); // data (minus the whiteout), big, links, broken/ok
  });

  it(`cat, dd (O_DIRECT), find and grep -r for ${LOAD_SECONDS} s all get correct bytes; failing reads beside them answer EIO at once`, { timeout: (LOAD_SECONDS + 120) * 1000 }, async (t) => {
    await withMount(archive, ['--no-cache'], async ({ mnt, stderr, server }) => {
      const rootfs = path.join(mnt, 'rootfs');
      const files = [...expected.sums.keys()];
      const bigOnes = files.filter((f) => f.startsWith('big/'));
      const deadline = Date.now() + LOAD_SECONDS * 1000;
      const stats = new Map<string, { runs: number; failures: string[] }>();
      const failures: string[] = [];

      const sh = (script: string, ...args: string[]) => run('sh', ['-c', script, 'sh', ...args], { timeoutMs: 60_000 });
      const check = (who: string, ok: boolean, what: string) => {
        if (!ok) failures.push(`${who}: ${what}`);
      };
      const readers: Array<[string, (rand: () => number) => Promise<void>]> = [];
      // 5 readers: sha256sum of 20 random files at a time (mostly from the page cache after the first time).
      for (let i = 0; i < 5; i++) {
        readers.push([`sha256sum-${i}`, async (rand) => {
          const pick = Array.from({ length: 20 }, () => files[Math.floor(rand() * files.length)]);
          const r = await run('sha256sum', pick.map((f) => path.join(rootfs, f)), { timeoutMs: 60_000 });
          check(`sha256sum-${i}`, r.code === 0, r.stderr);
          for (const line of r.stdout.trim().split('\n')) {
            const [sum, p] = [line.slice(0, 64), line.slice(66)];
            const rel = path.relative(rootfs, p);
            check(`sha256sum-${i}`, expected.sums.get(rel) === sum, `${rel}: ${sum}`);
          }
        }]);
      }
      // 4 readers: whole files with O_DIRECT, so every byte comes from the server, not the page cache.
      for (let i = 0; i < 4; i++) {
        readers.push([`dd-direct-${i}`, async (rand) => {
          const f = rand() < 0.5 ? bigOnes[Math.floor(rand() * bigOnes.length)] : files[Math.floor(rand() * files.length)];
          const r = await sh('dd if="$1" iflag=direct bs=128k status=none | sha256sum', path.join(rootfs, f));
          check(`dd-direct-${i}`, r.stdout.slice(0, 64) === expected.sums.get(f), `${f}: ${r.stdout.slice(0, 64)} ${r.stderr}`);
        }]);
      }
      // 2 readers: random 512 KiB ranges of the 64 MiB file, O_DIRECT.
      for (let i = 0; i < 2; i++) {
        readers.push([`dd-range-${i}`, async (rand) => {
          const block = 64 * 1024;
          const skip = Math.floor(rand() * (huge.length / block - 8));
          const r = await sh(`dd if="$1" iflag=direct bs=${block} skip=${skip} count=8 status=none | sha256sum`, path.join(rootfs, 'big/huge.bin'));
          check(`dd-range-${i}`, r.stdout.slice(0, 64) === sha(huge.subarray(skip * block, (skip + 8) * block)), `range at block ${skip}`);
        }]);
      }
      // 2 readers: find with sizes.
      for (let i = 0; i < 2; i++) {
        readers.push([`find-${i}`, async () => {
          const r = await run('find', [rootfs, '-type', 'f', '-printf', '%P %s\\n'], { timeoutMs: 60_000 });
          check(`find-${i}`, r.code === 0 && JSON.stringify(r.stdout.trim().split('\n').sort()) === JSON.stringify(expected.listing), `listing differs (${r.stderr})`);
        }]);
      }
      // 2 readers: grep -r through every small file.
      for (let i = 0; i < 2; i++) {
        readers.push([`grep-${i}`, async () => {
          const r = await run('grep', ['-rl', 'NEEDLE-', path.join(rootfs, 'data'), path.join(rootfs, 'links')], { timeoutMs: 60_000 });
          const got = r.stdout.trim().split('\n').map((p) => path.relative(rootfs, p)).sort();
          check(`grep-${i}`, r.code === 0 && JSON.stringify(got) === JSON.stringify(expected.needles), `grep found ${got.length} files (${r.stderr})`);
        }]);
      }
      // 1 reader: the same files through a layer's own view.
      readers.push(['layer-view', async (rand) => {
        const i = Math.floor(rand() * 150) * 10;
        const r = await run('sha256sum', [path.join(mnt, 'layers/1/data', `f${i}`)], { timeoutMs: 60_000 });
        check('layer-view', r.stdout.slice(0, 64) === expected.sums.get(`data/f${i}`), `layers/1/data/f${i}`);
      }]);
      assert.equal(readers.length, 16);
      // Beside them, 2 readers of the broken file: every read must fail with EIO, quickly.
      for (let i = 0; i < 2; i++) {
        readers.push([`failing-${i}`, async (rand) => {
          const started = Date.now();
          const r = rand() < 0.5
            ? await run('cat', [path.join(rootfs, 'broken/huge')], { timeoutMs: 60_000 })
            : await sh(`dd if="$1" iflag=direct bs=128k skip=${Math.floor(rand() * 8000)} count=1 status=none`, path.join(rootfs, 'broken/huge'));
          check(`failing-${i}`, r.code !== 0 && /Input\/output error/.test(r.stderr), `expected EIO, got exit ${r.code}: ${r.stderr}`);
          // Promptly, not after a hang: well under the 60 s the FUSE layer allows a request, with room
          // for a loaded machine (6.5 s was seen at load 12 on 2 CPUs).
          check(`failing-${i}`, Date.now() - started < 20_000, `EIO took ${Date.now() - started} ms`);
        }]);
      }

      await Promise.all(readers.map(async ([name, step], k) => {
        const rand = prng(1000 + k);
        const s = { runs: 0, failures: [] as string[] };
        stats.set(name, s);
        while (Date.now() < deadline) {
          await step(rand);
          s.runs++;
        }
      }));
      t.diagnostic([...stats].map(([name, s]) => `${name}: ${s.runs}`).join(', '));
      assert.deepEqual(failures.slice(0, 20), []);
      for (const [name, s] of stats) assert.ok(s.runs > 0, `${name} never finished a run`);
      // The mount is still healthy, the server alive, and it logged only the failing file.
      assert.ok(isMounted(mnt));
      assert.equal(server.exitCode, null);
      const log = stderr();
      assert.doesNotMatch(log, /uncaught|unhandled/i);
      const readErrors = log.split('\n').filter((l) => / read \//.test(l));
      assert.ok(readErrors.length > 0, 'the failing reads are logged');
      for (const l of readErrors) assert.match(l, / read \/rootfs\/broken\/huge at \d+: /);
    });
  });

  it('readers killed mid-read (SIGKILL) leave the mount healthy', { timeout: 120_000 }, async () => {
    await withMount(archive, ['--no-cache'], async ({ mnt, server, stderr }) => {
      const target = path.join(mnt, 'rootfs/big/huge.bin');
      for (let i = 0; i < 6; i++) {
        // Small O_DIRECT requests keep the reader inside the server for a while; plain cat goes through the page cache.
        const args = i % 2 === 0 ? ['-c', `dd if="${target}" iflag=direct bs=4k of=/dev/null status=none`] : ['-c', `cat "${target}" > /dev/null`];
        // Its own process group (detached), so one SIGKILL reaches the shell and its dd/cat.
        const reader: ChildProcess = spawn('sh', args, { stdio: 'ignore', detached: true });
        const exited = new Promise((r) => reader.once('exit', r));
        await new Promise((r) => setTimeout(r, 150 + 100 * i));
        try {
          process.kill(-reader.pid!, 'SIGKILL');
        } catch {
          /* it had finished already (cat from the page cache is quick) */
        }
        await exited;
      }
      const sum = await run('sh', ['-c', 'dd if="$1" iflag=direct bs=128k status=none | sha256sum', 'sh', target], { timeoutMs: 60_000 });
      assert.equal(sum.stdout.slice(0, 64), sha(huge));
      assert.equal((await run('ls', [path.join(mnt, 'rootfs/data')])).stdout.split('\n').filter(Boolean).length, 1499);
      assert.ok(isMounted(mnt));
      assert.equal(server.exitCode, null);
      assert.doesNotMatch(stderr(), /uncaught|unhandled/i);
    });
  });
});

describe('a SIGKILLed server', () => {
  const archive = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');

  /** Background mount; returns the server PID and its auto_unmount helper (fusermount), both ours. */
  async function mountBackground(mnt: string): Promise<{ server: number; helpers: number[] }> {
    const r = await ocimount(['--no-cache', '-q', archive, mnt]);
    assert.equal(r.code, 0, r.stderr);
    const server = Number(/server pid (\d+)/.exec(r.stdout)?.[1]);
    const helpers: number[] = [];
    for (const task of fs.readdirSync(`/proc/${server}/task`)) {
      for (const child of fs.readFileSync(`/proc/${server}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
        const cmd = fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
        if (path.basename(cmd[0]).startsWith('fusermount') && cmd.includes(mnt)) helpers.push(Number(child));
      }
    }
    return { server, helpers };
  }

  const gone = async (pid: number) => {
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`process ${pid} did not exit`);
  };

  it('with its auto-unmount helper also killed: a dead mountpoint that `ocimount umount` cleans, and a new mount over it', { timeout: 120_000 }, async () => {
    const mnt = tempDir('sigkill');
    const pids: number[] = [];
    try {
      const first = await mountBackground(mnt);
      pids.push(first.server, ...first.helpers);
      assert.equal(first.helpers.length, 1, 'libfuse runs fusermount as an auto_unmount helper');
      for (const pid of [...first.helpers, first.server]) process.kill(pid, 'SIGKILL');
      await Promise.all([first.server, ...first.helpers].map(gone));
      assert.ok(isMounted(mnt), 'with nobody left to unmount it, the mount stays');
      const ls = await run('ls', [mnt]);
      assert.match(ls.stderr, /Transport endpoint is not connected/);
      const again = await ocimount(['--no-cache', archive, mnt]);
      assert.equal(again.code, 4, 'a dead mountpoint is the machine\'s state, not a usage error');
      assert.match(again.stderr, /dead FUSE mount.*ocimount umount/);
      const u = await ocimount(['umount', mnt]);
      assert.equal(u.code, 0, u.stderr);
      assert.equal(isMounted(mnt), false);
      const second = await mountBackground(mnt);
      pids.push(second.server, ...second.helpers);
      assert.equal((await run('cat', [path.join(mnt, 'rootfs/root/saved.txt')])).code, 0);
      assert.equal((await ocimount(['umount', mnt])).code, 0);
      await gone(second.server);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
      fs.rmdirSync(mnt);
    }
  });

  it('alone: its auto-unmount helper removes the mount, and a new mount succeeds at once', { timeout: 120_000 }, async () => {
    const mnt = tempDir('sigkill-helper');
    const pids: number[] = [];
    try {
      const first = await mountBackground(mnt);
      pids.push(first.server, ...first.helpers);
      process.kill(first.server, 'SIGKILL');
      await gone(first.server);
      for (let i = 0; i < 400 && isMounted(mnt); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(isMounted(mnt), false);
      const second = await mountBackground(mnt);
      pids.push(second.server, ...second.helpers);
      assert.equal((await run('cat', [path.join(mnt, 'rootfs/root/saved.txt')])).code, 0);
      assert.equal((await ocimount(['umount', mnt])).code, 0);
      await gone(second.server);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
      fs.rmdirSync(mnt);
    }
  });
});

describe('resource bounds', () => {
  it('index memory is linear in entries: bytes per entry at 40,000 and 160,000 entries', { timeout: 300_000 }, async (t) => {
    const results = [];
    for (const entries of [40_000, 160_000]) {
      const archive = path.join(work, `entries-${entries}.tar`);
      writeManyEntriesArchive(archive, entries);
      // The least of two fresh processes: a heap reading only ever errs upward (something not yet
      // collected), and one such reading at 40,000 entries doubles the figure on a busy machine.
      const runs = [await measureOpen(archive), await measureOpen(archive)];
      const m = runs.reduce((a, b) => (b.error === undefined && b.bytesPerEntry < a.bytesPerEntry ? b : a));
      fs.rmSync(archive);
      assert.equal(m.error, undefined);
      assert.equal(m.entries, entries);
      results.push(m);
      t.diagnostic(`${entries} entries: ${m.bytesPerEntry.toFixed(1)} bytes/entry (index + merged tree), ${m.ms} ms, peak RSS ${m.peakRssMB.toFixed(0)} MB`);
    }
    const [small, large] = results;
    assert.ok(large.bytesPerEntry < 300, `${large.bytesPerEntry} bytes per entry at ${large.entries} entries`);
    assert.ok(small.bytesPerEntry < 300, `${small.bytesPerEntry} bytes per entry at ${small.entries} entries`);
    // Growth faster than linear shows as more bytes per entry at the larger size. A fixed cost
    // (something still held when a fresh clone's process measures its heap: seen at 40,000
    // entries as 223 bytes per entry against 93 at 160,000) only raises the small figure.
    const ratio = large.bytesPerEntry / small.bytesPerEntry;
    assert.ok(ratio < 1.5, `bytes per entry grew ${ratio.toFixed(2)}x from ${small.entries} to ${large.entries} entries`);
  });

  const BOMB = 1024 ** 3;

  it('a gzip decompression bomb (1 MiB -> 1 GiB) is indexed in bounded memory', { timeout: 300_000 }, async (t) => {
    const { blob, diffId } = gzipBomb(BOMB);
    const archive = path.join(work, 'gzip-bomb.tar');
    writeCompressedLayerArchive(archive, blob, diffId, '.tar.gz');
    const m = await measureOpen(archive, 280_000);
    fs.rmSync(archive);
    t.diagnostic(`gzip bomb: ${blob.length} bytes -> ${BOMB} bytes: ${m.ms} ms, peak RSS ${m.peakRssMB.toFixed(0)} MB ${m.error ?? ''}`);
    assert.equal(m.error, undefined);
    assert.equal(m.entries, 1);
    assert.ok(m.peakRssMB < 300, `peak RSS ${m.peakRssMB.toFixed(0)} MB`);
  });

  it('a zstd decompression bomb (one frame, 40 KiB -> 1 GiB) is indexed in bounded memory', { timeout: 300_000 }, async (t) => {
    const { blob, diffId } = await zstdBomb(BOMB);
    const archive = path.join(work, 'zstd-bomb.tar');
    writeCompressedLayerArchive(archive, blob, diffId, '.tar.zst');
    const m = await measureOpen(archive, 280_000);
    fs.rmSync(archive);
    t.diagnostic(`zstd bomb: ${blob.length} bytes -> ${BOMB} bytes: ${m.ms} ms, peak RSS ${m.peakRssMB.toFixed(0)} MB ${m.error ?? ''}`);
    assert.equal(m.error, undefined);
    assert.equal(m.entries, 1);
    assert.ok(m.peakRssMB < 300, `peak RSS ${m.peakRssMB.toFixed(0)} MB`);
  });

  // A zstd frame may ask for a 2 GiB window; the decoder refuses windows over 128 MiB, as zstd -d does.
  it('a zstd layer claiming a 2 GiB window is refused or decoded in bounded memory', { timeout: 300_000 }, async (t) => {
    const archive = path.join(work, 'zstd-window.tar');
    const zst = path.join(work, 'window.zst');
    const head = raw.header({ name: 'bomb', size: 2 * BOMB, mtime: 1700000000 });
    fs.writeFileSync(path.join(work, 'head.bin'), head);
    const made = await run('sh', ['-c', `(cat "$1"; head -c ${2 * BOMB + 1024} /dev/zero) | zstd -q --long=31 -c > "$2"`, 'sh', path.join(work, 'head.bin'), zst], { timeoutMs: 200_000 });
    assert.equal(made.code, 0, made.stderr);
    writeCompressedLayerArchive(archive, fs.readFileSync(zst), `sha256:${'0'.repeat(64)}`, '.tar.zst');
    const m = await measureOpen(archive, 280_000);
    t.diagnostic(`zstd window bomb: peak RSS ${m.peakRssMB.toFixed(0)} MB ${m.error ?? ''}`);
    assert.ok(m.peakRssMB < 300, `peak RSS ${m.peakRssMB.toFixed(0)} MB`);
    // Either outcome is fine, and each is checked: refused for its window, or decoded whole.
    if (m.error !== undefined) assert.match(m.error, /window|memory/i);
    else assert.equal(m.entries, 1);
  });
});
