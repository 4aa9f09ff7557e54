import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { buildConformanceTree, hex, show, SPARSE_PATH, SPARSE_PIECES, SPARSE_SIZE, supportsUserXattrs, type TreeInfo } from './helpers/conformance-tree';
import { expectEntries, WRITERS, type Expected, type WalkEntry, type Writer } from './helpers/conformance-writers';
import { BIN, ROOT, withMount } from './helpers/mount-harness';

/*
 * Conformance matrix: one source tree full of edge cases, archived by every tar writer the
 * machine has (GNU tar in each format and sparse variant, bsdtar, Python tarfile, Go's
 * archive/tar through umoci, node-tar, tar-stream), each layer wrapped as an image, mounted, and compared
 * with the source tree field by field for what that writer's format carries (its profile in
 * helpers/conformance-writers.ts). Where writers or readers disagree, Go's archive/tar decides.
 * Both sides are read by the same walker (helpers/conformance-walk.py) with byte names.
 */

const WALKER = path.join(ROOT, 'test', 'helpers', 'conformance-walk.py');

/** A scratch dir on a filesystem that takes user.* xattrs (/tmp, else /var/tmp). */
function xattrCapableTemp(): string {
  for (const base of [os.tmpdir(), '/var/tmp']) {
    const d = fs.mkdtempSync(path.join(base, 'ocimount-test-conformance-'));
    if (supportsUserXattrs(d)) return d;
    fs.rmSync(d, { recursive: true, force: true });
  }
  throw new Error('no temp filesystem with user xattrs (tried /tmp and /var/tmp)');
}

