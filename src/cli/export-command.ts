import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { OutputError, UsageError, UserError } from '../errors';
import { treeTarChunks } from '../query/export';
import { addImageOptions, reporting, withImage, type ImageOptions } from './common';

interface ExportOptions extends ImageOptions {
  output: string;
}

const HELP = `
Writes the image's merged root filesystem (whiteouts applied, as a container would see it) as
one tar: directories before their contents, hard links as links to the first path of their
inode, symlinks, devices and fifos as such, modes, owners (numeric) and mtimes (to the
nanosecond) as in the image, names with their exact bytes, xattrs (binary values too) as pax
SCHILY.xattr records. Paths are relative (etc/passwd). The tar is streamed: memory
stays small whatever the image's size. A file is written under a temporary name and renamed
when complete, so a failed export never leaves a truncated tar behind.

Examples:
  ocimount export myapp.tar -o rootfs.tar
  ocimount export myapp.tar -o - | tar -tvf - | less
  ocimount export --layers ..3 myapp.tar -o base.tar     # the rootfs as of layer 3
  ocimount export myapp.tar -o - | gzip > rootfs.tar.gz
`;

export function registerExport(program: Command): Command {
  return addImageOptions(
    program
      .command('export <image>')
      .description('write the flattened root filesystem as one tar')
      .requiredOption('-o, --output <file>', 'the tar to write, or - for stdout'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting(async (image: string, opts: ExportOptions) => {
        const toStdout = opts.output === '-';
        if (toStdout && process.stdout.isTTY) throw new UsageError('refusing to write a tar to a terminal; give -o FILE or pipe stdout');
        await withImage(image, opts, async (view) => {
          const chunks = () => Readable.from(treeTarChunks(view, view.merged));
          if (toStdout) await pipeline(chunks(), process.stdout, { end: false });
          else await exportToFile(opts.output, (out) => pipeline(chunks(), out));
        });
      }),
    );
}

/** Writes through a temporary file next to `target` and renames it into place once complete. */
async function exportToFile(target: string, write: (out: fs.WriteStream) => Promise<void>): Promise<void> {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.partial`);
  let out: fs.WriteStream;
  try {
    out = fs.createWriteStream(temp, { flags: 'wx' });
    await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `${path.dirname(target)} does not exist` : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new OutputError(`${target}: cannot write: ${why}`, { cause: err });
  }
  try {
    // pipeline ends the file and waits until its bytes are handed to the system.
    await write(out);
    await fs.promises.rename(temp, target);
  } catch (err) {
    out.destroy();
    await fs.promises.rm(temp, { force: true });
    if (err instanceof UserError) throw err;
    throw new OutputError(`${target}: ${(err as Error).message}`, { cause: err });
  }
}
