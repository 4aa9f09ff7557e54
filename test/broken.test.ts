import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { UserError } from '../src/errors';
import { buildArchive } from './helpers/archive-builder';
import { dockerArchive, file, layer, memberDataOffset, outerTar, paxFile, sha256, writeOciArchive, type DockerOptions, type Member } from './helpers/hostile-build';
import { isMounted, ocimount, run, tempDir, withMount } from './helpers/mount-harness';
import * as raw from './helpers/raw-tar';

/*
 * Issue 6, broken content: cut-off downloads, corrupt headers, missing and mismatched pieces,
 * and an archive changed under a live mount. At mount time each is one error line naming the
 * archive and the problem (exit 3), or, at read time, EIO on the affected file only, with a log
 * line, while the mount stays up and every other file reads.
 */

const work = tempDir('broken');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const out = (name: string) => path.join(work, `${n++}-${name}`);

/** Deterministic, position-dependent bytes, so a read from the wrong offset cannot pass. */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

const BIG0 = pattern(256 * 1024, 1);
const DATA1 = pattern(300 * 1024, 2);
const L0 = layer(raw.entry({ name: 'etc/', typeflag: '5', mode: 0o755 }), file('etc/os-release', 'ID=test\n'), file('big.bin', BIG0), file('small', 'small\n'));
const L1 = layer(file('app/one', 'one\n'), file('app/data.bin', DATA1), file('app/two', 'two\n'));
/** Offset of app/data.bin's data inside L1 (after app/one's header and data block, then its own header). */
const DATA1_AT = 512 + 512 + 512;

function writeMembers(name: string, members: Member[], tail: Buffer = Buffer.alloc(0)): string {
  const p = out(name);
  fs.writeFileSync(p, Buffer.concat([outerTar(members), tail]));
  return p;
}

function docker(name: string, layers: Buffer[] = [L0, L1], opts: DockerOptions = {}): { path: string; members: Member[]; layerPaths: string[]; configPath: string } {
  const a = dockerArchive(layers, opts);
  return { ...a, path: writeMembers(name, a.members) };
}

/**
 * `ocimount --no-cache ARGS ARCHIVE MNT` in the background, as a user runs it; whatever it
 * mounted is unmounted again (its server then exits by itself; we wait for that by its PID).
 */
async function mountCli(archive: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string; errorLines: string[] }> {
  const mnt = tempDir('broken-mnt');
  try {
    const r = await ocimount(['--no-cache', ...args, archive, mnt]);
    const pid = Number(/server pid (\d+)/.exec(r.stdout)?.[1] ?? 0);
    if (isMounted(mnt)) await ocimount(['umount', mnt]);
    for (let i = 0; pid && i < 100 && alive(pid); i++) await new Promise((res) => setTimeout(res, 100));
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    return { ...r, errorLines: r.stderr.trim().split('\n').filter((l) => l && !l.startsWith('ocimount: warning: ')) };
  } finally {
    if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]);
    fs.rmdirSync(mnt);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The mount must be refused with exit 3 and exactly one error line naming the archive. */
async function expectRefused(archive: string, problem: RegExp, args: string[] = []): Promise<string> {
  const r = await mountCli(archive, args);
  assert.equal(r.code, 3, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.equal(r.errorLines.length, 1, r.stderr);
  assert.ok(r.errorLines[0].startsWith(`ocimount: ${archive}`), r.errorLines[0]);
  assert.match(r.errorLines[0], problem);
  // The engine says the same, as a UserError with the same exit code.
  const err = await ImageView.open(archive, { verify: args.includes('--verify') }).then(
    async (v) => {
      await v.close();
      return undefined;
    },
    (e: Error) => e,
  );
  assert.ok(err instanceof UserError && err.exitCode === 3, String(err));
  assert.match(err.message, problem);
  return r.errorLines[0];
}

/** `cat` of a file in the mount; resolves with its outcome and how long the kernel waited for it. */
async function timedCat(p: string): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const r = await run('cat', [p], { timeoutMs: 30_000 });
  return { ...r, ms: Date.now() - started };
}

