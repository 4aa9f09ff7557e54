import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { isMountServerLine, OTHER_COMMANDS } from '../src/cli/main';
import { registerDemo } from '../src/cli/demo-command';
import { registerQueryCommands } from '../src/cli/query-commands';
import { ocimount, tempDir } from './helpers/mount-harness';

/*
 * A mount server registers only the mount command when its command line surely is a mount
 * (src/cli/main.ts, isMountServerLine); every other command line still sees every command.
 */

const work = tempDir('mount-line');
after(() => fs.rmSync(work, { recursive: true, force: true }));

describe('the mount server\'s command line', () => {
  it('names every other command main.ts would leave out', () => {
    const program = new Command('ocimount');
    registerDemo(program);
    registerQueryCommands(program);
    assert.deepEqual(program.commands.flatMap((c) => [c.name(), ...c.aliases()]).sort(), [...OTHER_COMMANDS].sort());
  });

  it('is told apart from every other command line', () => {
    const image = path.join(work, 'image.tar');
    fs.writeFileSync(image, '');
    const lsFile = path.join(work, 'ls');
    fs.writeFileSync(lsFile, '');
    const mount = [
      ['--foreground', image, '/mnt'],
      ['-f', '--cache-dir', '/tmp/c', image, '/mnt'],
      ['--layers', '..2', '--foreground', image, '/mnt'],
      ['mount', '--foreground', 'missing.tar', '/mnt'],
      ['--foreground', 'docker://localhost:5000/a:1', '/mnt'],
    ];
    const other = [
      [image, '/mnt'], // the starting process, not the server: it checks the line with every command
      ['--foreground', 'missing.tar', '/mnt'], // might be a misspelt command: the full CLI says which
      ['--foreground', '--help'],
      ['--foreground', image, '/mnt', '--help'],
      ['ls', '--foreground', image],
      ['--foreground', 'inspect', image],
      ['-f', 'umount', '/mnt'],
      ['--foreground', '--', image, '/mnt'],
    ];
    for (const args of mount) assert.equal(isMountServerLine(args, false), true, args.join(' '));
    for (const args of other) assert.equal(isMountServerLine(args, false), false, args.join(' '));
    assert.equal(isMountServerLine([image, '/mnt'], true), true, 'the background child');
    const cwd = process.cwd();
    process.chdir(work);
    try {
      assert.equal(isMountServerLine(['--foreground', 'ls', image], false), false, 'a command name, even where a file has it');
    } finally {
      process.chdir(cwd);
    }
    assert.ok(fs.existsSync(lsFile));
  });

  it('the full CLI still answers a misspelt command and --help next to --foreground', async () => {
    const typo = await ocimount(['--foreground', 'lss', 'x.tar']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command 'lss'; did you mean 'ls'\?/);
    const help = await ocimount(['--foreground', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /\n {2}inspect /);
  });
});
