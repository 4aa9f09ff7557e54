import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'ocimount');
/** Real archives the tests read, carried by the project (see test/fixtures/README.md). */
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

const execFileP = promisify(execFile);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a real process (ls, stat, cat, or the ocimount CLI) with a time limit; never throws on exit codes. */
export async function run(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, {
      timeout: opts.timeoutMs ?? 30_000,
      maxBuffer: 256 * 1024 * 1024,
      cwd: opts.cwd,
      encoding: 'utf8',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean; signal?: string };
    if (typeof e.code !== 'number') throw new Error(`${cmd} ${args.join(' ')}: ${e.killed ? `timed out (${e.signal})` : String(e.code)}`);
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Runs the ocimount CLI as a child process. */
export function ocimount(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], opts);
}

export function isMounted(dir: string): boolean {
  const target = path.resolve(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === target);
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ocimount-test-${prefix}-`));
}

export interface Mounted {
  mnt: string;
  server: ChildProcess;
  stderr(): string;
}

/**
 * Mounts `archive` with `ocimount --foreground` in a child process, runs `fn`, and always ends
 * that child (by its PID) and makes sure nothing stays mounted, even when `fn` fails.
 */
export async function withMount<T>(archive: string, extraArgs: string[], fn: (m: Mounted) => Promise<T>): Promise<T> {
  const mnt = tempDir('mnt');
  let stderr = '';
  const server = spawn(process.execPath, [BIN, 'mount', '--foreground', ...extraArgs, archive, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr!.on('data', (d) => (stderr += d));
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`mount not ready after 60 s; stderr: ${stderr}`)), 60_000);
      server.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\nCtrl-C to unmount')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`mount server exited with ${code} before ready; stderr: ${stderr}`));
      });
    });
    return await fn({ mnt, server, stderr: () => stderr });
  } finally {
    await stopServer(server, mnt);
    try {
      fs.rmdirSync(mnt);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM to our own server, then a lazy unmount and SIGKILL if it does not go in time. */
export async function stopServer(server: ChildProcess, mnt: string): Promise<void> {
  if (server.exitCode === null && server.signalCode === null) {
    const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    server.kill('SIGTERM');
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 10_000).unref())]);
    if (timedOut) {
      server.kill('SIGKILL');
      await exited;
    }
  }
  if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
}