describe('truncated archives', () => {
  it('cut in a header or in a layer, docker order (manifest.json last): one line that says the archive ends early', async () => {
    const full = docker('full.tar');
    const bytes = fs.readFileSync(full.path);
    const layer1At = memberDataOffset(full.members, full.layerPaths[1]);
    for (const [what, cutAt] of [
      ['in a header', layer1At - 300],
      ['in the data of a layer', layer1At + 10_000],
      ['in the data of the config', memberDataOffset(full.members, full.configPath) + 20],
    ] as const) {
      const cut = out(`cut-${what.replace(/ /g, '-')}.tar`);
      fs.writeFileSync(cut, bytes.subarray(0, cutAt));
      const line = await expectRefused(cut, /no manifest\.json, index\.json or repositories before the archive ends early \(truncated.*\): is the file complete\?/);
      assert.ok(line.length < 400, line);
    }
  });

  it('manifest first, cut in a later layer member: that layer is named as cut off', async () => {
    const full = docker('full-manifest-first.tar', [L0, L1], { manifestFirst: true });
    const bytes = fs.readFileSync(full.path);
    const layer1Header = memberDataOffset(full.members, full.layerPaths[1]) - 512;
    const cut = out('cut-header.tar');
    fs.writeFileSync(cut, bytes.subarray(0, layer1Header + 200));
    await expectRefused(cut, new RegExp(`${full.layerPaths[1]}: missing from the archive \\(the archive ends early: truncated: 200 stray bytes at byte ${layer1Header}\\)`));
  });

  it('manifest first, cut inside the last layer: the mount comes up with a warning; cut files fail with EIO, others read', async () => {
    const full = docker('full-manifest-first.tar', [L0, L1], { manifestFirst: true });
    const bytes = fs.readFileSync(full.path);
    const cutAt = memberDataOffset(full.members, full.layerPaths[1]) + DATA1_AT + 100_000;
    const cut = out('cut-layer.tar');
    fs.writeFileSync(cut, bytes.subarray(0, cutAt));
    await withMount(cut, ['--no-cache'], async ({ mnt, stderr }) => {
      assert.match(stderr(), /warning: .*truncated in the data of .*layer\.tar/);
      const rootfs = path.join(mnt, 'rootfs');
      assert.equal(fs.readFileSync(path.join(rootfs, 'app/one'), 'utf8'), 'one\n');
      assert.ok(fs.readFileSync(path.join(rootfs, 'big.bin')).equals(BIG0));
      const r = await timedCat(path.join(rootfs, 'app/data.bin'));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(r.ms < 5000, `EIO took ${r.ms} ms`);
      await waitFor(() => /read \/rootfs\/app\/data\.bin at \d+: /.test(stderr()), 'a log line for the failed read');
      // Everything else still reads, and the mount is still there.
      assert.equal(fs.readFileSync(path.join(rootfs, 'etc/os-release'), 'utf8'), 'ID=test\n');
      assert.equal(fs.readFileSync(path.join(rootfs, 'small'), 'utf8'), 'small\n');
      assert.ok(isMounted(mnt));
    });
  });

  it('a layer tar cut in file data, inside an intact archive: EIO for that file only, at read time', async () => {
    // The layer blob itself is cut in app/data.bin's data; the config and manifest follow it.
    const cutLayer = L1.subarray(0, DATA1_AT + 100_000);
    // (The archive ends within the cut file's span here; with more archive after it, see the next test.)
    const a = docker('inner-cut.tar', [L0, cutLayer]);
    const v = await ImageView.open(a.path);
    try {
      assert.ok(v.warnings.some((w) => /truncated in the data of app\/data\.bin/.test(w)), JSON.stringify(v.warnings));
      const node = v.merged.lookup('app/data.bin');
      await assert.rejects(v.readFile(v.merged, node), /short read/);
      assert.equal(v.merged.lookup('app/two'), -1); // after the cut: never seen
    } finally {
      await v.close();
    }
    await withMount(a.path, ['--no-cache'], async ({ mnt, stderr }) => {
      const rootfs = path.join(mnt, 'rootfs');
      assert.equal(fs.readFileSync(path.join(rootfs, 'app/one'), 'utf8'), 'one\n');
      const r = await timedCat(path.join(rootfs, 'app/data.bin'));
      assert.notEqual(r.code, 0, 'reading past the end of the cut layer must fail, not return other archive bytes');
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(r.ms < 5000, `EIO took ${r.ms} ms`);
      await waitFor(() => /read \/rootfs\/app\/data\.bin at \d+: /.test(stderr()), 'a log line for the failed read');
      assert.ok(fs.readFileSync(path.join(rootfs, 'big.bin')).equals(BIG0));
    });
  });

  it('a layer tar cut in file data: the bytes just past the cut are an error, not the archive bytes that follow the layer', async () => {
    const cutLayer = L1.subarray(0, DATA1_AT + 100_000);
    const a = docker('inner-cut-span.tar', [L0, cutLayer], { extra: [{ name: 'after', data: Buffer.alloc(1 << 20, 'A') }] });
    await withMount(a.path, ['--no-cache'], async ({ mnt }) => {
      const r = await run('dd', [`if=${path.join(mnt, 'rootfs/app/data.bin')}`, 'bs=1000', 'skip=100', 'count=1', 'status=none'], { timeoutMs: 10_000 });
      assert.notEqual(r.code, 0, `read ${JSON.stringify(r.stdout.slice(0, 60))} past the end of the cut layer`);
      assert.match(r.stderr, /Input\/output error/);
    });
  });

  it('a gzip layer cut short or corrupted: one line at mount time', async () => {
    const built = await buildArchive(out('kaniko.tar'), { layout: 'kaniko', images: [{ layers: [{ entries: [{ path: 'a', content: pattern(200_000, 3) }, { path: 'b', content: 'b' }] }] }] });
    const bytes = fs.readFileSync(built.path);
    const blobName = `${built.images[0].layerDigests[0].slice(7)}.tar.gz`;
    const at = bytes.indexOf(Buffer.from([0x1f, 0x8b, 8]), bytes.indexOf(Buffer.from(blobName)));
    // Cut: same archive with the gzip member's bytes truncated inside (tar size kept consistent).
    const members = [...listMembers(bytes)];
    const gz = members.find((m) => m.name === blobName)!;
    const cutMembers = members.map((m) => (m === gz ? { ...m, data: gz.data!.subarray(0, gz.data!.length - 100) } : m));
    await expectRefused(writeMembers('gzip-cut.tar', cutMembers), /gzip: truncated input/);
    const corrupt = Buffer.from(bytes);
    for (let i = 0; i < 16; i++) corrupt[at + 200 + i] ^= 0x5a;
    const corruptPath = out('gzip-corrupt.tar');
    fs.writeFileSync(corruptPath, corrupt);
    await expectRefused(corruptPath, /gzip: |invalid tar header/);
  });
});

