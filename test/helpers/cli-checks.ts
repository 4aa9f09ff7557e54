import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after } from 'node:test';
import { tempDir, type RunResult } from './mount-harness';

/*
 * What the CLI test files check the same way: the contract for errors (one line, prefixed, the
 * promised exit code, nothing on stdout) and scratch folders that go away with the file's tests.
 */

export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

/** Errors are one line on stderr, prefixed `ocimount: `, with the promised exit code and no stdout. */
export function assertError(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '', `nothing on stdout with an error (stderr: ${r.stderr})`);
  assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(r.stderr, /^ocimount: /);
  assert.match(r.stderr, pattern);
}

/**
 * A maker of scratch folders, all removed after the calling test file's tests. Call it at the
 * top level of a test file, so the cleanup hook belongs to that file.
 */
export function scratchDirs(): (prefix: string) => string {
  const made: string[] = [];
  after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  return (prefix) => {
    const dir = tempDir(prefix);
    made.push(dir);
    return dir;
  };
}
