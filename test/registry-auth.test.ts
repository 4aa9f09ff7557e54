import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageView } from '../src/engine';
import { parseChallenges } from '../src/registry/auth';
import type { RegistryArchiveFiles } from '../src/registry/registry-files';
import { configureRegistry } from '../src/registry/settings';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, tempDir, type RunResult } from './helpers/mount-harness';
import { skopeoCopy, startRegistry, startTokenServer, type Registry, type TokenServer } from './helpers/registry';

/*
 * Credentials and the two auth schemes against the real registry: htpasswd Basic auth, and the
 * Bearer token flow with Distribution's `token` auth and a token issuer of our own (RS256 JWTs,
 * keys from openssl). Credentials come from a Docker config in a temp dir ($DOCKER_CONFIG):
 * `auths` entries, `credHelpers` and `credsStore` (a fake docker-credential-* helper on PATH).
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function scratch(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}
const lines = (t: string) => t.split('\n').filter((l) => l !== '');
function assertOk(r: RunResult): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
}
function assertError(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A Docker config folder holding `config`; DOCKER_CONFIG points at it until the next call. */
function dockerConfig(config: unknown): string {
  const dir = scratch('docker-config');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  process.env.DOCKER_CONFIG = dir;
  return dir;
}
const basic = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');

/** A docker-credential-NAME on PATH answering `get` for `server` with user/secret. */
function fakeHelper(name: string, server: string, user: string, secret: string): void {
  const dir = scratch('helper');
  const log = path.join(dir, 'asked');
  fs.writeFileSync(
    path.join(dir, `docker-credential-${name}`),
    `#!/bin/sh\n[ "$1" = get ] || exit 1\nread -r s\necho "$s" >> ${log}\nif [ "$s" = "${server}" ]; then printf '{"ServerURL":"%s","Username":"${user}","Secret":"${secret}"}\\n' "$s"; else echo "credentials not found in native keychain"; exit 1; fi\n`,
    { mode: 0o755 },
  );
  process.env.PATH = `${dir}:${process.env.PATH}`;
}

let imageDir: string;
before(async () => {
  imageDir = path.join(scratch('auth-image'), 'img');
  await buildArchive(imageDir, { layout: 'oci-dir', images: [{ tags: ['app:1'], layers: [{ entries: [{ path: 'hello.txt', content: 'hello\n' }, { path: 'second.txt', content: 'second\n' }] }] }] });
});

describe('WWW-Authenticate challenges', () => {
  it('are parsed with quoted commas and several schemes', () => {
    assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull,push' } },
    ]);
    assert.deepEqual(parseChallenges(['Basic realm="x"', 'Bearer realm=https://t/']), [
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'https://t/' } },
    ]);
  });
});

describe('Basic auth (htpasswd)', { timeout: 300_000 }, () => {
  let reg: Registry;
  let ref: string;
  before(async () => {
    reg = await startRegistry({ htpasswd: { user: 'bob', password: 'pw-bob' } });
    ref = `docker://${reg.host}/team/app:1`;
    await skopeoCopy(`oci:${imageDir}:1`, ref, ['--dest-tls-verify=false', '--dest-creds', 'bob:pw-bob']);
  });
  after(async () => reg?.stop());

  it('without credentials: exit 1, one line naming the registry and how to log in', async () => {
    dockerConfig({});
    const r = await ocimount(['cat', '--no-cache', ref, '/hello.txt']);
    assertError(r, 1, new RegExp(`^ocimount: ${esc(reg.host)}: manifest team/app:1: not found or not allowed \\(401\\).*docker login ${esc(reg.host)}`));
  });

  it('from auths in the Docker config', async () => {
    dockerConfig({ auths: { [reg.host]: { auth: basic('bob', 'pw-bob') } } });
    const r = await ocimount(['cat', '--no-cache', ref, '/hello.txt']);
    assertOk(r);
    assert.equal(r.stdout, 'hello\n');
    // Written as a URL, as older docker logins did.
    dockerConfig({ auths: { [`http://${reg.host}/v2/`]: { username: 'bob', password: 'pw-bob' } } });
    assertOk(await ocimount(['cat', '--no-cache', ref, '/hello.txt']));
  });

  it('refused credentials: exit 1, one line saying where they came from', async () => {
    const dir = dockerConfig({ auths: { [reg.host]: { auth: basic('bob', 'wrong') } } });
    const r = await ocimount(['ls', '--no-cache', ref]);
    assertError(r, 1, new RegExp(`${esc(reg.host)}: .*not found or not allowed \\(401\\).*credentials from ${esc(path.join(dir, 'config.json'))} were refused`));
  });

  it('from a credential helper (credHelpers, then credsStore)', async () => {
    fakeHelper('ocitest', reg.host, 'bob', 'pw-bob');
    dockerConfig({ credHelpers: { [reg.host]: 'ocitest' } });
    const r = await ocimount(['cat', '--no-cache', ref, '/hello.txt']);
    assertOk(r);
    assert.equal(r.stdout, 'hello\n');
    dockerConfig({ credsStore: 'ocitest' });
    assertOk(await ocimount(['cat', '--no-cache', ref, '/hello.txt']));
    // A helper that is not installed is a warning; the registry then refuses the anonymous user.
    dockerConfig({ credsStore: 'not-installed-anywhere' });
    const missing = await ocimount(['cat', '--no-cache', ref, '/hello.txt']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /docker-credential-not-installed-anywhere is not installed/);
  });
});