/** Members of an outer tar written by outerTar (plain ustar, short names). */
function* listMembers(tar: Buffer): Generator<Member> {
  for (let pos = 0; pos + 512 <= tar.length; ) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) return;
    const name = h.toString('latin1', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('latin1', 124, 136), 8) || 0;
    const flag = String.fromCharCode(h[156]);
    yield flag === '5' ? { name, type: 'dir' } : { name, data: tar.subarray(pos + 512, pos + 512 + size) };
    pos += 512 + Math.ceil(size / 512) * 512;
  }
}

async function waitFor(cond: () => boolean, what: string, ms = 8000): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('corrupt headers and trailing garbage', () => {
  it('a wrong checksum in an archive header: one line naming the byte', async () => {
    const a = docker('checksum-outer.tar');
    const bytes = fs.readFileSync(a.path);
    const header = memberDataOffset(a.members, a.layerPaths[1]) - 512;
    bytes[header + 5] ^= 0x01; // in the name: the stored checksum no longer matches
    fs.writeFileSync(a.path, bytes);
    await expectRefused(a.path, new RegExp(`invalid tar header at byte ${header}: `));
  });

  it('a wrong checksum in a layer header: one line naming the layer and the byte', async () => {
    const bad = Buffer.from(L1);
    bad[512 + 512 + 3] ^= 0x01; // app/data.bin's header
    const a = docker('checksum-layer.tar', [L0, bad]);
    await expectRefused(a.path, new RegExp(`layer 1 \\(${sha256(bad)}\\): invalid tar header at byte 1024: `));
  });

  it('a pax size that is negative or fractional: one line, never a file of negative length', async () => {
    for (const size of ['-5', '1.5', '1e300']) {
      const bad = layer(file('fine', 'fine'), paxFile('odd', '', {}, [['size', size]]));
      const a = docker(`pax-size.tar`, [bad]);
      await expectRefused(a.path, new RegExp(`invalid pax size="${size.replace('.', '\\.')}"`));
    }
  });

  it('a NUL byte in a pax name: that entry is skipped with a warning, the rest is served', async () => {
    const l = layer(file('fine', 'fine'), paxFile('nul\0inside', 'x'), paxFile('ok', 'ok', {}, [['linkpath', 'x\0y']]));
    const a = docker('nul.tar', [l]);
    await withMount(a.path, ['--no-cache'], async ({ mnt, stderr }) => {
      assert.match(stderr(), /skipped "nul\\x00inside": a NUL byte in its name/);
      assert.deepEqual(fs.readdirSync(path.join(mnt, 'rootfs')).sort(), ['fine', 'ok']);
    });
  });

  it('garbage after the end-of-archive blocks, of the archive and of a layer, is ignored', async () => {
    const junk = pattern(5000, 9);
    const l1 = Buffer.concat([L1, junk]);
    const a = dockerArchive([L0, l1]);
    const p = writeMembers('garbage.tar', a.members, junk);
    await withMount(p, ['--no-cache'], async ({ mnt }) => {
      const rootfs = path.join(mnt, 'rootfs');
      assert.ok(fs.readFileSync(path.join(rootfs, 'app/data.bin')).equals(DATA1));
      assert.equal(fs.readFileSync(path.join(rootfs, 'app/two'), 'utf8'), 'two\n');
      assert.ok(fs.readFileSync(path.join(rootfs, 'big.bin')).equals(BIG0));
    });
  });
});

