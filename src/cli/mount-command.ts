import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { ImageView } from '../engine';
import { collectGarbage, COLLECT_AFTER_ENTRIES } from '../io/collect-garbage';
import { EnvironmentError, UsageError, UserError, userErrorFor } from '../errors';
import { checkMountpoint, loadFuse, mountImage, returnFreedMemory, trimMemory, unmountPath, type ActiveMount } from '../fuse/mount';
import { describeRecord } from '../image/select';
import { addImageOptions, openView, reportAndExit, type ImageOptions } from './common';
import { terminalProgress } from './progress';
import { isStdinArgument } from './archive-input';
import { listMounts, mountKey, privateDir, recordPath, removeRecord, writeRecord, type MountRecord } from '../fuse/registry';
import { alignColumns } from '../query/format';
import { printableText } from '../text';
import { layerRanges } from '../fuse/namespace';

interface MountCliOptions extends ImageOptions {
  foreground?: boolean;
  rootfsOnly?: boolean;
  allowOther?: boolean;
  nonempty?: boolean;
  log?: string;
}

/** Messages from the background server to the command that started it. */
type Notice =
  | { warning: string }
  | { note: string }
  | { progress: { what: string; done: number; total: number } }
  | { ready: string }
  | { error: string; code: number };

const MOUNT_HELP = `
Mounts IMAGE (a docker save / podman save / skopeo / oci-archive tar, a gzip- or zstd-compressed
one, or an OCI layout folder) read-only at MOUNTPOINT and returns once the mount is ready; a
server process keeps serving it in the background.

What you see at MOUNTPOINT:
  rootfs/                the merged image filesystem, whiteouts applied
  layers/<diff_id>/      each layer alone, whiteout markers (.wh.*) shown as stored
  layers/0, layers/1, …  symlinks to the layers in order, bottom layer first
  config.json            the image config (Env, Cmd, Entrypoint, history, …)
  manifest.json          the image manifest
  history                one line per layer: position, diff_id, size, the command that made it

Ownership and permissions: every file is readable by you, the user who mounted, whatever mode
or owner the image gives it (analysing the image is the point). --allow-other lets other users in
too, and then the kernel enforces the image's own modes and owners for everyone, you included
(it needs user_allow_other in /etc/fuse.conf unless you are root).

Examples:
  ocimount myapp.tar /mnt/img && cat /mnt/img/rootfs/etc/os-release
  ocimount --image myapp:1.0 bundle.tar /mnt/img          # one image of several
  ocimount --platform linux/arm64 multi.oci.tar /mnt/img   # one platform of an index
  ocimount --layers ..2 myapp.tar /mnt/img                 # the image as of layer 2
  ocimount --rootfs-only myapp.tar /mnt/root               # the merged tree at the mount root
  ocimount umount /mnt/img
`;

