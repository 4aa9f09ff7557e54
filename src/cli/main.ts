import { Command, CommanderError } from 'commander';
import { registerDemo } from './demo-command';
import { registerMount } from './mount-command';
import { registerQueryCommands } from './query-commands';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('ocimount')
    .description('Mount a container image archive read-only with FUSE, or read it without a mount.')
    .version(require('../../../package.json').version)
    .showHelpAfterError('(run ocimount --help for usage)')
    .exitOverride();
  registerMount(program);
  registerDemo(program);
  registerQueryCommands(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    throw err;
  }
}
