import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { reporting } from './common';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('write the built-in demo image (a small docker save archive) to try ocimount on')
    .option('-o, --out <file>', 'where to write it', path.join(os.tmpdir(), 'ocimount-demo.tar'))
    .addHelpText('after', '\nExample:\n  ocimount demo -o demo.tar && mkdir -p /tmp/img && ocimount demo.tar /tmp/img && ls /tmp/img/rootfs\n')
    .action(
      reporting(async (opts: { out: string }) => {
        // Loaded here: the demo's tar writer is not needed by any other command.
        const { writeDemoImage } = await import('../demo');
        const what = await writeDemoImage(opts.out);
        process.stdout.write(`wrote ${opts.out} (${what})\n`);
      }),
    );
}
