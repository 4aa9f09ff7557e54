import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, ocimount, tempDir, type RunResult } from './helpers/mount-harness';

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
    const inDir = await runIn(dir, ['inpsect', dir]);
    assert.doesNotMatch(inDir.stderr, /unknown command/);
    assert.match(inDir.stderr, /inpsect/);
  });
});

/** The CLI with a working directory. */
function runIn(cwd: string, args: string[], input?: Buffer): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
