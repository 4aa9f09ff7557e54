// Real registries for the tests: CNCF Distribution (`docker-registry serve CONFIG`, the Debian
// package) on a free loopback port with its storage in a temp dir (never the system service),
// images pushed with `skopeo copy`, a small token issuer for the Bearer flow (keys made with
// openssl), and a fault-injecting proxy. Every process started here is ended by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { run, tempDir } from './mount-harness';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export type RegistryAuth = { htpasswd: { user: string; password: string } } | { token: TokenServer };

export interface Registry {
  host: string;
  port: number;
  dir: string;
  proc: ChildProcess;
  /** SIGKILL, and wait for it to go. */
  kill(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Starts it again on the same port and storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitUp(host: string, port: number, tls: boolean, proc: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = (tls ? https : http).get({ host, port, path: '/v2/', timeout: 1000, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry not up on ${port}: ${log()}`);
}

export interface RegistryListen {
  /** Address to listen on (default 127.0.0.1). */
  address?: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
}

export async function startRegistry(auth?: RegistryAuth, listen: RegistryListen = {}): Promise<Registry> {
  const dir = tempDir('registry');
  const port = await freePort();
  const address = listen.address ?? '127.0.0.1';
  const tlsYaml = listen.tls ? `  tls:\n    certificate: ${listen.tls.certificate}\n    key: ${listen.tls.key}\n` : '';
  let authYaml = '';
  if (auth && 'htpasswd' in auth) {
    const file = path.join(dir, 'htpasswd');
    const r = await run('htpasswd', ['-Bbn', auth.htpasswd.user, auth.htpasswd.password]);
    if (r.code !== 0) throw new Error(`htpasswd: ${r.stderr}`);
    fs.writeFileSync(file, r.stdout);
    authYaml = `auth:\n  htpasswd:\n    realm: test-realm\n    path: ${file}\n`;
  } else if (auth && 'token' in auth) {
    const t = auth.token;
    authYaml = `auth:\n  token:\n    realm: ${t.url}/token\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.certFile}\n`;
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: ${address}:${port}\n${tlsYaml}${authYaml}`,
  );
  let log = '';
  const reg: Registry = {
    host: `${address}:${port}`,
    port,
    dir,
    proc: undefined as unknown as ChildProcess,
    async kill() {
      const p = reg.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      await gone;
    },
    pause() {
      reg.proc.kill('SIGSTOP');
    },
    resume() {
      reg.proc.kill('SIGCONT');
    },
    async restart() {
      await reg.kill();
      await start();
    },
    async stop() {
      await reg.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const start = async () => {
    reg.proc = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    reg.proc.stdout!.on('data', (d) => (log = (log + d).slice(-4000)));
    reg.proc.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    await waitUp(address, port, !!listen.tls, reg.proc, () => log);
  };
  await start();
  return reg;
}

/** skopeo copy SRC DEST with extra flags; throws with skopeo's stderr on failure. */
export async function skopeoCopy(src: string, dest: string, flags: string[] = []): Promise<void> {
  const r = await run('skopeo', ['copy', '-q', '--retry-times', '0', ...flags, src, dest], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`skopeo copy ${src} ${dest}: ${r.stderr}`);
}

// ---- the token issuer --------------------------------------------------------------------

export interface TokenServer {
  url: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Token requests answered, by account ('' = anonymous). */
  requests: Array<{ account: string; scope: string; granted: string[] }>;
  /** Lifetime of the tokens it hands out (s). */
  expiresIn: number;
  close(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * Issues JWTs the way Distribution's `token` auth checks them: RS256, signed by a key whose
 * self-signed certificate is the registry's `rootcertbundle`, the certificate in `x5c`. Known
 * users get what they ask for; anonymous callers get pull on `public/*` only.
 */
export async function startTokenServer(users: Record<string, string>, opts: { expiresIn?: number; refreshTokens?: Record<string, string> } = {}): Promise<TokenServer> {
  const dir = tempDir('token');
  const key = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certFile, '-days', '2', '-subj', '/CN=ocimount-test-token-issuer']);
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  const keyPem = fs.readFileSync(key);
  const certDer = new X509Certificate(fs.readFileSync(certFile)).raw;
  const port = await freePort();
  const t: TokenServer = {
    url: `http://127.0.0.1:${port}`,
    service: 'ocimount-test-registry',
    issuer: 'ocimount-test-issuer',
    certFile,
    requests: [],
    expiresIn: opts.expiresIn ?? 300,
    // Its key and certificate go with it (they were left behind in the temp dir before).
    close: () => new Promise<void>((resolve) => server.close(() => resolve())).then(() => fs.rmSync(dir, { recursive: true, force: true })),
  };
  /** The OAuth2 refresh-token grant (what an `identitytoken` is exchanged by): a form POST. */
  const refreshGrant = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      const account = form.get('grant_type') === 'refresh_token' ? opts.refreshTokens?.[form.get('refresh_token') ?? ''] : undefined;
      if (!account) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad refresh token' }] }));
      }
      answer(res, account, (form.get('scope') ?? '').split(' ').filter(Boolean));
    });
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') return refreshGrant(req, res);
    const url = new URL(req.url!, t.url);
    let account = '';
    const authz = req.headers.authorization;
    if (authz?.startsWith('Basic ')) {
      const [u, ...p] = Buffer.from(authz.slice(6), 'base64').toString().split(':');
      if (users[u] === undefined || users[u] !== p.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      }
      account = u;
    }
    answer(res, account, url.searchParams.getAll('scope'));
  });
  const answer = (res: http.ServerResponse, account: string, scopes: string[]) => {
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      const wanted = (actions ?? '').split(',').filter(Boolean);
      const allowed = account ? wanted : name.startsWith('public/') ? wanted.filter((a) => a === 'pull') : [];
      return allowed.length ? [{ type, name, actions: allowed }] : [];
    });
    t.requests.push({ account, scope: scopes.join(' '), granted: access.flatMap((a) => a.actions.map((x) => `${a.name}:${x}`)) });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
    const claims = { iss: t.issuer, sub: account, aud: t.service, exp: now + t.expiresIn, nbf: now - 5, iat: now, jti: createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16), access };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${signing}.${b64url(sign('sha256', Buffer.from(signing), keyPem))}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: t.expiresIn, issued_at: new Date().toISOString() }));
  };
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return t;
}