export function registerMount(program: Command): void {
  addImageOptions(
    program
      .command('mount <image> <mountpoint>', { isDefault: true })
      .description('mount an image archive read-only (the default command: ocimount IMAGE MOUNTPOINT)')
      .option('-f, --foreground', 'stay attached; Ctrl-C unmounts')
      .option('--rootfs-only', 'show the merged tree itself at the mountpoint')
      .option('--allow-other', 'let other users access the mount (image permissions then apply)')
      .option('--nonempty', 'mount over a folder that is not empty (its files are hidden while mounted)')
      .option('--log <file>', 'where the server writes its log (default: a file in the temp dir, named when mounted)'),
  )
    .addHelpText('after', MOUNT_HELP)
    .action(async (image: string, mountpoint: string, opts: MountCliOptions) => {
      try {
        refuseStream(image);
        if (opts.foreground || process.send) await serve(image, mountpoint, opts);
        else await startInBackground(image, mountpoint, opts);
      } catch (err) {
        if (process.send && err instanceof UserError) {
          process.send({ error: err.message, code: err.exitCode } satisfies Notice);
          process.exit(err.exitCode);
        }
        reportAndExit(err);
      }
    });

  program
    .command('umount [mountpoint]')
    .alias('unmount')
    .description('unmount an ocimount mount (also cleans a dead one: "Transport endpoint is not connected"), or --all of them')
    .option('-z, --lazy', 'detach now even if busy; the kernel finishes when it is no longer used')
    .option('-a, --all', 'unmount every ocimount mount (see ocimount list)')
    .addHelpText(
      'after',
      '\nExamples:\n  ocimount umount /mnt/img\n  ocimount umount --lazy /mnt/img   # busy, e.g. a shell still cd\'d inside\n  ocimount umount --all             # every mount ocimount list shows\n',
    )
    .action(async (mountpoint: string | undefined, opts: { lazy?: boolean; all?: boolean }) => {
      try {
        if (opts.all) {
          if (mountpoint !== undefined) throw new UsageError('give a mountpoint or --all, not both');
          await unmountAll(!!opts.lazy);
          return;
        }
        if (mountpoint === undefined) throw new UsageError("missing the mountpoint (or --all for every ocimount mount)");
        await unmountPath(mountpoint, !!opts.lazy);
        await waitForServer(mountpoint);
      } catch (err) {
        reportAndExit(err);
      }
    });

  program
    .command('list')
    .description('show your active ocimount mounts: mountpoint, archive, image, layers, server pid')
    .option('--json', 'print a JSON array')
    .addHelpText('after', '\nExamples:\n  ocimount list\n  ocimount list --json | jq -r \'.[].mountpoint\'\n  ocimount umount --all             # end them all\n')
    .action(async (opts: { json?: boolean }) => {
      try {
        const mounts = listMounts();
        if (opts.json) {
          const rows = mounts.map((m) => ({ mountpoint: m.mountpoint, archive: m.record.archive, image: m.record.image, layers: m.record.layers, pid: m.record.pid, log: m.record.log ?? null }));
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (mounts.length === 0) {
          process.stdout.write('no ocimount mounts\n');
          return;
        }
        const rows = mounts.map((m) => [m.mountpoint, m.record.archive, m.record.image, m.record.layers, String(m.record.pid)].map((c) => printableText(c)));
        process.stdout.write(`${alignColumns([['MOUNTPOINT', 'ARCHIVE', 'IMAGE', 'LAYERS', 'PID'], ...rows]).join('\n')}\n`);
      } catch (err) {
        reportAndExit(err);
      }
    });
}

/** Unmounts every ocimount mount; one failure does not stop the others, but makes the exit code. */
async function unmountAll(lazy: boolean): Promise<void> {
  const mounts = listMounts();
  if (mounts.length === 0) {
    process.stdout.write('no ocimount mounts\n');
    return;
  }
  let failure: unknown;
  for (const m of mounts) {
    try {
      await unmountPath(m.mountpoint, lazy);
      process.stdout.write(`unmounted ${printableText(m.mountpoint)}\n`);
    } catch (err) {
      failure ??= err;
      process.stderr.write(`ocimount: ${(err as Error).message}\n`);
    }
  }
  for (const m of mounts) await waitForServer(m.mountpoint, m.record.pid);
  if (failure) throw failure;
}

/**
 * After an unmount the server notices within a second and ends, removing its record and own
 * log; waiting for that (a few seconds at most) means a script that unmounts and then looks
 * finds nothing left behind.
 */
async function waitForServer(mountpoint: string, pid?: number): Promise<void> {
  const record = (() => {
    try {
      return JSON.parse(fs.readFileSync(recordPath(mountpoint), 'utf8')) as MountRecord;
    } catch {
      return undefined;
    }
  })();
  const server = pid ?? record?.pid;
  if (server === undefined) return;
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(server, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A mount serves reads for as long as it is up, from an archive it can read at random and open
 * again (the background server is a new process): standard input and pipes are neither.
 */
function refuseStream(image: string): void {
  let stream = isStdinArgument(image);
  try {
    const st = fs.statSync(image);
    stream ||= st.isFIFO() || st.isCharacterDevice() || st.isSocket();
  } catch {
    /* missing: the open says so */
  }
  if (stream) {
    throw new UsageError(`${image}: a mount cannot serve an archive from standard input or a pipe; save it to a file first (docker save -o image.tar IMAGE), or use the mount-free commands (ocimount cat - PATH, ls, find, extract)`);
  }
}

/**
 * The server's log goes to a folder of the user's own in the temp dir. Another local user could
 * have made that folder first, or planted a symlink where the log goes (then a root mount would
 * write wherever it points): the folder must be ours and private, and the log is opened without
 * following symlinks.
 */
function defaultLogPath(mountpoint: string): string {
  return path.join(privateDir(), `${mountKey(mountpoint)}.log`);
}

function openLog(logPath: string): number {
  try {
    return fs.openSync(logPath, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    // Usually a --log path that does not work (a typo): usage, as before.
    throw new UsageError(`${logPath}: cannot open the log: ${(err as Error).message.replace(/^\w+: /, '')}`, { cause: err });
  }
}

/**
 * Starts the server as a detached child and waits for its word: ready (exit 0) or an error
 * (its message and exit code). Checks that can fail fast run here first, before any indexing.
 */
async function startInBackground(image: string, mountpoint: string, opts: MountCliOptions): Promise<void> {
  loadFuse();
  checkMountpoint(mountpoint, { nonempty: opts.nonempty });
  const logPath = opts.log ?? defaultLogPath(mountpoint);
  const logFd = openLog(logPath);
  const progress = opts.quiet ? undefined : terminalProgress();
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
    detached: true,
    // The server records its log in the mount's record, and removes the log with it when
    // ocimount chose it (not a --log file of the user's).
    env: { ...process.env, OCIMOUNT_SERVER_LOG: path.resolve(logPath), OCIMOUNT_SERVER_OWN_LOG: opts.log ? '0' : '1' },
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
  fs.closeSync(logFd);
  const outcome = await new Promise<{ ready: string } | { error: string; code: number } | { exited: number | null }>((resolve) => {
    child.on('message', (m: Notice) => {
      if ('warning' in m) process.stderr.write(`ocimount: warning: ${m.warning}\n`);
      else if ('note' in m) process.stderr.write(`ocimount: ${m.note}\n`);
      else if ('progress' in m) progress?.update(m.progress.what, m.progress.done, m.progress.total);
      else {
        progress?.end();
        resolve(m);
      }
    });
    child.on('exit', (code) => {
      progress?.end();
      resolve({ exited: code });
    });
  });
  if ('ready' in outcome) {
    child.disconnect();
    child.unref();
    process.stdout.write(`${outcome.ready}\nserver pid ${child.pid}, log ${logPath}; unmount with: ocimount umount ${mountpoint}\n`);
    return;
  }
  if ('error' in outcome) {
    // The error is said here; a log of ocimount's own choosing has nothing more to tell.
    if (!opts.log) fs.rmSync(logPath, { force: true });
    throw userErrorFor(outcome.code, outcome.error);
  }
  throw new EnvironmentError(`the mount server exited (code ${outcome.exited}) before the mount was ready; see ${logPath}`);
}

/** Runs the server in this process until a signal or an outside unmount ends it. */
async function serve(image: string, mountpoint: string, opts: MountCliOptions): Promise<void> {
  const stamp = () => new Date().toISOString();
  const log = (m: string) => process.stderr.write(`${stamp()} ${m}\n`);
  const notify = (n: Notice) => process.send?.(n);
  // In the background the terminal belongs to the parent: warnings, notes and progress go to it
  // over IPC (it prints them) and to the log. In the foreground stderr is both.
  const tell = (kind: 'warning' | 'note') => (m: string) => {
    if (!process.send) return void (opts.quiet || process.stderr.write(`ocimount: ${kind === 'warning' ? 'warning: ' : ''}${m}\n`));
    log(`${kind}: ${m}`);
    if (!opts.quiet) notify(kind === 'warning' ? { warning: m } : { note: m });
  };
  let lastProgress = 0;
  const toParent = (what: string, done: number, total: number) => {
    const now = Date.now();
    if (now - lastProgress < 200) return;
    lastProgress = now;
    notify({ progress: { what, done, total } });
  };
  // Signals are handled from the start: one that arrives while indexing ends the process before
  // anything is mounted, one that arrives later unmounts first. (Installing them only after the
  // ready message would leave a window where SIGTERM kills the server with the mount up.)
  let view: ImageView | undefined;
  let active: ActiveMount | undefined;
  let ending = false;
  const record: Pick<MountRecord, 'mountpoint' | 'log' | 'ownLog' | 'pid'> = {
    mountpoint: path.resolve(mountpoint),
    pid: process.pid,
    ...(process.send && process.env.OCIMOUNT_SERVER_LOG && { log: process.env.OCIMOUNT_SERVER_LOG, ownLog: process.env.OCIMOUNT_SERVER_OWN_LOG === '1' }),
  };
  const end = async (why: string) => {
    if (ending) return;
    ending = true;
    if (active) {
      log(`${why}: unmounting ${mountpoint}`);
      await active.unmount();
      log('unmounted');
      removeRecord(record);
    }
    await view?.close().catch(() => undefined);
    process.exit(0);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void end(sig));
  returnFreedMemory();
  // The index cache's files are written while the mount already serves (see below).
  view = await openView(image, opts, { onWarning: tell('warning'), onNote: tell('note'), cacheWriteBehind: true, ...(process.send && { onProgress: toParent }) });
  if (ending) return;
  watchArchive(view, log); // before mounting: the first read may already find the archive changed
  // Once the layer indexes are on disk, their paths wait there until a layer's own view asks
  // for them: the merged tree has its own names, and this is half of the indexes' memory for an
  // image of millions of entries. Such an image lets go of them before mounting (the mount's
  // priming would otherwise sit on top of them at the peak); a smaller one serves first.
  const opened = view;
  const big = opened.merged.nodeCount >= COLLECT_AFTER_ENTRIES;
  const cacheOutside = opened.cacheOutside(mountpoint); // resolved now: never once mounted
  const releasePaths = async () => {
    await opened.cacheWritten();
    if (!ending && opened.releaseLayerPaths(cacheOutside) > 0 && big) {
      collectGarbage();
      trimMemory();
    }
  };
  if (big) await releasePaths();
  active = await mountImage(view, mountpoint, { rootfsOnly: opts.rootfsOnly, allowOther: opts.allowOther, nonempty: opts.nonempty, log, layersNote: opts.layers });
  process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  const what = describeRecord(view.image.record).replace(/^\d+: /, '');
  const layers = appliedText(view, opts.layers);
  const ready = `mounted ${image} (${what}, ${layers}, ${view.merged.nodeCount} paths) at ${mountpoint}`;
  try {
    writeRecord({ ...record, archive: path.resolve(image), image: what, layers, started: new Date().toISOString() });
  } catch (err) {
    log(`cannot write the mount's record for ocimount list: ${(err as Error).message}`);
  }
  if (process.send) {
    log(ready);
    notify({ ready });
    process.disconnect();
  } else {
    process.stdout.write(`${ready}\nCtrl-C to unmount\n`);
  }
  if (!big) await releasePaths();
  await active.gone;
  log(`${mountpoint} was unmounted from outside`);
  removeRecord(record);
  await view.close().catch(() => undefined);
  process.exit(0);
}

/** `14 layers`, or with --layers: `layers 0-2 of 0-13 applied (--layers ..2)`. */
function appliedText(view: ImageView, spec: string | undefined): string {
  const n = view.layers.length;
  if (view.applied.length === n) return `${n} layers`;
  return `layers ${layerRanges(view.applied) || 'none'} of 0-${n - 1} applied (--layers ${spec})`;
}

/**
 * Says once in the log when the archive under the mount stops being the one that was indexed.
 * Every open and every read checks that itself (FileSource.verifyUnchanged) and fails with EIO
 * from the first changed read on; the timer only notices it when nothing reads, and notes an
 * archive removed or replaced by rename (still served: our descriptor holds the old bytes).
 */
function watchArchive(view: ImageView, log: (m: string) => void): void {
  const said = new Set<string>();
  for (const file of view.archive.files.backingFiles()) file.onStale = (reason) => log(`${reason}: reads now fail with EIO`);
  const timer = setInterval(() => {
    for (const file of view.archive.files.backingFiles()) {
      file.checkUnchanged().then(
        ({ stale, note }) => {
          // A stale archive was logged by onStale the moment it was seen.
          const message = stale ? undefined : note;
          if (message && !said.has(message)) {
            said.add(message);
            log(message);
          }
        },
        () => undefined,
      );
    }
  }, 3000);
  timer.unref();
}
