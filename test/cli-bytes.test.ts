/**
 * The mount-free commands keep what the image stores: names and link targets as bytes (not
 * UTF-8 ones included), times to the nanosecond and before 1970, binary xattr values. Run as
 * child processes against an image whose layer is written block by block.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeDockerArchive } from './helpers/hostile-build';
import { BIN, ocimount, run, tempDir } from './helpers/mount-harness';
import { concatTar, entry, paxHeader } from './helpers/raw-tar';

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
const BIN_XATTR = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x3d, 0x25, 0x00]);

const layer = concatTar([
  entry({ name: latin1('latin1-\xe9.txt') }, Buffer.from('e9\n')),
  entry({ name: latin1('latin1-\xe8.txt') }, Buffer.from('e8\n')),
  entry({ name: latin1('utf8-caf\xc3\xa9.txt') }, Buffer.from('utf8\n')),
  entry({ name: latin1('sym\xff'), typeflag: '2', linkname: latin1('latin1-\xe9.txt') }),
  entry({ name: 'old', mtime: -315360000 }, Buffer.from('old\n')),
  paxHeader([['mtime', '1748089464.951928467'], ['SCHILY.xattr.security.capability', CAP], ['SCHILY.xattr.user.bin', BIN_XATTR]]),
  entry({ name: 'ns', mtime: 1748089464 }, Buffer.from('ns\n')),
]);

let work: string;
let image: string;
before(() => {
  work = tempDir('cli-bytes');
  image = writeDockerArchive(path.join(work, 'bytes.tar'), [layer]).path;
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** Runs a command and keeps stdout as bytes. */
function runBytes(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() }),
    ),
  );
}

describe('names are bytes through the mount-free commands', () => {
  it('find -print0 gives the exact bytes; a line per path escapes what is not UTF-8; the two Latin-1 names stay two', async () => {
    const r = await runBytes(process.execPath, [BIN, 'find', image, '/', '-type', 'f', '-print0']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.toString('latin1').split('\0').filter(Boolean).sort(), ['/latin1-\xe8.txt', '/latin1-\xe9.txt', '/ns', '/old', '/utf8-caf\xc3\xa9.txt']);
    const lines = (await ocimount(['find', image, '/', '-type', 'f'])).stdout.trim().split('\n').sort();
    assert.deepEqual(lines, ['"/latin1-\\xe8.txt"', '"/latin1-\\xe9.txt"', '/ns', '/old', '/utf8-café.txt']);
  });

  it('ls --json: names as text with undecodable bytes as lone surrogates; symlink targets too', async () => {
    const r = await ocimount(['ls', '--json', image, '/']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ name: string; target?: string }>;
    const names = rows.map((x) => x.name).sort();
    assert.deepEqual(names, ['latin1-\udce8.txt', 'latin1-\udce9.txt', 'ns', 'old', 'sym\udcff', 'utf8-café.txt']);
    assert.equal(rows.find((x) => x.name === 'sym\udcff')!.target, 'latin1-\udce9.txt');
    // Python's os.fsencode on such a name gives the bytes back: the surrogateescape convention.
    const jsonFile = path.join(work, 'name.json');
    fs.writeFileSync(jsonFile, r.stdout);
    const py = await run('python3', ['-c', 'import json,sys,os; print(sorted(os.fsencode(x["name"]).hex() for x in json.load(open(sys.argv[1]))))', jsonFile]);
    assert.equal(py.code, 0, py.stderr);
    assert.ok(py.stdout.includes(latin1('latin1-\xe9.txt').toString('hex')), py.stdout);
  });

  it('cat takes a name with the exact bytes typed on the command line', async () => {
    // A shell passes the bytes as they are; Node alone would see U+FFFD.
    const r = await run('bash', ['-c', `exec "$0" "$1" cat "$2" "$(printf '/latin1-\\351.txt')" "$(printf '/sym\\377')"`, process.execPath, BIN, image]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'e9\ne9\n');
    const missing = await run('bash', ['-c', `exec "$0" "$1" cat "$2" "$(printf '/latin1-\\352.txt')"`, process.execPath, BIN, image]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^ocimount: "\/latin1-\\xea\.txt": no such file or directory in the image$/m);
  });

  it('extract writes the exact names, link targets and nanosecond mtimes', async () => {
    const out = path.join(work, 'extract');
    const r = await ocimount(['extract', image, '/', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const names = fs.readdirSync(out, { encoding: 'buffer' }).map((b) => b.toString('latin1')).sort();
    assert.deepEqual(names, ['latin1-\xe8.txt', 'latin1-\xe9.txt', 'ns', 'old', 'sym\xff', 'utf8-caf\xc3\xa9.txt']);
    assert.equal(fs.readFileSync(latin1(path.join(out, 'latin1-\xe9.txt'))).toString(), 'e9\n');
    assert.equal((fs.readlinkSync(latin1(path.join(out, 'sym\xff')), { encoding: 'buffer' }) as Buffer).toString('latin1'), 'latin1-\xe9.txt');
    const st = fs.statSync(path.join(out, 'old'), { bigint: true });
    assert.equal(st.mtimeNs, -315360000n * 1_000_000_000n);
    // Node's utimes takes a double and sets whole microseconds.
    const ns = fs.statSync(path.join(out, 'ns'), { bigint: true }).mtimeNs;
    assert.ok(ns >= 1748089464951928000n && ns < 1748089464951929000n, String(ns));
  });

  it('export: the tar carries byte names, nanosecond and negative mtimes and binary xattrs (read back by Python tarfile)', async () => {
    const out = path.join(work, 'rootfs.tar');
    const r = await ocimount(['export', image, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const script = [
      'import tarfile, sys, json',
      'rows = []',
      "t = tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape')",
      'for m in t.getmembers():',
      "    rows.append([m.name.encode('utf-8', 'surrogateescape').hex(), m.linkname.encode('utf-8', 'surrogateescape').hex(), m.pax_headers.get('mtime', str(m.mtime)),",
      "        {k: v.encode('utf-8', 'surrogateescape').hex() for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')}])",
      'print(json.dumps(rows))',
    ].join('\n');
    const py = await run('python3', ['-c', script, out]);
    assert.equal(py.code, 0, py.stderr);
    const rows = new Map((JSON.parse(py.stdout) as Array<[string, string, string, Record<string, string>]>).map(([n, l, t, x]) => [Buffer.from(n, 'hex').toString('latin1'), { link: Buffer.from(l, 'hex').toString('latin1'), mtime: t, xattrs: x }]));
    assert.deepEqual([...rows.keys()].sort(), ['latin1-\xe8.txt', 'latin1-\xe9.txt', 'ns', 'old', 'sym\xff', 'utf8-caf\xc3\xa9.txt']);
    assert.equal(rows.get('sym\xff')!.link, 'latin1-\xe9.txt');
    assert.equal(rows.get('ns')!.mtime, '1748089464.951928467');
    assert.equal(rows.get('old')!.mtime, '-315360000');
    // Python decodes pax values as UTF-8 with surrogateescape: re-encoding gives the exact bytes.
    assert.equal(rows.get('ns')!.xattrs['SCHILY.xattr.security.capability'], CAP.toString('hex'));
    assert.equal(rows.get('ns')!.xattrs['SCHILY.xattr.user.bin'], BIN_XATTR.toString('hex'));
  });
});
