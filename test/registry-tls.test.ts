import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, run, tempDir, type RunResult } from './helpers/mount-harness';
import { skopeoCopy, startRegistry, type Registry } from './helpers/registry';

/*
 * The transport to a registry, against the real registry serving HTTPS with a certificate from a
 * throwaway CA made here with openssl (subjectAltName: 127.0.0.1, localhost and this machine's
 * own non-loopback address). Docker's rule, which the client follows: a registry on 127.0.0.0/8
 * or localhost is "insecure": HTTPS first with the certificate unchecked, plain HTTP when it does
 * not speak TLS (the plain-HTTP case is every other registry test); any other registry is HTTPS
 * with its certificate checked against Node's roots, the system bundle (SSL_CERT_FILE) and
 * NODE_EXTRA_CA_CERTS, unless --insecure. A registry reached at this machine's own LAN address
 * is "any other registry" for the client, which is how the checked case is tested without a
 * name in /etc/hosts.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const lines = (t: string) => t.split('\n').filter((l) => l !== '');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function assertOk(r: RunResult): void {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
}

/** The first IPv4 address of this machine that is not loopback, if it has one. */
function lanAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('127.')) return a.address;
  }
  return undefined;
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and a server certificate it signed, valid for `ips` and localhost. */
async function makeCertificates(dir: string, ips: string[]): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string) => path.join(dir, n);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=ocimount test CA']);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=ocimount test registry']);
  fs.writeFileSync(f('ext.cnf'), `subjectAltName=${['DNS:localhost', ...ips.map((ip) => `IP:${ip}`)].join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  await openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

/** Runs `fn` with these environment variables set (for the CLI children it starts), then restores them. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  set(vars);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}

/** What the client trusts apart from the test CA: nothing extra. */
const NO_EXTRA_CAS = { SSL_CERT_FILE: undefined, NODE_EXTRA_CA_CERTS: undefined };

const lan = lanAddress();

describe('TLS to a registry', { timeout: 300_000 }, () => {
  let certs: { ca: string; cert: string; key: string };
  let imageDir: string;
  let loopbackTls: Registry;
  let lanTls: Registry | undefined;
  let lanPlain: Registry | undefined;

  before(async () => {
    const dir = tempDir('tls');
    cleanup.push(dir);
    certs = await makeCertificates(dir, ['127.0.0.1', ...(lan ? [lan] : [])]);
    imageDir = path.join(dir, 'img');
    await buildArchive(imageDir, { layout: 'oci-dir', images: [{ tags: ['app:1'], layers: [{ entries: [{ path: 'hello.txt', content: 'hello over tls\n' }] }] }] });
    const tls = { certificate: certs.cert, key: certs.key };
    loopbackTls = await startRegistry(undefined, { tls });
    await skopeoCopy(`oci:${imageDir}:1`, `docker://${loopbackTls.host}/team/app:1`, ['--dest-tls-verify=false']);
    if (lan) {
      lanTls = await startRegistry(undefined, { address: lan, tls });
      await skopeoCopy(`oci:${imageDir}:1`, `docker://${lanTls.host}/team/app:1`, ['--dest-tls-verify=false']);
      lanPlain = await startRegistry(undefined, { address: lan });
      await skopeoCopy(`oci:${imageDir}:1`, `docker://${lanPlain.host}/team/app:1`, ['--dest-tls-verify=false']);
    }
  });
  after(async () => {
    await loopbackTls?.stop();
    await lanTls?.stop();
    await lanPlain?.stop();
  });

  const cat = (host: string, extra: string[] = []) => ocimount(['cat', '--no-cache', ...extra, `docker://${host}/team/app:1`, '/hello.txt'], { timeoutMs: 120_000 });

  it('a registry on loopback speaking TLS is read without flags, its certificate unchecked (Docker treats 127.0.0.0/8 as insecure)', async () => {
    const r = await withEnv(NO_EXTRA_CAS, () => cat(loopbackTls.host));
    assertOk(r);
    assert.equal(r.stdout, 'hello over tls\n');
  });

  it('elsewhere, an untrusted certificate: exit 3, one line naming the registry and suggesting --insecure', { skip: lan ? false : 'this machine has no non-loopback IPv4 address' }, async () => {
    const r = await withEnv(NO_EXTRA_CAS, () => cat(lanTls!.host));
    assert.equal(r.code, 3, `exit code (stderr: ${r.stderr})`);
    assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^ocimount: ${esc(lanTls!.host)}: its TLS certificate is not trusted .*--insecure`));
  });

  it('elsewhere, --insecure accepts the untrusted certificate', { skip: lan ? false : 'no non-loopback address' }, async () => {
    const r = await withEnv(NO_EXTRA_CAS, () => cat(lanTls!.host, ['--insecure']));
    assertOk(r);
    assert.equal(r.stdout, 'hello over tls\n');
  });

  it('elsewhere, a certificate from a CA named in SSL_CERT_FILE or NODE_EXTRA_CA_CERTS is trusted', { skip: lan ? false : 'no non-loopback address' }, async () => {
    for (const v of ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS']) {
      const r = await withEnv({ ...NO_EXTRA_CAS, [v]: certs.ca }, () => cat(lanTls!.host));
      assertOk(r);
      assert.equal(r.stdout, 'hello over tls\n', v);
    }
  });

  it('elsewhere, a registry without TLS: exit 3, one line suggesting --insecure; with it, plain HTTP', { skip: lan ? false : 'no non-loopback address' }, async () => {
    const r = await withEnv(NO_EXTRA_CAS, () => cat(lanPlain!.host));
    assert.equal(r.code, 3, `exit code (stderr: ${r.stderr})`);
    assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^ocimount: ${esc(lanPlain!.host)}: does not speak TLS .*--insecure`));
    const ok = await withEnv(NO_EXTRA_CAS, () => cat(lanPlain!.host, ['--insecure']));
    assertOk(ok);
    assert.equal(ok.stdout, 'hello over tls\n');
  });
});
