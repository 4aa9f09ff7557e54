/**
 * What the project relies on inside its dependencies, checked against what is installed, so an
 * update that moves it fails here, naming the package and what changed, rather than as a
 * mysterious build failure or a mount that misreads its stat arrays. native/fuse/upstream.json
 * records what native/fuse was forked from and needs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { STAT_WORDS } from '../src/fuse/ops';

const ROOT = path.resolve(__dirname, '..', '..');
const NATIVE = path.join(ROOT, 'native', 'fuse');
const upstream = JSON.parse(fs.readFileSync(path.join(NATIVE, 'upstream.json'), 'utf8'));
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));

function installedVersion(pkg: string): string {
  return JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`, { paths: [ROOT] }), 'utf8')).version;
}

/** What a package's path module prints, run the way binding.gyp runs it (`<!(node -e "require(...)")`). */
function gypPath(request: string): string {
  return execFileSync(process.execPath, ['-e', `require(${JSON.stringify(request)})`], { cwd: NATIVE, encoding: 'utf8' }).trim();
}

describe('dependencies whose internals native/fuse relies on', () => {
  for (const pkg of ['fuse-native', 'napi-macros', 'fuse-shared-library']) {
    it(`${pkg} is pinned to the version native/fuse was written against`, () => {
      const want = upstream[pkg].version;
      assert.equal(manifest.dependencies[pkg], want, `package.json: ${pkg} must be pinned exactly to ${want} (native/fuse/upstream.json), not ${manifest.dependencies[pkg]}`);
      assert.equal(lock.packages[''].dependencies[pkg], want, `package-lock.json's root entry for ${pkg} disagrees with package.json`);
      assert.equal(lock.packages[`node_modules/${pkg}`]?.version, want, `package-lock.json locks ${pkg} at ${lock.packages[`node_modules/${pkg}`]?.version}, native/fuse needs ${want}`);
      assert.equal(installedVersion(pkg), want, `installed ${pkg} is ${installedVersion(pkg)}, native/fuse was written against ${want}: review the upstream change, then update native/fuse and upstream.json`);
    });
  }

  it('native/fuse/fuse-native.c says which fuse-native it forks, and it is the recorded one', () => {
    const c = fs.readFileSync(path.join(NATIVE, upstream['fuse-native'].file), 'utf8');
    const m = /fork of the native part of fuse-native (\d+\.\d+\.\d+)/.exec(c);
    assert.ok(m, 'fuse-native.c no longer names the fuse-native version it was forked from');
    assert.equal(m[1], upstream['fuse-native'].version, 'fuse-native.c and native/fuse/upstream.json name different fuse-native versions');
    // Stock fuse-native ships the C file the fork follows: it is still there to diff against.
    const stock = path.join(path.dirname(require.resolve('fuse-native/package.json', { paths: [ROOT] })), 'fuse-native.c');
    assert.ok(fs.existsSync(stock), `fuse-native ${installedVersion('fuse-native')} no longer ships fuse-native.c (${stock}), which native/fuse follows`);
  });

  it('napi-macros still gives an include folder with napi-macros.h', () => {
    const dir = path.resolve(NATIVE, gypPath('napi-macros'));
    assert.ok(fs.existsSync(path.join(dir, upstream['napi-macros'].header)), `napi-macros: require('napi-macros') prints ${dir}, which has no ${upstream['napi-macros'].header}`);
  });

  it('fuse-shared-library still prints its include folder (with fuse.h) and its libfuse', () => {
    const include = gypPath('fuse-shared-library/include');
    assert.ok(fs.existsSync(path.join(include, upstream['fuse-shared-library'].include)), `fuse-shared-library/include prints ${JSON.stringify(include)}, which has no fuse.h`);
    const lib = gypPath('fuse-shared-library/lib');
    assert.equal(path.basename(lib), upstream['fuse-shared-library'].lib, `fuse-shared-library/lib prints ${JSON.stringify(lib)}, not a ${upstream['fuse-shared-library'].lib}`);
    assert.ok(fs.existsSync(lib), `fuse-shared-library/lib prints ${lib}, which does not exist`);
  });

  it('the stat array is as long on both sides (src/fuse STAT_WORDS, native/fuse STAT_ARRAY_WORDS)', () => {
    const c = fs.readFileSync(path.join(NATIVE, 'fuse-native.c'), 'utf8');
    const m = /#define STAT_ARRAY_WORDS (\d+)/.exec(c);
    assert.ok(m, 'native/fuse/fuse-native.c no longer defines STAT_ARRAY_WORDS');
    assert.equal(Number(m[1]), STAT_WORDS, `native/fuse reads ${m[1]}-word stat arrays, src/fuse/ops.ts writes ${STAT_WORDS}`);
    assert.equal(STAT_WORDS, upstream.statArrayWords, 'native/fuse/upstream.json records another stat array length');
  });
});