// ---- a proxy that injects faults -----------------------------------------------------------

export interface FaultProxy {
  host: string;
  /** Decides per request: undefined = pass it on. */
  fault: (req: http.IncomingMessage, n: number) => { status: number; headers?: Record<string, string> } | 'drop' | { redirect: string } | undefined;
  /** Rewrites the body (and keeps the headers but Content-Length) of an answer passed on; undefined = as it is. */
  rewrite: (req: http.IncomingMessage, body: Buffer) => Buffer | undefined;
  /** Requests seen, with what was done. */
  log: string[];
  close(): Promise<void>;
}

/** A plain HTTP proxy to `target` (host:port) on a free loopback port. */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const port = await freePort();
  let n = 0;
  const p: FaultProxy = {
    host: `127.0.0.1:${port}`,
    fault: () => undefined,
    rewrite: () => undefined,
    log: [],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const [thost, tport] = target.split(':');
  const server = http.createServer((req, res) => {
    const f = p.fault(req, n++);
    p.log.push(`${req.method} ${req.url} ${req.headers.range ?? ''} auth=${req.headers.authorization ? 'yes' : 'no'} -> ${f === undefined ? 'pass' : typeof f === 'string' ? f : 'redirect' in f ? `redirect` : f.status}`);
    if (f === 'drop') return req.socket.destroy();
    if (f && 'redirect' in f) {
      res.writeHead(307, { location: f.redirect });
      return res.end();
    }
    if (f) {
      res.writeHead(f.status, f.headers);
      return res.end(JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${f.status}` }] }));
    }
    const up = http.request({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, (ur) => {
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        const changed = req.method === 'HEAD' ? undefined : p.rewrite(req, body);
        res.writeHead(ur.statusCode!, { ...ur.headers, ...(changed ? { 'content-length': String(changed.length) } : {}) });
        res.end(changed ?? body);
      });
    });
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return p;
}

// ---- pushing blobs as they are ---------------------------------------------------------------

function request(method: string, url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Uploads one blob (monolithic upload), as it is. */
export async function pushBlob(host: string, repo: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const start = await request('POST', `http://${host}/v2/${repo}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body}`);
  const loc = new URL(String(start.headers.location), `http://${host}`);
  loc.searchParams.set('digest', digest);
  const put = await request('PUT', loc.href, bytes, { 'content-type': 'application/octet-stream' });
  if (put.status !== 201) throw new Error(`upload ${digest}: ${put.status} ${put.body}`);
  return digest;
}

export async function pushManifest(host: string, repo: string, tag: string, manifest: Buffer, mediaType: string): Promise<void> {
  const put = await request('PUT', `http://${host}/v2/${repo}/manifests/${tag}`, manifest, { 'content-type': mediaType });
  if (put.status !== 201) throw new Error(`manifest ${repo}:${tag}: ${put.status} ${put.body}`);
}

/**
 * Pushes the image an OCI layout folder holds exactly as it is stored (skopeo compresses every
 * layer it sends to a registry, so an uncompressed or hand-made layer has to go this way): every
 * blob, then the manifest under `tag`. Plain HTTP, no auth.
 */
export async function pushLayout(dir: string, host: string, repo: string, tag: string): Promise<void> {
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const desc = index.manifests[0];
  const blob = (d: string) => fs.readFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)));
  const manifest = blob(desc.digest);
  const m = JSON.parse(manifest.toString());
  for (const d of [m.config, ...m.layers]) await pushBlob(host, repo, blob(d.digest));
  await pushManifest(host, repo, tag, manifest, desc.mediaType);
}
