import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, isMounted, ROOT, run, tempDir } from './helpers/mount-harness';

/*
 * ocimount installs like any npm CLI: `npm pack` makes a package that `npm install -g` installs
 * (its FUSE addon compiled on install from native/fuse with node-gyp) and runs without the
 * TypeScript compiler; `npx ocimount` finds it. A real pack and a real install into a temporary
 * prefix (npm fetches the dependencies from the registry: this test needs the network; set
 * OCIMOUNT_SKIP_INSTALL_TEST=1 to skip it where there is none).
 *
 * `npm pack --ignore-scripts` packs the dist/ this test runs from: the package's `prepare`
 * (rm -rf dist && tsc) would delete it under the other test files.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('npm pack, npm install -g, npx', { skip: process.env.OCIMOUNT_SKIP_INSTALL_TEST ? 'OCIMOUNT_SKIP_INSTALL_TEST is set' : false }, () => {
  it('installs from the packed tarball into a temp prefix and runs: --version, a query, a mount', { timeout: 900_000 }, async () => {
    const work = tempDir('pack');
    cleanup.push(work);
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    const pack = await sh('npm', ['pack', '--ignore-scripts', '--pack-destination', work, '--json'], { cwd: ROOT });
    assert.equal(pack.code, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info.files.map((f) => f.path);
    assert.ok(files.includes('bin/ocimount') && files.includes('dist/src/cli/main.js') && files.includes('native/fuse/fuse-native.c'));
    assert.ok(files.includes('native/inflate/inflate.c') && files.includes('native/tarscan/tarscan.c'), 'every addon\'s source is packed');
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('src/') || f.startsWith('test/') || /^native\/[^/]+\/build\//.test(f)), 'built output and addon sources only');

    const prefix = path.join(work, 'prefix');
    const install = await sh('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', path.join(work, info.filename)], { cwd: work, env: { npm_config_cache: path.join(work, 'cache') } });
    assert.equal(install.code, 0, install.stderr);
    const pkg = path.join(prefix, 'lib', 'node_modules', 'ocimount');
    assert.ok(!fs.existsSync(path.join(pkg, 'node_modules', 'typescript')), 'no TypeScript compiler needed or installed');
    for (const [addon, file] of [['fuse', 'ocimount_fuse.node'], ['inflate', 'ocimount_inflate.node'], ['tarscan', 'ocimount_tarscan.node']]) {
      assert.ok(fs.existsSync(path.join(pkg, 'native', addon, 'build', 'Release', file)), `the ${addon} addon was built on install`);
    }

    const bin = path.join(prefix, 'bin', 'ocimount');
    const v = await run(bin, ['--version']);
    assert.equal(v.stdout.trim(), version);
    const ls = await run(bin, ['ls', path.join(FIXTURES, 'dive-legacy-whiteouts.tar'), '/root']);
    assert.equal(ls.stdout, 'saved.txt\n', ls.stderr);

    const npx = await sh('npx', ['--offline', 'ocimount', '--version'], { cwd: work, env: { npm_config_prefix: prefix, npm_config_cache: path.join(work, 'cache') } });
    assert.equal(npx.stdout.trim(), version, npx.stderr);

    const mnt = path.join(work, 'mnt');
    fs.mkdirSync(mnt);
    const tmp = path.join(work, 'tmp');
    fs.mkdirSync(tmp);
    let pid: number | undefined;
    try {
      const m = await sh(bin, [path.join(FIXTURES, 'dive-legacy-whiteouts.tar'), mnt], { env: { TMPDIR: tmp }, timeoutMs: 60_000 });
      assert.equal(m.code, 0, m.stderr);
      pid = Number(/server pid (\d+)/.exec(m.stdout)?.[1]);
      assert.ok(fs.readdirSync(path.join(mnt, 'rootfs', 'root')).includes('saved.txt'));
      assert.equal((await sh(bin, ['umount', mnt], { env: { TMPDIR: tmp } })).code, 0);
    } finally {
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* ended by the unmount */
        }
      }
      if (isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => undefined);
    }
  });
});