describe('missing and inconsistent pieces', () => {
  it('a missing layer blob', async () => {
    const a = dockerArchive([L0, L1]);
    const p = writeMembers('missing.tar', a.members.filter((m) => m.name !== a.layerPaths[1]));
    await expectRefused(p, new RegExp(`${a.layerPaths[1]}: missing from the archive$`));
  });

  it('invalid JSON in manifest.json, in the config, in an OCI index.json', async () => {
    const a = dockerArchive([L0]);
    const broke = (name: string) => a.members.map((m) => (m.name === name ? { ...m, data: m.data!.subarray(0, m.data!.length - 3) } : m));
    await expectRefused(writeMembers('bad-manifest.tar', broke('manifest.json')), /manifest\.json: invalid JSON \(/);
    await expectRefused(writeMembers('bad-config.tar', broke(a.configPath)), new RegExp(`${a.configPath}: invalid JSON \\(`));
    const oci = await buildArchive(out('oci.tar'), { layout: 'oci-archive', images: [{ layers: [{ entries: [{ path: 'a', content: 'a' }] }] }] });
    const members = [...listMembers(fs.readFileSync(oci.path))].map((m) => (m.name === 'index.json' ? { ...m, data: Buffer.from('{"manifests": [') } : m));
    await expectRefused(writeMembers('bad-index.tar', members), /index\.json: invalid JSON \(/);
  });

  it('a config whose diff_ids disagree with the layers: a warning by count; --verify checks each one', async () => {
    const fewer = docker('diffids-count.tar', [L0, L1], { config: (c) => c.rootfs.diff_ids.pop() });
    const r = await mountCli(fewer.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ocimount: warning: config lists 1 diff_ids for 2 layers/);

    const wrong = docker('diffids-wrong.tar', [L0, L1], { config: (c) => (c.rootfs.diff_ids[1] = sha256('something else')) });
    assert.equal((await mountCli(wrong.path)).code, 0);
    await expectRefused(wrong.path, new RegExp(`layer 1: content does not match its diff_id ${sha256('something else')}`), ['--verify']);

    // An uncompressed OCI layer: its manifest digest is its diff_id, so a disagreement is found for free.
    const oci = writeOciArchive(out('diffids-oci.tar'), [L0, L1], { diffIds: [sha256(L0), sha256('something else')] });
    const r2 = await mountCli(oci.path);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, new RegExp(`warning: layer 1: its manifest digest ${sha256(L1)} and its config diff_id ${sha256('something else')} differ, though its media type says uncompressed`));
    await expectRefused(oci.path, /layer 1: its manifest digest .* differ/, ['--verify']);
  });

  it('a layer whose bytes do not match its digest: --verify refuses, without it the mount shows what is there', async () => {
    const built = await buildArchive(out('docker25.tar'), { layout: 'docker25', images: [{ layers: [{ entries: [{ path: 'etc/motd', content: 'genuine motd\n' }] }] }] });
    const bytes = fs.readFileSync(built.path);
    const at = bytes.indexOf(Buffer.from('genuine motd\n'));
    bytes.write('tampered', at, 'latin1'); // same size: only a full hash can tell
    fs.writeFileSync(built.path, bytes);
    await expectRefused(built.path, new RegExp(`layer 0: blob does not match its digest ${built.images[0].layerDigests[0]}`), ['--verify']);
    await withMount(built.path, ['--no-cache'], async ({ mnt }) => {
      assert.equal(fs.readFileSync(path.join(mnt, 'rootfs/etc/motd'), 'utf8'), 'tamperedmotd\n');
    });
  });

  it('a config whose bytes do not match its digest: a warning found for free; --verify refuses', async () => {
    const built = await buildArchive(out('docker25-config.tar'), { layout: 'docker25', images: [{ layers: [{ entries: [{ path: 'a', content: 'a' }] }] }] });
    const bytes = fs.readFileSync(built.path);
    const at = bytes.indexOf(Buffer.from('"architecture":"amd64"'));
    assert.ok(at > 0);
    bytes.write('"architecture":"arm64"', at, 'latin1');
    fs.writeFileSync(built.path, bytes);
    const r = await mountCli(built.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`warning: config does not match its digest ${built.images[0].configDigest}`));
    await expectRefused(built.path, /config does not match its digest/, ['--verify']);
  });
});

