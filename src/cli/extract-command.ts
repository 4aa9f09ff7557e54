import type { Command } from 'commander';
import { planExtract } from '../query/extract-plan';
import { writeItems } from '../query/extract-write';
import { chooseTree } from '../query/layer-ref';
import { displayName, nameFromText } from '../names';
import { resolveExplained } from './explain';
import { warning } from '../warnings';
import { addImageOptions, imageArgPath, reporting, warnPrinter, withImage, type ImageOptions } from './common';

interface ExtractOptions extends ImageOptions {
  output: string;
  sameOwner?: boolean;
  exactModes?: boolean;
  verbose?: boolean;
  layer?: string;
}

const HELP = `
Copies files, or whole directories with everything below them, out of the image into DIR at
their paths in the image (/etc/passwd -> DIR/etc/passwd), reading only the bytes they need.
Modes, mtimes and symlinks (written as they are, never followed) are kept, and paths that
are hard links of each other stay hard links. Nothing is written outside DIR, whatever the
archive holds; an existing symlink inside DIR on the way to a path is an error, not followed.

Files belong to you unless you run as root and give --same-owner, and when you are not root
every directory keeps at least rwx for you (an image's read-only directories, 0555, would
otherwise refuse rm -rf; --exact-modes keeps them as they are): a CI job can always delete
what it extracted. Device nodes need root (they are skipped with a warning otherwise); fifos
are made with mkfifo. Symlinks in the directories of a PATH are followed in the image,
a symlink as the last component is extracted as the link itself.

Examples:
  ocimount extract myapp.tar /app/trace.log -o out && cat out/app/trace.log
  ocimount extract myapp.tar /etc /usr/share/doc -o rootfs-bits
  ocimount extract --layer 7 myapp.tar /root/saved.txt -o layer7
  sudo ocimount extract --same-owner myapp.tar / -o /srv/rootfs
`;

export function registerExtract(program: Command): Command {
  return addImageOptions(
    program
      .command('extract <image> <path...>')
      .description('copy files or directories out of the image into a directory')
      .requiredOption('-o, --output <dir>', 'directory to write into (created if missing)')
      .option('--same-owner', 'keep the image\'s uid/gid (only when running as root)')
      .option('--exact-modes', 'keep read-only directory modes even when not root (then chmod -R u+w before deleting)')
      .option('-v, --verbose', 'print each path as it is written')
      .option('--layer <n|diff_id>', 'extract from one layer alone (its position, diff_id or a prefix of it)'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting(async (image: string, paths: string[], opts: ExtractOptions) => {
        const warn = warnPrinter(opts.quiet);
        const isRoot = process.getuid?.() === 0;
        if (opts.sameOwner && !isRoot) warn(warning('other', '--same-owner needs root; files will belong to you'));
        await withImage(image, opts, async (view) => {
          const { tree, layer } = chooseTree(view, opts.layer);
          // Every path is looked up before anything is written: a typo fails the whole command cleanly.
          const roots: number[] = [];
          for (const p of paths) roots.push(await resolveExplained(view, tree, imageArgPath(view, p), { followFinal: false }, { command: 'extract', archive: image, layer }));
          const items = planExtract(tree, roots);
          await writeItems(view, tree, items, opts.output, {
            sameOwner: !!opts.sameOwner && isRoot,
            // Device nodes from an untrusted image only when asked to reproduce it exactly.
            makeDevices: isRoot && !!opts.sameOwner,
            ownerWritableDirs: !isRoot && !opts.exactModes,
            warn,
            written: opts.verbose ? (item) => process.stdout.write(`${displayName(`/${item.rel}`)}\n`) : undefined,
          });
        });
      }),
    );
}
