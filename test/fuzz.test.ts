import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { FuzzReport } from '../fuzz/fuzz';

/*
 * Issue 6, fuzz: random mutations and truncations of every fixture archive and of archives in
 * every layout, a fixed seed and a bounded count (OCIMOUNT_FUZZ_ITERATIONS, 3,000 by default,
 * about 15 s). The fuzzer runs in a child process so that a hang, even a synchronous one, is
 * caught by this test's timeout instead of stalling the suite. `node dist/fuzz/fuzz.js` runs more.
 */

const FUZZ = path.resolve(__dirname, '..', 'fuzz', 'fuzz.js');
const ITERATIONS = Number(process.env.OCIMOUNT_FUZZ_ITERATIONS ?? 3000);
const SEED = Number(process.env.OCIMOUNT_FUZZ_SEED ?? 6);

function runFuzzer(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FUZZ, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('fuzzing the tar indexer and the archive reader', () => {
  it(`${ITERATIONS} mutated archives (seed ${SEED}): no uncaught exception, no hang, every rejection one line`, { timeout: 150_000 }, async (t) => {
    const r = await runFuzzer(['mutate', '--iterations', String(ITERATIONS), '--seed', String(SEED), '--timeout-ms', '20000', '--json'], 140_000);
    assert.equal(r.signal, null, `the fuzzer was killed (a hang?); its progress:\n${r.stderr.slice(-3000)}`);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!) as FuzzReport;
    t.diagnostic(`${report.iterations} iterations in ${(report.ms / 1000).toFixed(1)} s: ${report.opened} images opened, ${report.rejected} rejected, reads ${report.reads.ok} ok / ${report.reads.failed} failed`);
    for (const m of report.messages.slice(0, 8)) t.diagnostic(`${String(m.count).padStart(5)} × ${m.message}`);
    assert.deepEqual(report.failures, [], 'rerun one with: node dist/fuzz/fuzz.js --seed S --only I --keep DIR');
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.equal(report.iterations, ITERATIONS);
    // The mutations reach both outcomes: archives that still open (and are walked and read) and rejections.
    assert.ok(report.opened > ITERATIONS / 10, `only ${report.opened} opened`);
    assert.ok(report.rejected > ITERATIONS / 10, `only ${report.rejected} rejected`);
    assert.ok(report.reads.ok > 0);
  });
});