describe('Bearer tokens (Distribution token auth)', { timeout: 300_000 }, () => {
  let reg: Registry;
  let tokens: TokenServer;
  before(async () => {
    tokens = await startTokenServer({ alice: 'pw-alice' }, { refreshTokens: { 'rt-alice': 'alice' } });
    reg = await startRegistry({ token: tokens });
    for (const repo of ['public/app:1', 'private/app:1']) {
      await skopeoCopy(`oci:${imageDir}:1`, `docker://${reg.host}/${repo}`, ['--dest-tls-verify=false', '--dest-creds', 'alice:pw-alice']);
    }
  });
  after(async () => {
    await reg?.stop();
    await tokens?.close();
  });

  it('anonymous token for a public repository', async () => {
    dockerConfig({});
    tokens.requests.length = 0;
    const r = await ocimount(['cat', '--no-cache', `docker://${reg.host}/public/app:1`, '/hello.txt']);
    assertOk(r);
    assert.equal(r.stdout, 'hello\n');
    assert.deepEqual(tokens.requests.map((q) => [q.account, q.scope]), [['', 'repository:public/app:pull']], 'one anonymous token, reused for every request');
  });

  it('a private repository: exit 1 without credentials, read with them', async () => {
    dockerConfig({});
    const denied = await ocimount(['cat', '--no-cache', `docker://${reg.host}/private/app:1`, '/hello.txt']);
    assertError(denied, 1, new RegExp(`^ocimount: ${esc(reg.host)}: manifest private/app:1: not found or not allowed \\(401\\)`));
    dockerConfig({ auths: { [reg.host]: { auth: basic('alice', 'pw-alice') } } });
    tokens.requests.length = 0;
    const r = await ocimount(['cat', '--no-cache', `docker://${reg.host}/private/app:1`, '/hello.txt']);
    assertOk(r);
    assert.deepEqual(tokens.requests.map((q) => q.account), ['alice']);
    dockerConfig({ auths: { [reg.host]: { auth: basic('alice', 'nope') } } });
    const refused = await ocimount(['cat', '--no-cache', `docker://${reg.host}/private/app:1`, '/hello.txt']);
    assertError(refused, 1, new RegExp(`${esc(reg.host)}: token for private/app from http://127\\.0\\.0\\.1:\\d+: not found or not allowed \\(401\\).*were refused`));
  });

  it('an identity token (identitytoken) is exchanged by the refresh-token grant', async () => {
    dockerConfig({ auths: { [reg.host]: { identitytoken: 'rt-alice' } } });
    tokens.requests.length = 0;
    const r = await ocimount(['cat', '--no-cache', `docker://${reg.host}/private/app:1`, '/hello.txt']);
    assertOk(r);
    assert.equal(r.stdout, 'hello\n');
    assert.deepEqual(tokens.requests.map((q) => [q.account, q.scope]), [['alice', 'repository:private/app:pull']]);
    dockerConfig({ auths: { [reg.host]: { identitytoken: 'rt-stale' } } });
    const refused = await ocimount(['cat', '--no-cache', `docker://${reg.host}/private/app:1`, '/hello.txt']);
    assertError(refused, 1, new RegExp(`${esc(reg.host)}: token for private/app from http://127\\.0\\.0\\.1:\\d+: not found or not allowed \\(401\\)`));
  });

  it('an expired token is fetched anew', async () => {
    dockerConfig({ auths: { [reg.host]: { auth: basic('alice', 'pw-alice') } } });
    configureRegistry({ timeoutMs: 10_000 });
    tokens.expiresIn = 2;
    tokens.requests.length = 0;
    const view = await ImageView.open(`docker://${reg.host}/private/app:1`);
    try {
      assert.equal((await view.readFile(view.merged, view.merged.lookup('/hello.txt'))).toString(), 'hello\n');
      const before = tokens.requests.length;
      await new Promise((r) => setTimeout(r, 2500));
      // The layer's bytes are all in memory by now: ask the registry itself again.
      const files = view.archive.files as RegistryArchiveFiles;
      assert.equal((await files.client.manifest('1')).digest, view.image.record.manifestDigest);
      assert.equal(tokens.requests.length, before + 1, 'a new token once the old one expired');
      assert.equal((await view.readFile(view.merged, view.merged.lookup('/second.txt'))).toString(), 'second\n');
    } finally {
      tokens.expiresIn = 300;
      await view.close();
    }
  });
});
