import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArchiveError, UsageError } from '../errors';
import { oneLine } from '../text';

/*
 * An archive named on the command line may be a stream: `-` (standard input, as in
 * `docker save img | ocimount cat - /app/trace.log`), /dev/stdin, or any pipe or device
 * (`<(docker save img)`). The engine reads archives at random, so a stream is first copied
 * ("spooled") into a private temporary file: a folder of mode 0700 made by mkdtemp, the file
 * 0600 inside it. An xz stream is decompressed on the way in (xz cannot be read at random and
 * would otherwise leave a decompressed copy in the cache); gzip and zstd are kept as they are and
 * read through their seek index like any compressed archive.
 *
 * The folder is removed however the process ends: a normal end and process.exit (the 'exit'
 * event, which also covers a closed stdout pipe and errors), and SIGINT, SIGTERM, SIGHUP and
 * SIGPIPE, whose default action would end the process without an 'exit' event.
 */

export interface ArchiveInput {
  /** What the engine opens. */
  path: string;
  /** How messages name it: `stdin` or the path as typed. */
  label: string;
  /** True when `path` is a private copy (not worth caching: its name never comes back). */
  spooled: boolean;
}

const STDIN_NAMES = new Set(['-', '/dev/stdin', '/dev/fd/0', '/proc/self/fd/0']);
const spools = new Map<string, string>();
let handlersInstalled = false;

export function isStdinArgument(arg: string): boolean {
  return STDIN_NAMES.has(arg);
}

/** Messages name a spooled archive by what the user typed, never by its temporary path. */
export function labelPaths(text: string): string {
  let out = text;
  for (const [tmp, label] of spools) out = out.split(tmp).join(label);
  return out;
}

/**
 * What to open for the archive argument `arg`: the path itself for files and folders, a spooled
 * copy for standard input, pipes and character devices.
 */
export async function archiveInput(arg: string): Promise<ArchiveInput> {
  if (arg === '-' || STDIN_NAMES.has(arg)) {
    const st = fs.fstatSync(0);
    if (process.stdin.isTTY) throw new UsageError(`${arg}: standard input is a terminal; pipe an archive in (docker save IMAGE | ocimount ... -)`);
    // A redirected file (`< image.tar`) is read in place.
    if (st.isFile()) return { path: '/dev/stdin', label: 'stdin', spooled: false };
    return spool(process.stdin, 'stdin');
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(arg);
  } catch {
    return { path: arg, label: arg, spooled: false };
  }
  if (st.isFIFO() || st.isCharacterDevice() || st.isSocket()) return spool(fs.createReadStream(arg), arg);
  return { path: arg, label: arg, spooled: false };
}

function installCleanup(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', removeSpools);
  const signals: Array<[NodeJS.Signals, number]> = [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1], ['SIGPIPE', 13]];
  for (const [sig, num] of signals) {
    process.once(sig, () => {
      removeSpools();
      process.exit(128 + num);
    });
  }
}

function removeSpools(): void {
  for (const file of spools.keys()) {
    try {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    } catch {
      /* nothing more can be done on the way out */
    }
  }
  spools.clear();
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

async function spool(input: NodeJS.ReadableStream & { destroy?: () => void }, label: string): Promise<ArchiveInput> {
  installCleanup();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocimount-stdin-'));
  fs.chmodSync(dir, 0o700);
  const file = path.join(dir, 'archive');
  spools.set(file, label);
  const out = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  let xz: ReturnType<typeof spawn> | undefined;
  let xzError = '';
  let total = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (total === 0 && chunk.length >= XZ_MAGIC.length && chunk.subarray(0, XZ_MAGIC.length).equals(XZ_MAGIC)) {
        xz = spawn('xz', ['-dc'], { stdio: ['pipe', out, 'pipe'] });
        xz.stderr!.setEncoding('utf8').on('data', (d: string) => (xzError = (xzError + d).slice(-2048)));
        xz.stdin!.on('error', () => undefined);
        xz.on('error', (err) => (xzError = /ENOENT/.test(err.message) ? 'install xz-utils' : err.message));
      }
      total += chunk.length;
      if (xz) {
        if (!xz.stdin!.write(chunk)) await Promise.race([once(xz.stdin!, 'drain'), once(xz, 'close')]);
      } else {
        let done = 0;
        while (done < chunk.length) done += fs.writeSync(out, chunk, done);
      }
    }
    if (xz) {
      xz.stdin!.end();
      const [code] = xz.exitCode !== null ? [xz.exitCode] : ((await once(xz, 'close')) as [number | null]);
      if (code !== 0) throw new ArchiveError(`${label}: cannot decompress xz (${oneLine(xzError.trim().split('\n')[0] || `xz exited with ${code}`)})`);
    }
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? `no space left in ${os.tmpdir()} for a copy of it (set TMPDIR to a bigger folder)` : e.message;
    throw new ArchiveError(`${label}: cannot read the archive: ${why}`, { cause: err });
  } finally {
    fs.closeSync(out);
  }
  if (total === 0) throw new ArchiveError(`${label}: empty: no archive came in (did the command before the pipe fail?)`);
  return { path: file, label, spooled: true };
}
