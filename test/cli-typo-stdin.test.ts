import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, ocimount, ROOT, tempDir, type RunResult } from './helpers/mount-harness';

/*
 * A misspelt command is a usage error, never a mount attempt; an archive can come on standard
 * input (`docker save img | ocimount cat - PATH`), spooled to a private file that every way of
 * ending removes.
 */

const DIVE = path.join(FIXTURES, 'dive-legacy-whiteouts.tar');
const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function oneError(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}

describe('a misspelt command', { concurrency: 4 }, () => {
  it('inpsect IMG is "unknown command; did you mean inspect", exit 2', async () => {
    oneError(await ocimount(['inpsect', DIVE]), 2, /^ocimount: unknown command 'inpsect'; did you mean 'inspect'\?/);
  });
  it('unmout MNT is not a mount attempt', async () => {
    const dir = tempDir('typo');
    cleanup.push(dir);
    oneError(await ocimount(['unmout', dir]), 2, /^ocimount: unknown command 'unmout'; did you mean 'unmount'\?/);
  });
  it('extarct IMG /app is not "too many arguments for mount"', async () => {
    oneError(await ocimount(['extarct', DIVE, '/app']), 2, /unknown command 'extarct'; did you mean 'extract'\?/);
  });
  it('a first word that exists as a file is still the archive of the default mount', async () => {
    const dir = tempDir('typo-file');
    cleanup.push(dir);
    fs.writeFileSync(path.join(dir, 'inpsect'), 'not an archive');
    const mnt = tempDir('typo-mnt');
    cleanup.push(mnt);
    const inDir = await runIn(dir, ['inpsect', mnt]);
    assert.doesNotMatch(inDir.stderr, /unknown command/);
    assert.match(inDir.stderr, /inpsect/);
  });
});

/** The CLI with a working directory (and TMPDIR), fed `input` on stdin. */
function runIn(cwd: string, args: string[], input?: Buffer, env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const archive = fs.readFileSync(DIVE);
function compressed(tool: string, args: string[]): Buffer {
  return execFileSync(tool, args, { input: archive, maxBuffer: 64 * 1024 * 1024 });
}

/** A TMPDIR of the test's own, so what the CLI leaves in it can be checked. */
function privateTmp(): string {
  const dir = tempDir('tmpdir');
  cleanup.push(dir);
  return dir;
}

describe('an archive on standard input', { concurrency: 4 }, () => {
  const saved = execFileSync(process.execPath, [BIN, 'cat', DIVE, '/root/saved.txt']);

  for (const [name, bytes] of [
    ['plain', () => archive],
    ['gzip', () => compressed('gzip', ['-c'])],
    ['zstd', () => compressed('zstd', ['-qc'])],
    ['xz', () => compressed('xz', ['-c', '-0'])],
  ] as const) {
    it(`cat - PATH reads a ${name} archive piped in, and leaves nothing in TMPDIR`, async () => {
      const tmp = privateTmp();
      const r = await runIn(ROOT, ['cat', '-', '/root/saved.txt'], bytes(), { TMPDIR: tmp });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, saved.toString());
      assert.deepEqual(fs.readdirSync(tmp), []);
    });
  }

  it('every mount-free command takes -', async () => {
    const tmp = privateTmp();
    const out = path.join(tmp, 'out');
    const cases: string[][] = [
      ['inspect', '-'],
      ['ls', '-', '/root'],
      ['find', '-', '/root', '--name', 'saved.txt'],
      ['extract', '-', '/root/saved.txt', '-o', out],
      ['blame', '-', '/root/saved.txt'],
      ['diff', '-', '--layer', '1'],
      ['diff', '-', DIVE],
      ['export', '-', '-o', path.join(tmp, 'rootfs.tar')],
    ];
    for (const args of cases) {
      const r = await runIn(ROOT, args, archive, { TMPDIR: tmp });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.ok(fs.existsSync(path.join(out, 'root', 'saved.txt')));
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['out', 'rootfs.tar']);
  });

  it('/dev/stdin works too, and an error names stdin once, never the temporary copy', async () => {
    const tmp = privateTmp();
    const ok = await runIn(ROOT, ['cat', '/dev/stdin', '/root/saved.txt'], archive, { TMPDIR: tmp });
    assert.equal(ok.stdout, saved.toString(), ok.stderr);
    const bad = await runIn(ROOT, ['ls', '/dev/stdin'], execFileSync('gzip', ['-c'], { input: 'hello\n' }), { TMPDIR: tmp });
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /^ocimount: stdin: /);
    assert.equal(bad.stderr.match(/stdin/g)!.length, 1, bad.stderr);
    assert.doesNotMatch(bad.stderr, new RegExp(tmp));
    assert.deepEqual(fs.readdirSync(tmp), []);
  });

  it('a missing path is exit 1 and the copy is still removed', async () => {
    const tmp = privateTmp();
    const r = await runIn(ROOT, ['cat', '-', '/no/such'], archive, { TMPDIR: tmp });
    assert.equal(r.code, 1);
    assert.deepEqual(fs.readdirSync(tmp), []);
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`the private copy (0700 folder, 0600 file) is removed on ${sig}`, async () => {
      const tmp = privateTmp();
      const child = spawn(process.execPath, [BIN, 'cat', '-', '/root/saved.txt'], { env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'pipe'] });
      try {
        child.stdin.write(archive.subarray(0, 100_000));
        let entries: string[] = [];
        for (let i = 0; i < 200 && entries.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 25));
          entries = fs.readdirSync(tmp);
        }
        assert.equal(entries.length, 1);
        const dir = path.join(tmp, entries[0]);
        assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
        const files = fs.readdirSync(dir);
        assert.equal(files.length, 1);
        assert.equal(fs.statSync(path.join(dir, files[0])).mode & 0o777, 0o600);
        const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
        child.kill(sig);
        const code = await closed;
        assert.equal(code, sig === 'SIGINT' ? 130 : 143);
        assert.deepEqual(fs.readdirSync(tmp), []);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }

  it('the copy is removed when the reader of stdout goes away (| head)', async () => {
    const tmp = privateTmp();
    const r = execFileSync('bash', ['-c', `"${process.execPath}" "${BIN}" cat - /bin/busybox < "${DIVE}" | head -c 10 > /dev/null; cat "${DIVE}" | "${process.execPath}" "${BIN}" cat - /bin/busybox | head -c 10 | wc -c`], {
      env: { ...process.env, TMPDIR: tmp },
    });
    assert.equal(r.toString().trim(), '10');
    assert.deepEqual(fs.readdirSync(tmp), []);
  });

  it('the mount refuses - with exit 2 and says what to do instead', async () => {
    const mnt = privateTmp();
    const r = await runIn(ROOT, ['-', mnt], archive);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ocimount: -: a mount cannot serve an archive from standard input/);
  });
});
