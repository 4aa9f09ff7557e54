import { Command, CommanderError } from 'commander';
import { misspeltCommand } from './typo';
import * as fs from 'node:fs';
import { nameToText } from '../names';
import { quietOnClosedStdout } from '../query/sink';
import { addRegistryOptions, applyRegistryOptions, REGISTRY_HELP } from '../registry/cli-options';
import { reportAndExit } from './common';
import { registerMount } from './mount-command';
import type { registerDemo as RegisterDemo } from './demo-command';
import type { registerQueryCommands as RegisterQueryCommands } from './query-commands';

/** What src/cli/query-commands.ts and demo-command.ts register (test/cli-mount-line.test.ts checks it). */
export const OTHER_COMMANDS = ['inspect', 'ls', 'cat', 'find', 'extract', 'blame', 'diff', 'export', 'efficiency', 'demo'];

/** Options of the mount command that take a value: their value is not an operand. */
const MOUNT_VALUE_OPTIONS = new Set(['--image', '--platform', '--layers', '--cache-dir', '--cache-size', '--log', '--registry-timeout', '--registry-cache-size']);

/**
 * Whether this process is a mount server (the background child, or --foreground) for an image
 * that surely is one: the first operand is `mount`, or names an existing path or a docker://
 * image and no command, and no help or version is asked for. Only the mount command is then
 * registered: loading every other command's modules was a good part of a warm mount's start.
 */
export function isMountServerLine(args: string[], isChild = process.send !== undefined): boolean {
  if (!isChild && !args.includes('--foreground') && !args.includes('-f')) return false;
  let first: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (['-h', '--help', '-V', '--version'].includes(a)) return false;
    if (first !== undefined) continue;
    if (a === '--') return false;
    if (a.startsWith('-') && a !== '-') {
      if (MOUNT_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    first = a;
  }
  if (first === undefined) return false;
  if (first === 'mount') return true;
  if (OTHER_COMMANDS.includes(first) || ['umount', 'unmount', 'list', 'help'].includes(first)) return false;
  return /^docker:\/\//.test(first) || fs.existsSync(first);
}

export async function main(argv: string[]): Promise<void> {
  // `ocimount --help | head`, `ocimount cat … | head`: a reader that stops early is not an error.
  quietOnClosedStdout();
  const program = new Command('ocimount')
    .description('Mount a container image archive read-only with FUSE, or read it without a mount.')
    .version(require('../../../package.json').version)
    // Usage errors are one line, like every other error, with the way to more help in it.
    .configureOutput({ outputError: (text, write) => write(`ocimount: ${text.trim().replace(/^error: /, '')} (see ocimount --help)\n`) })
    .exitOverride()
    .addHelpText(
      'after',
      `
IMAGE is a docker save / podman save / skopeo / kaniko tar, an oci-archive, an OCI layout folder,
or any of those gzip-, zstd- or xz-compressed, or docker://HOST/REPO:TAG (an image in a registry,
read lazily). Run 'ocimount COMMAND --help' for each command.
or any of those gzip-, zstd- or xz-compressed; '-' reads it from standard input (mount-free
commands). Paths inside the image that do not start with / are taken from the config's
WorkingDir. Run 'ocimount COMMAND --help' for each command.

Examples:
  ocimount image.tar /mnt/img                 mount it (rootfs/, layers/, config.json, history)
  ocimount umount /mnt/img
  ocimount inspect image.tar                  images, config, layers and the steps that made them
  ocimount cat image.tar /app/trace.log       one file, no mount needed
  ocimount blame image.tar /usr/bin/tool      which layer (and which command) put it there
  ocimount extract image.tar /app -o out/     copy a subtree out, safely
  docker save app:1 | ocimount cat - /app/trace.log    the archive from standard input (-)
  ocimount efficiency image.tar --lowest-efficiency 0.95    dive's efficiency, as a CI gate
  ocimount list                               your active mounts; ocimount umount --all ends them
  ocimount demo && ocimount inspect /tmp/ocimount-demo.tar   try it on the built-in demo image
  ocimount cat docker://localhost:5000/app:1.0 /etc/os-release   straight from a registry

Exit codes:
  0   ok
  1   not found: a path, an image, a layer (--layer 99 and --layers 9 alike), an output path
      that cannot be written; efficiency: a gate failed
  2   usage error: a misspelt command or option, a value that does not parse, a mountpoint that
      does not exist or is not a directory, a mount of standard input
  3   the archive is unreadable or invalid
  4   this machine cannot do it: no /dev/fuse (modprobe fuse), /dev/fuse not permitted for this
      user (a permission problem), no fusermount, the FUSE addon not built or libfuse missing,
      a mountpoint already mounted, left dead or not empty (--nonempty), a refused mount/unmount
  70  ocimount itself: not built (dist/ missing: a checkout before 'npm run build', or while a
      build runs), or an internal error (a bug: please report it with the message)`,
    );
  const args = exactArgv(argv);
  registerMount(program);
  if (!isMountServerLine(args.slice(2))) {
    /* eslint-disable @typescript-eslint/no-require-imports */
    (require('./demo-command') as { registerDemo: typeof RegisterDemo }).registerDemo(program);
    (require('./query-commands') as { registerQueryCommands: typeof RegisterQueryCommands }).registerQueryCommands(program);
    /* eslint-enable @typescript-eslint/no-require-imports */
  }
  // Every command that reads an image also reads docker:// references (src/registry/).
  for (const cmd of program.commands) {
    if (cmd.options.some((o) => o.long === '--image')) addRegistryOptions(cmd).addHelpText('after', REGISTRY_HELP);
  }
  program.hook('preAction', (_program, action) => {
    try {
      if (action.options.some((o) => o.long === '--registry-timeout')) applyRegistryOptions(action.opts());
    } catch (err) {
      reportAndExit(err);
    }
  });
  const typo = misspeltCommand(program, args.slice(2));
  if (typo) {
    process.stderr.write(`ocimount: ${typo} (see ocimount --help)\n`);
    process.exit(2);
  }
  try {
    await program.parseAsync(args);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    throw err;
  }
}

/**
 * Node decodes the command line as UTF-8 and turns bytes that are not UTF-8 into U+FFFD, so an
 * image path like $'/latin1-\xe9.txt' would arrive as a different name. On Linux the kernel
 * still has the exact bytes: such arguments are re-read from /proc/self/cmdline and passed on
 * with each undecodable byte as a lone surrogate, which `nameFromText` turns back into it.
 */
export function exactArgv(argv: string[]): string[] {
  if (!argv.some((a) => a.includes('\ufffd'))) return argv;
  let raw: string[];
  try {
    raw = fs.readFileSync('/proc/self/cmdline').toString('latin1').split('\0');
  } catch {
    return argv;
  }
  // argv is [node, script, ...args]; cmdline may hold node's own flags between them.
  const args = raw.slice(raw.length - 1 - (argv.length - 2), raw.length - 1);
  if (args.length !== argv.length - 2) return argv;
  const exact = args.map(nameToText);
  for (let i = 0; i < exact.length; i++) {
    if (Buffer.from(exact[i].replace(/[\udc80-\udcff]/g, '\ufffd'), 'utf8').toString('utf8') !== argv[i + 2]) return argv;
  }
  return [argv[0], argv[1], ...exact];
}
