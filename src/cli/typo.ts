import * as fs from 'node:fs';
import type { Command } from 'commander';

/**
 * `ocimount IMAGE MOUNTPOINT` is the default command, so any first word that is not a command
 * name is taken as an archive, and a misspelt command (`ocimount inpsect img.tar`) used to
 * become a mount attempt with a baffling error ("img.tar: mountpoint is not a directory").
 *
 * The rule that tells them apart: the first argument is a typo when it is not a command, not an
 * existing file or folder, not a `docker://` reference, and is within a small edit distance of a
 * command name or alias (1 for names of up to 3 letters, 2 for longer ones, a swap of two
 * neighbouring letters counting as 1). Anything else still goes to the mount, which says what is
 * wrong with the archive or mountpoint.
 */

/** Options of the default (mount) command that take a value: their value is not the first word. */
const VALUE_OPTIONS = new Set(['--image', '--platform', '--layers', '--cache-dir', '--cache-size', '--log']);

export function misspeltCommand(program: Command, args: string[]): string | undefined {
  let first: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      first = args[i + 1];
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    first = a;
    break;
  }
  if (first === undefined || first === '' || first.includes('/')) return undefined;
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  if (names.includes(first) || first === 'help') return undefined;
  if (/^docker:\/\//.test(first) || fs.existsSync(first)) return undefined;
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const d = editDistance(first.toLowerCase(), name);
    const limit = name.length <= 3 ? 1 : 2;
    if (d <= limit && (!best || d < best.distance)) best = { name, distance: d };
  }
  if (!best) return undefined;
  // An alias is suggested as the command it stands for (unmout -> umount), unless typed as such.
  const cmd = program.commands.find((c) => c.name() === best!.name || c.aliases().includes(best!.name))!;
  const suggestion = editDistance(first.toLowerCase(), cmd.name()) <= best.distance ? cmd.name() : best.name;
  return `unknown command '${first}'; did you mean '${suggestion}'?`;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
