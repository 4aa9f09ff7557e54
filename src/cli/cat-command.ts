import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { NotFoundError, UserError } from '../errors';
import { EntryType, typeWords } from '../tar/entry';
import { fileChunks } from '../query/content';
import { displayName, nameFromText } from '../names';
import { displayPath } from '../query/format';
import { chooseTree } from '../query/layer-ref';
import { imagePath } from '../query/resolve';
import { resolveExplained } from './explain';
import { addImageOptions, imageArgPath, reporting, withImage, type ImageOptions } from './common';

interface CatOptions extends ImageOptions {
  layer?: string;
}

const HELP = `
Writes the bytes of each file to stdout, in order, as they are in the image (binary-safe,
streamed in chunks straight from the layers). Symlinks are followed inside the image: an
absolute target starts at the image root, never at this machine's. A directory, a device or a
missing path is reported on stderr and the others are still written; the exit code is then 1.

Examples:
  ocimount cat myapp.tar /etc/os-release
  ocimount cat myapp.tar /app/trace.log > trace.log
  docker save myapp:1.0 | ocimount cat - /app/trace.log   # the archive from a pipe
  ocimount cat myapp.tar ./server | sha256sum           # relative to the config's WorkingDir
  ocimount cat --layer 7 myapp.tar /root/saved.txt    # the copy layer 7 wrote
  ocimount cat --image myapp:1.0 bundle.tar /etc/passwd /etc/group
`;

export function registerCat(program: Command): Command {
  return addImageOptions(
    program
      .command('cat <image> <path...>')
      .description('write files of the image to stdout, like cat')
      .option('--layer <n|diff_id>', 'read from one layer alone (its position, diff_id or a prefix of it)'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting((image: string, paths: string[], opts: CatOptions) =>
        withImage(image, opts, async (view) => {
          const { tree, layer } = chooseTree(view, opts.layer);
          for (const typed of paths) {
            const path = imageArgPath(view, typed);
            try {
              const node = await resolveExplained(view, tree, path, { followFinal: true }, { command: 'cat', archive: image, layer });
              const type = tree.type(node);
              if (type === EntryType.Directory) throw new NotFoundError(`${displayName(displayPath(imagePath(path)))}: is a directory`);
              if (type !== EntryType.File) throw new NotFoundError(`${displayName(displayPath(imagePath(path)))}: is a ${typeWords(type)}, not a regular file`);
              await pipeline(Readable.from(fileChunks(view, tree, node)), process.stdout, { end: false });
            } catch (err) {
              if (!(err instanceof UserError)) throw err;
              // Like cat: report this path and go on with the rest; the exit code says it failed.
              process.stderr.write(`ocimount: ${err.message}\n`);
              process.exitCode = err.exitCode;
            }
          }
        }),
      ),
    );
}
