import type { Command } from 'commander';
import { registerBlame } from './blame-command';
import { registerCat } from './cat-command';
import { registerDiff } from './diff-command';
import { registerEfficiency } from './efficiency-command';
import { registerExport } from './export-command';
import { registerExtract } from './extract-command';
import { registerFind } from './find-command';
import { registerInspect } from './inspect-command';
import { registerLs } from './ls-command';

/**
 * The commands that answer without a mount (for CI runners and containers with no /dev/fuse).
 * Their usage errors are one line like every other error: `ocimount: …`, exit 2.
 */
export function registerQueryCommands(program: Command): void {
  const commands = [registerInspect, registerLs, registerCat, registerFind, registerExtract, registerBlame, registerDiff, registerExport, registerEfficiency].map((register) => register(program));
  for (const cmd of commands) {
    cmd.showHelpAfterError(false).configureOutput({
      outputError: (message, write) => write(`ocimount: ${message.replace(/^error: /, '').trimEnd()} (see ocimount ${cmd.name()} --help)\n`),
    });
  }
}
