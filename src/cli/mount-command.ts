import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { ImageView } from '../engine';
import { EnvironmentError, UsageError, UserError, userErrorFor } from '../errors';
import { checkMountpoint, loadFuse, mountImage, unmountPath, type ActiveMount } from '../fuse/mount';
import { describeRecord } from '../image/select';
import { addImageOptions, openView, reportAndExit, type ImageOptions } from './common';
import { terminalProgress } from './progress';
import { isStdinArgument } from './archive-input';

interface MountCliOptions extends ImageOptions {
  foreground?: boolean;
  rootfsOnly?: boolean;
  allowOther?: boolean;
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
    .command('umount <mountpoint>')
    .alias('unmount')
    .description('unmount an ocimount mount (also cleans a dead one: "Transport endpoint is not connected")')
    .option('-z, --lazy', 'detach now even if busy; the kernel finishes when it is no longer used')
    .addHelpText('after', '\nExamples:\n  ocimount umount /mnt/img\n  ocimount umount --lazy /mnt/img   # busy, e.g. a shell still cd\'d inside\n')
    .action(async (mountpoint: string, opts: { lazy?: boolean }) => {
      try {
        await unmountPath(mountpoint, !!opts.lazy);
      } catch (err) {
        reportAndExit(err);
      }
    });
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
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(os.tmpdir(), `ocimount-${uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new EnvironmentError(`${dir}: not a private folder of yours (made by someone else?); choose a log file with --log FILE`);
  }
  return path.join(dir, `${path.resolve(mountpoint).replace(/[^A-Za-z0-9._-]/g, '_')}.log`);
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
  checkMountpoint(mountpoint);
  const logPath = opts.log ?? defaultLogPath(mountpoint);
  const logFd = openLog(logPath);
  const progress = opts.quiet ? undefined : terminalProgress();
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
    detached: true,
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
  if ('error' in outcome) throw userErrorFor(outcome.code, outcome.error);
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
  const end = async (why: string) => {
    if (ending) return;
    ending = true;
    if (active) {
      log(`${why}: unmounting ${mountpoint}`);
      await active.unmount();
      log('unmounted');
    }
    await view?.close().catch(() => undefined);
    process.exit(0);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void end(sig));
  view = await openView(image, opts, { onWarning: tell('warning'), onNote: tell('note'), ...(process.send && { onProgress: toParent }) });
  if (ending) return;
  watchArchive(view, log); // before mounting: the first read may already find the archive changed
  active = await mountImage(view, mountpoint, { rootfsOnly: opts.rootfsOnly, allowOther: opts.allowOther, log });
  process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  const what = describeRecord(view.image.record).replace(/^\d+: /, '');
  const ready = `mounted ${image} (${what}, ${view.layers.length} layers, ${view.merged.nodeCount} paths) at ${mountpoint}`;
  if (process.send) {
    log(ready);
    notify({ ready });
    process.disconnect();
  } else {
    process.stdout.write(`${ready}\nCtrl-C to unmount\n`);
  }
  await active.gone;
  log(`${mountpoint} was unmounted from outside`);
  await view.close().catch(() => undefined);
  process.exit(0);
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
