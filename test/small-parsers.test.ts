/**
 * The small parsers behind the command-line flags, tested directly (they were reached only
 * through the CLI): find's globs, --layers, image selection, --platform against the config, and
 * reference normalisation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundError, UsageError } from '../src/errors';
import { parseLayerSelection } from '../src/image/layer-selection';
import type { ImageRecord } from '../src/image/model';
import { checkConfigPlatform, normalizeReference, parsePlatform, selectImage } from '../src/image/select';
import { globToRegExp } from '../src/query/glob';

describe('globToRegExp (find -name / -path)', () => {
  const m = (glob: string, s: string, ignoreCase = false) => globToRegExp(glob, { ignoreCase }).test(s);
  it('* and ? match any character, / and a leading dot included', () => {
    assert.ok(m('*.js', 'a/b.js'));
    assert.ok(m('*', '.hidden'));
    assert.ok(m('a?c', 'a/c'));
    assert.ok(!m('*.js', 'a.jsx'));
  });
  it('sets: ranges, negation with ! and ^, classes, and ] first', () => {
    assert.ok(m('[a-c]x', 'bx'));
    assert.ok(!m('[!a-c]x', 'bx'));
    assert.ok(m('[^a-c]x', 'dx'));
    assert.ok(m('[[:digit:]]', '7'));
    assert.ok(m('[]]', ']'));
  });
  it('a backslash quotes; an unclosed [ is literal; regex characters are literal', () => {
    assert.ok(m('\\*', '*'));
    assert.ok(!m('\\*', 'a'));
    assert.ok(m('[abc', '[abc'));
    assert.ok(m('a.b+(c)', 'a.b+(c)'));
    assert.ok(!m('a.b', 'axb'));
  });
  it('matches the whole name, case-insensitively when asked', () => {
    assert.ok(!m('b', 'abc'));
    assert.ok(m('README*', 'readme.md', true));
    assert.ok(!m('README*', 'readme.md'));
  });
});

describe('parseLayerSelection (--layers)', () => {
  it('positions, ranges, ..B, A.. and exclusions', () => {
    assert.deepEqual(parseLayerSelection('3', 5), [3]);
    assert.deepEqual(parseLayerSelection('0-2,4', 5), [0, 1, 2, 4]);
    assert.deepEqual(parseLayerSelection('..2', 5), [0, 1, 2]);
    assert.deepEqual(parseLayerSelection('3..', 5), [3, 4]);
    assert.deepEqual(parseLayerSelection('^1', 4), [0, 2, 3]);
    assert.deepEqual(parseLayerSelection('..3,^2', 5), [0, 1, 3]);
    assert.deepEqual(parseLayerSelection('4, 1 ,1', 5), [1, 4]);
  });
  it('mistakes are usage errors that say what is wrong', () => {
    const usage = (spec: string, re: RegExp) => assert.throws(() => parseLayerSelection(spec, 3), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message));
    usage('x', /"x" is not a layer position/);
    // A position past the top is "not found" (exit 1), the code --layer 99 has.
    assert.throws(() => parseLayerSelection('3', 3), (e: unknown) => e instanceof NotFoundError && e.exitCode === 1 && /layer 3 does not exist \(the image has layers 0-2\)/.test((e as Error).message));
    usage('1,,2', /empty item/);
    usage('2-1', /range 2-1 runs backwards/);
    usage('-1', /"" is not a layer position/);
  });
});

describe('normalizeReference', () => {
  it('adds docker.io, library/ and :latest the way Docker compares names', () => {
    assert.equal(normalizeReference('alpine'), 'docker.io/library/alpine:latest');
    assert.equal(normalizeReference('alpine:3.19'), 'docker.io/library/alpine:3.19');
    assert.equal(normalizeReference('me/app'), 'docker.io/me/app:latest');
    assert.equal(normalizeReference('ghcr.io/me/app:1'), 'ghcr.io/me/app:1');
    assert.equal(normalizeReference('localhost/app'), 'localhost/app:latest');
    assert.equal(normalizeReference('registry:5000/app'), 'registry:5000/app:latest');
    assert.equal(normalizeReference('app@sha256:abc'), 'docker.io/library/app@sha256:abc');
  });
});

describe('image selection', () => {
  const rec = (position: number, names: string[], platform?: ImageRecord['platform'], configDigest?: string): ImageRecord => ({
    position, names, platform, configDigest, layout: 'oci-layout', configPath: `c${position}`,
  });
  const two = [rec(0, ['docker.io/library/app:1'], undefined, 'sha256:aaaa1111'), rec(1, ['ghcr.io/me/tool:2'], undefined, 'sha256:bbbb2222')];

  it('one image is taken without asking', () => {
    assert.equal(selectImage([rec(0, [])], {}, 'x.tar').position, 0);
  });
  it('by position, by short or full name, by digest prefix', () => {
    assert.equal(selectImage(two, { image: '1' }, 'x.tar').position, 1);
    assert.equal(selectImage(two, { image: 'app:1' }, 'x.tar').position, 0);
    assert.equal(selectImage(two, { image: 'ghcr.io/me/tool:2' }, 'x.tar').position, 1);
    assert.equal(selectImage(two, { image: 'sha256:bbbb22' }, 'x.tar').position, 1);
    assert.equal(selectImage(two, { image: 'bbbb22' }, 'x.tar').position, 1);
    // Under 6 hex digits a digest prefix is too short to mean anything: it is taken as a name.
    assert.throws(() => selectImage(two, { image: 'sha256:bbbb' }, 'x.tar'), NotFoundError);
  });
  it('several images without --image is a usage error listing them; a name not there is not found', () => {
    assert.throws(() => selectImage(two, {}, 'x.tar'), (e: unknown) => e instanceof UsageError && /x\.tar holds 2 images; choose one with --image/.test(e.message));
    assert.throws(() => selectImage(two, { image: 'nope' }, 'x.tar'), (e: unknown) => e instanceof NotFoundError && /no image "nope"/.test(e.message));
    assert.throws(() => selectImage([], {}, 'x.tar'), NotFoundError);
  });
  it('platforms of one index: --platform picks by os, architecture and variant as the index spells them', () => {
    const multi = [rec(0, [], { os: 'linux', architecture: 'amd64' }), rec(1, [], { os: 'linux', architecture: 'arm64', variant: 'v8' })];
    assert.equal(selectImage(multi, { platform: 'linux/arm64' }, 'x.tar').position, 1);
    assert.equal(selectImage(multi, { platform: 'linux/arm64/v8' }, 'x.tar').position, 1);
    assert.throws(() => selectImage(multi, { platform: 'linux/s390x' }, 'x.tar'), (e: unknown) => e instanceof NotFoundError && /no image for platform linux\/s390x/.test(e.message));
  });
  it('an image without a recorded platform passes selection; the config decides later', () => {
    assert.equal(selectImage([rec(0, [])], { platform: 'linux/arm64' }, 'x.tar').position, 0);
  });
  it('parsePlatform refuses what is not os/arch[/variant]', () => {
    assert.deepEqual(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    for (const bad of ['linux', 'linux/', 'a/b/c/d']) assert.throws(() => parsePlatform(bad), UsageError, bad);
  });
});

describe('checkConfigPlatform', () => {
  it('a matching config passes silently; a request without a variant takes any', () => {
    assert.equal(checkConfigPlatform({ os: 'linux', architecture: 'amd64' }, 'linux/amd64', 0, 'x.tar'), undefined);
    assert.equal(checkConfigPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm', 0, 'x.tar'), undefined);
    assert.equal(checkConfigPlatform({ os: 'linux', architecture: 'arm64' }, 'linux/arm64/v8', 0, 'x.tar'), undefined);
    // Aliases as containerd normalizes them, on either side.
    assert.equal(checkConfigPlatform({ os: 'linux', architecture: 'aarch64' }, 'linux/arm64', 0, 'x.tar'), undefined);
    assert.equal(checkConfigPlatform({ os: 'linux', architecture: 'amd64' }, 'linux/x86_64', 0, 'x.tar'), undefined);
  });
  it('another platform is not found, naming both', () => {
    assert.throws(
      () => checkConfigPlatform({ os: 'linux', architecture: 'amd64' }, 'linux/arm64', 2, 'x.tar'),
      (e: unknown) => e instanceof NotFoundError && e.message === 'x.tar: image 2 is linux/amd64, not linux/arm64',
    );
    assert.throws(() => checkConfigPlatform({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'linux/arm/v7', 0, 'x.tar'), NotFoundError);
  });
  it('a config without an architecture cannot be checked: a platform warning says so', () => {
    assert.deepEqual(checkConfigPlatform({ os: 'linux' }, 'linux/arm64', 0, 'x.tar'), {
      code: 'platform',
      text: "image 0's config records no architecture (os linux); taking it as linux/arm64 unchecked",
    });
  });
});