describe('the archive changes under a live mount', () => {
  it('cut short: reads past the cut fail fast with EIO and a log line; the mount and its metadata stay up', async () => {
    const a = docker('live-cut.tar');
    const layer1At = memberDataOffset(a.members, a.layerPaths[1]);
    await withMount(a.path, ['--no-cache'], async ({ mnt, stderr, server }) => {
      const rootfs = path.join(mnt, 'rootfs');
      assert.equal(fs.readFileSync(path.join(rootfs, 'small'), 'utf8'), 'small\n');
      fs.truncateSync(a.path, layer1At + DATA1_AT + 1000);
      const r = await timedCat(path.join(rootfs, 'app/data.bin'));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(r.ms < 5000, `EIO took ${r.ms} ms`);
      await waitFor(() => /read \/rootfs\/app\/data\.bin at \d+: .*(ends early|changed since it was opened|unexpected end of file)/.test(stderr()), 'a log line for the failed read');
      // The watcher (every 3 s) notices and says so; from then on every read of the archive fails.
      await waitFor(() => /changed since it was opened .*: reads now fail with EIO/.test(stderr()), 'the watcher noticing the change');
      const later = await timedCat(path.join(rootfs, 'etc/os-release'));
      assert.match(later.stderr, /Input\/output error/);
      assert.ok(later.ms < 5000);
      // Metadata and the image's own files (config, history) live in memory: still served.
      assert.deepEqual(fs.readdirSync(path.join(rootfs, 'app')).sort(), ['data.bin', 'one', 'two']);
      assert.equal(fs.statSync(path.join(rootfs, 'app/data.bin')).size, DATA1.length);
      assert.equal(JSON.parse(fs.readFileSync(path.join(mnt, 'config.json'), 'utf8')).os, 'linux');
      assert.ok(isMounted(mnt));
      assert.equal(server.exitCode, null);
      assert.doesNotMatch(stderr(), /uncaught|unhandled/);
    });
  });

  it('rewritten in place (same size): noticed within seconds, then reads fail with EIO', async () => {
    const a = docker('live-rewrite.tar');
    await withMount(a.path, ['--no-cache'], async ({ mnt, stderr }) => {
      const fd = fs.openSync(a.path, 'r+');
      fs.writeSync(fd, Buffer.from('XXXX'), 0, 4, memberDataOffset(a.members, a.layerPaths[0]) + 2000);
      fs.closeSync(fd);
      await waitFor(() => /changed since it was opened/.test(stderr()), 'the watcher noticing the change');
      const r = await timedCat(path.join(mnt, 'rootfs/big.bin'));
      assert.match(r.stderr, /Input\/output error/);
      assert.ok(r.ms < 5000);
      assert.ok(isMounted(mnt));
    });
  });

  it('overwritten in place by another archive of the same size: the very next read is EIO, never the new bytes', async () => {
    // Same layout and sizes, other bytes: the size alone cannot tell the two apart.
    const a = docker('live-cp.tar');
    const other = docker('live-cp-other.tar', [
      layer(raw.entry({ name: 'etc/', typeflag: '5', mode: 0o755 }), file('etc/os-release', 'ID=evil\n'), file('big.bin', pattern(BIG0.length, 9)), file('small', 'SMALL\n')),
      layer(file('app/one', 'ONE\n'), file('app/data.bin', pattern(DATA1.length, 8)), file('app/two', 'TWO\n')),
    ]);
    assert.equal(fs.statSync(other.path).size, fs.statSync(a.path).size);
    await withMount(a.path, ['--no-cache'], async ({ mnt, stderr, server }) => {
      const rootfs = path.join(mnt, 'rootfs');
      assert.equal(fs.readFileSync(path.join(rootfs, 'small'), 'utf8'), 'small\n');
      // Opened before the change, read after it: only the check after the read can catch this one.
      const early = fs.openSync(path.join(rootfs, 'app/data.bin'), 'r');
      try {
        const before = fs.statSync(a.path, { bigint: true });
        fs.copyFileSync(other.path, a.path); // what `cp other.tar live.tar` does: same inode, truncated, rewritten
        const afterCp = fs.statSync(a.path, { bigint: true });
        assert.equal(afterCp.ino, before.ino);
        assert.equal(afterCp.size, before.size);
        assert.ok(afterCp.mtimeNs !== before.mtimeNs || afterCp.ctimeNs !== before.ctimeNs, 'the copy moved mtime or ctime');
        // No sleep: the first reads after the copy already fail.
        const buf = Buffer.alloc(4096);
        assert.throws(() => fs.readSync(early, buf, 0, buf.length, 0), { code: 'EIO' });
        assert.ok(!buf.subarray(0, 4096).equals(pattern(DATA1.length, 8).subarray(0, 4096)), 'never the new bytes');
        for (const f of ['big.bin', 'etc/os-release', 'app/one', 'app/two']) {
          assert.throws(() => fs.readFileSync(path.join(rootfs, f)), { code: 'EIO' }, f);
        }
      } finally {
        fs.closeSync(early);
      }
      // The mount stays up; metadata lives in memory.
      assert.deepEqual(fs.readdirSync(path.join(rootfs, 'app')).sort(), ['data.bin', 'one', 'two']);
      assert.equal(JSON.parse(fs.readFileSync(path.join(mnt, 'config.json'), 'utf8')).os, 'linux');
      assert.ok(isMounted(mnt));
      assert.equal(server.exitCode, null);
      // Said once, the moment it was seen, and not again when the 3 s watcher looks.
      await new Promise((r) => setTimeout(r, 3500));
      const said = stderr().split('\n').filter((l) => /changed since it was opened \(modified\); remount it: reads now fail with EIO$/.test(l));
      assert.equal(said.length, 1, stderr());
      assert.doesNotMatch(stderr(), /uncaught|unhandled/);
    });
  });

  it('mount-free reads (cat) go through the same check: a changed archive fails the read', async () => {
    const a = docker('cat-cp.tar');
    const other = docker('cat-cp-other.tar', [
      layer(raw.entry({ name: 'etc/', typeflag: '5', mode: 0o755 }), file('etc/os-release', 'ID=evil\n'), file('big.bin', pattern(BIG0.length, 9)), file('small', 'SMALL\n')),
      L1,
    ]);
    const view = await ImageView.open(a.path);
    try {
      const node = view.merged.lookup('big.bin');
      assert.ok((await view.readFile(view.merged, node)).equals(BIG0));
      await new Promise((r) => setTimeout(r, 20)); // past the file system's timestamp tick
      fs.copyFileSync(other.path, a.path);
      await assert.rejects(view.readFile(view.merged, node), /changed since it was opened \(modified\); remount it/);
      await assert.rejects(view.readFile(view.merged, view.merged.lookup('small')), /changed since it was opened/);
    } finally {
      await view.close();
    }
  });

  it('removed, or replaced by rename: still serves the bytes it indexed, with a note in the log', async () => {
    for (const how of ['removed', 'replaced'] as const) {
      const a = docker(`live-${how}.tar`);
      await withMount(a.path, ['--no-cache'], async ({ mnt, stderr }) => {
        if (how === 'removed') fs.rmSync(a.path);
        else {
          const other = docker('other.tar', [layer(file('big.bin', 'other'))]);
          fs.renameSync(other.path, a.path);
        }
        await waitFor(() => /was removed or replaced; still serving the original bytes/.test(stderr()), 'the note in the log');
        assert.ok(fs.readFileSync(path.join(mnt, 'rootfs/big.bin')).equals(BIG0));
        assert.ok(fs.readFileSync(path.join(mnt, 'rootfs/app/data.bin')).equals(DATA1));
      });
    }
  });
});