/** execFile with raw byte output; never throws on exit codes. */
function runBuf(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
      if (e && typeof e.code !== 'number') return reject(new Error(`${cmd} ${args.join(' ')}: ${e.killed ? 'timed out' : e.message}`));
      resolve({ code: e ? (e.code as number) : 0, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

async function walk(...roots: string[]): Promise<WalkEntry[]> {
  const r = await runBuf('python3', [WALKER, ...roots]);
  assert.equal(r.code, 0, `walker failed on ${roots.join(' ')}: ${r.stderr}`);
  return r.stdout.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as WalkEntry);
}

const hasBsdtar = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v bsdtar'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const canRun = process.getuid?.() === 0 && fs.existsSync('/dev/fuse');
let work = '';
let tree: TreeInfo;
let source: WalkEntry[] = [];
let sparseSource: WalkEntry[] = [];

before(() => {
  if (!canRun) return;
  work = xattrCapableTemp();
  tree = buildConformanceTree(work);
});
after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const p = (h: string): string => show(Buffer.from(h, 'hex'));
const fmtX = (x: Record<string, string> | undefined): string =>
  JSON.stringify(Object.fromEntries(Object.entries(x ?? {}).map(([k, v]) => [Buffer.from(k, 'hex').toString('latin1'), `0x${v}`])));

/** Compares the mount's walk with the expectation, one list of problems per check. */
function compare(writer: string, expected: Map<string, Expected>, got: Map<string, WalkEntry>): Record<string, string[]> {
  const c: Record<string, string[]> = { presence: [], type: [], mode: [], owner: [], size: [], mtime: [], content: [], symlink: [], device: [], hardlink: [], xattrs: [], errors: [] };
  const say = (check: string, entry: string, field: string, exp: unknown, g: unknown) =>
    c[check].push(`${writer}: ${p(entry)}: ${field}: expected ${String(exp)}, got ${String(g)}`);
  for (const [k, x] of expected) {
    const g = got.get(k);
    if (!g) {
      say('presence', k, 'entry', `present (${x.t})`, 'absent');
      continue;
    }
    if (g.err) say('errors', k, 'read', 'no error', g.err);
    if (g.t !== x.t) {
      say('type', k, 'type', x.t, g.t);
      continue;
    }
    if (x.implied) continue;
    if (g.mode !== x.mode) say('mode', k, 'mode', x.mode!.toString(8), g.mode.toString(8));
    if (g.uid !== x.uid || g.gid !== x.gid) say('owner', k, 'uid:gid', `${x.uid}:${x.gid}`, `${g.uid}:${g.gid}`);
    if (x.size !== undefined && g.size !== x.size) say('size', k, 'size', x.size, g.size);
    const dm = BigInt(g.mtime) - x.mtimeNs!;
    if ((dm < 0n ? -dm : dm) > x.mtimeToleranceNs!) say('mtime', k, 'mtime_ns', `${x.mtimeNs}${x.mtimeToleranceNs ? ` ±${x.mtimeToleranceNs}` : ''}`, g.mtime);
    if (x.t === 'f' && x.sha && g.sha !== x.sha) say('content', k, 'sha256', x.sha, g.sha ?? '(not read)');
    if (x.t === 'l' && g.link !== x.link) say('symlink', k, 'target', show(Buffer.from(x.link ?? '', 'hex')), show(Buffer.from(g.link ?? '', 'hex')));
    if ((x.t === 'c' || x.t === 'b') && (g.major !== x.major || g.minor !== x.minor)) say('device', k, 'major:minor', `${x.major}:${x.minor}`, `${g.major}:${g.minor}`);
    if (x.t !== 'd' && g.nlink !== x.nlink) say('hardlink', k, 'nlink', x.nlink, g.nlink);
    for (const other of x.sameInodeAs ?? []) {
      const o = got.get(other);
      if (o && o.ino !== g.ino) say('hardlink', k, `inode shared with ${p(other)}`, 'same inode', `${g.ino} vs ${o.ino}`);
    }
    if (x.t !== 'l') {
      if (g.xattrErr) say('xattrs', k, 'listxattr', 'works', g.xattrErr);
      else if (fmtX(g.xattrs) !== fmtX(x.xattrs)) say('xattrs', k, 'xattrs', fmtX(x.xattrs), fmtX(g.xattrs));
    }
  }
  for (const k of got.keys()) if (!expected.has(k)) say('presence', k, 'entry', 'absent (not in the source, or not carried by this format)', `present (${got.get(k)!.t})`);
  return c;
}

/** Reads `len` bytes at `offset` of `file` with dd and returns them. */
async function ddRead(file: string, offset: number, len: number): Promise<Buffer> {
  const r = await runBuf('dd', [`if=${file}`, 'iflag=skip_bytes,count_bytes', `skip=${offset}`, `count=${len}`, 'bs=65536', 'status=none'], 60_000);
  assert.equal(r.code, 0, `dd at ${offset}: ${r.stderr}`);
  return r.stdout;
}

describe('conformance matrix: every writer, one tree, compared through the mount', { concurrency: 1 }, () => {
  for (const w of WRITERS) {
    it(w.name, { timeout: 120_000 }, async (t) => {
      if (!canRun) return t.skip('needs root and /dev/fuse');
      const why = w.unavailable();
      if (why) return t.skip(why);
      if (source.length === 0) {
        source = await walk(tree.root);
        sparseSource = await walk(tree.sparseRoot);
      }
      await check(t, w);
    });
  }
});

async function check(t: TestContext, w: Writer): Promise<void> {
  const dir = fs.mkdtempSync(path.join(work, `${w.name}-`));
  const layer = await w.write(tree, dir);
  fs.writeFileSync(path.join(dir, 'layer.ref.tar'), layer);
  const image = path.join(dir, 'image.tar');
  await buildArchive(image, { layout: 'docker25', images: [{ tags: [`conformance/${w.name}:1`], layers: [{ entries: layer }] }] });
  const expected = expectEntries(w.profile.sparse ? [...source, ...sparseSource] : source, w.profile);

  // Harness self-check: libarchive's own extraction of the layer shows what the profile predicts,
  // so a failure further down is the engine's, not the writer's or the profile's.
  await t.test('harness self-check: bsdtar -x of the layer matches the writer profile', async (st) => {
    if (!hasBsdtar) return st.skip('bsdtar not installed');
    const ref = path.join(dir, 'ref');
    fs.mkdirSync(ref);
    const x = await runBuf('bsdtar', ['-x', '-p', '--xattrs', '--numeric-owner', '-f', path.join(dir, 'layer.ref.tar'), '-C', ref]);
    // bsdtar says it cannot convert a pax path that is not UTF-8 "to the current locale" (in
    // every locale) and exits 1, yet writes the exact bytes: only that complaint is forgiven.
    const complaints = x.stderr.split('\n').filter((l) => l && !/(Pathname|Linkname) can't be converted from UTF-8 to current locale|Error exit delayed from previous errors/.test(l));
    assert.ok(x.code === 0 || (x.code === 1 && complaints.length === 0), `${w.name}: bsdtar -x exited ${x.code}: ${x.stderr}`);
    const got = new Map((await walk(ref)).map((e) => [e.p, e]));
    // libarchive's reader quirks, not the writer's: it NFC-normalizes UTF-8 names read from pax
    // records, and for an xattr stored as both LIBARCHIVE.xattr and SCHILY.xattr with an escaped
    // name it sets the decoded and the escaped name. Those never count against the profile.
    const nfc = (k: string) => Buffer.from(Buffer.from(k, 'hex').toString('utf8').normalize('NFC')).toString('hex');
    for (const [k, e] of [...got]) {
      if (!expected.has(k) && [...expected.keys()].some((x) => nfc(x) === k && !got.has(x))) (got.delete(k), got.set([...expected.keys()].find((x) => nfc(x) === k)!, { ...e }));
      // (Reading GNU tar's SCHILY record alone, it sets only the escaped name: taken as decoded.)
      for (const xk of Object.keys(e.xattrs ?? {})) {
        const name = Buffer.from(xk, 'hex').toString('latin1');
        if (!/%3d|%25/i.test(name)) continue;
        const decoded = Buffer.from(name.replace(/%3d/gi, '=').replace(/%25/g, '%'), 'latin1').toString('hex');
        if (!(decoded in e.xattrs)) e.xattrs[decoded] = e.xattrs[xk];
        delete e.xattrs[xk];
      }
    }
    const problems = Object.values(compare(`${w.name} (bsdtar -x)`, expected, got)).flat();
    fs.rmSync(ref, { recursive: true, force: true });
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  // Mount-free: the CLI indexes the layer and lists the long paths (a '/' at byte 100 used to fail with "checksum mismatch").
  await t.test('ocimount find --type f lists every carried long path', async () => {
    const r = await runBuf(process.execPath, [BIN, 'find', image, '--type', 'f', '--print0', '--no-cache']);
    assert.equal(r.code, 0, `${w.name}: ocimount find IMAGE --type f: exit ${r.code}: ${r.stderr.trim()}`);
    const listed = new Set(r.stdout.toString('latin1').split('\0').filter(Boolean));
    const missing = tree.paths.all
      .filter((lp) => expected.get(hex(lp))?.t === 'f')
      .filter((lp) => !listed.has('/' + lp.toString('latin1')))
      .map((lp) => `${w.name}: find: ${show(lp)} (${lp.length} bytes): expected listed, got absent`);
    assert.deepEqual(missing, [], missing.join('\n'));
  });

  await withMount(image, [], async ({ mnt }) => {
    const rootfs = path.join(mnt, 'rootfs');
    const got = new Map((await walk(rootfs)).map((e) => [e.p, e]));
    const problems = compare(w.name, expected, got);
    for (const [name, list] of Object.entries(problems)) {
      await t.test(name, () => assert.deepEqual(list, [], `${list.length} problem(s):\n${list.join('\n')}`));
    }
    if (w.profile.sparse) {
      await t.test('sparse file: size and ranged reads at data and holes', async () => {
        const f = path.join(rootfs, SPARSE_PATH);
        const st = fs.statSync(f);
        assert.equal(st.size, SPARSE_SIZE, `${w.name}: ${SPARSE_PATH}: size: expected ${SPARSE_SIZE}, got ${st.size}`);
        const probes: [number, number, number][] = [
          ...SPARSE_PIECES.map(([off, len, fill]) => [off, len, fill] as [number, number, number]),
          [4096, 4096, 0], // hole right after the first piece
          [2 * 1024 ** 3, 8192, 0], // deep in a hole
          [SPARSE_PIECES[1][0] - 100, 100, 0], // the hole's last bytes before a piece
          [SPARSE_SIZE - 1001, 1, 0], // the byte before the last piece
        ];
        const bad: string[] = [];
        for (const [off, len, fill] of probes) {
          const data = await ddRead(f, off, len);
          const want = Buffer.alloc(len, fill);
          if (!data.equals(want)) {
            const firstBad = [...data].findIndex((b, i) => b !== want[i]);
            bad.push(`${w.name}: ${SPARSE_PATH}: bytes ${off}+${len}: expected all 0x${fill.toString(16)}, got ${data.length} bytes, first difference at +${firstBad} (0x${(data[firstBad] ?? 0).toString(16)})`);
          }
        }
        assert.deepEqual(bad, [], bad.join('\n'));
      });
    }
  });
}
