import { createHash } from 'node:crypto';
import { ArchiveError } from '../archive/archive-files';
import { NotFoundError } from '../errors';
import { basicHeader, dockerConfigPath, findCredentials, parseChallenges, tokenFromAnswer, type Credentials, type Token } from './auth';
import { Agents, httpAttempt, NetworkError, type HttpResponse } from './http';
import { isLoopbackRegistry, type RegistryReference } from './reference';

/*
 * The registry's HTTP API (OCI distribution spec), as much of it as reading an image needs:
 * manifests (with the Accept headers that make a registry hand out OCI and Docker v2 manifests
 * and indexes), blob sizes (HEAD) and blob byte ranges (bounded `Range: bytes=A-B` only, never
 * an open-ended request that would have to be abandoned midway), redirects to blob storage
 * (followed without our Authorization header once the origin changes, as Docker does),
 * credentials and tokens (auth.ts), and faults: 5xx, 429 (Retry-After honoured) and dropped or
 * stalled connections are retried with backoff until the operation's deadline, and then fail
 * with one line naming the registry. Every operation has a deadline, so nothing waits forever.
 */

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** 401/403, or a repository or tag the registry does not show us: exit 1, "not found or not allowed". */
export class RegistryAccessError extends NotFoundError {}

/** The registry did not answer usefully within the deadline (exit 3, like an unreadable archive). */
export class RegistryUnavailableError extends ArchiveError {}

export interface ClientOptions {
  /** Allow plain HTTP or unverified TLS for a registry that is not on loopback. */
  insecure?: boolean;
  /** Deadline of one operation (a manifest, one blob read), retries included (ms). */
  timeoutMs: number;
  warn: (message: string) => void;
  /** Credentials lookup, replaceable in tests. */
  credentials?: (registry: string) => Promise<Credentials | undefined>;
}

export interface Manifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** OCIMOUNT_REGISTRY_DEBUG=1: every attempt and its outcome on stderr. */
const debug = process.env.OCIMOUNT_REGISTRY_DEBUG ? (m: string) => process.stderr.write(`ocimount: registry: ${m}\n`) : undefined;

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function isTlsTrustError(err: NetworkError): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME|ALTNAME/.test(err.code ?? '') || /certificate/i.test(err.message);
}

/** OpenSSL's messages may span lines; what the user sees is one. */
const oneLine = (m: string) => m.replace(/\s+/g, ' ').trim();

function isNotTls(err: NetworkError): boolean {
  return err.code === 'EPROTO' || /wrong version number|packet length too long|ERR_SSL/i.test(`${err.code} ${err.message}`);
}

/** Retry-After as ms: delta seconds or an HTTP date. */
function retryAfterMs(res: HttpResponse): number | undefined {
  const v = res.headers['retry-after'];
  if (typeof v !== 'string' || v === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function registryMessage(res: HttpResponse): string {
  try {
    const v = JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const e = v.errors?.[0];
    if (e) return [e.code, e.message].filter(Boolean).join(': ').toLowerCase().replace(/\s+/g, ' ');
  } catch {
    /* not JSON */
  }
  return '';
}

interface Send {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  maxBody: number;
  deadline: number;
  /** Attach our credentials or token (only ever to the registry's own origin). */
  auth: boolean;
  what: string;
}

export class RegistryClient {
  readonly base: URL;
  private readonly agents: Agents;
  private creds: Credentials | undefined | null = null;
  private mode: 'anonymous' | 'basic' | 'bearer' = 'anonymous';
  private bearer?: { realm: string; service?: string };
  private readonly tokens = new Map<string, Token>();
  private readonly tokenFetches = new Map<string, Promise<Token>>();
  private readonly scope: string;
  /**
   * Docker's rule for an insecure registry (--insecure, or any on 127.0.0.0/8 or localhost):
   * HTTPS first, its certificate unchecked, and plain HTTP when it does not speak TLS at all.
   */
  private readonly lenient: boolean;
  /** For a lenient registry: whether HTTPS failed for want of TLS and HTTP is used. */
  private fellBackToHttp = false;

  constructor(
    readonly ref: RegistryReference,
    private readonly opts: ClientOptions,
  ) {
    this.lenient = !!opts.insecure || isLoopbackRegistry(ref.apiHost);
    this.base = new URL(`https://${ref.apiHost}`);
    this.agents = new Agents((host) => !!opts.insecure || isLoopbackRegistry(host));
    this.scope = `repository:${ref.repository}:pull`;
  }

  close(): void {
    this.agents.destroy();
  }

  private url(path: string): URL {
    return new URL(path, this.base);
  }

  private async credentials(): Promise<Credentials | undefined> {
    if (this.creds === null) this.creds = await (this.opts.credentials ?? ((r) => findCredentials(r, this.opts.warn)))(this.ref.registry);
    return this.creds;
  }

  /** How to log in, for messages. */
  private loginHint(): string {
    return `log in with 'docker login ${this.ref.registry}' or put credentials for ${this.ref.registry} in ${dockerConfigPath()}`;
  }

  private deniedError(status: number, res: HttpResponse | undefined, triedCreds: Credentials | undefined, what: string): RegistryAccessError {
    const said = res ? registryMessage(res) : '';
    const detail = said ? ` (${said})` : '';
    if (status === 403) {
      return new RegistryAccessError(`${this.ref.registry}: ${what}: access denied (403)${detail}; the ${triedCreds ? `credentials from ${triedCreds.source}` : 'anonymous user'} may not pull ${this.ref.repository}`);
    }
    if (triedCreds) {
      return new RegistryAccessError(`${this.ref.registry}: ${what}: not found or not allowed (401)${detail}; the credentials from ${triedCreds.source} were refused: check them, or ${this.loginHint()}`);
    }
    return new RegistryAccessError(`${this.ref.registry}: ${what}: not found or not allowed (401)${detail}; the registry wants credentials: ${this.loginHint()}`);
  }

  private giveUp(started: number, why: string): never {
    throw new RegistryUnavailableError(`${this.ref.registry}: ${why}; gave up after ${Math.round((Date.now() - started) / 100) / 10} s (--registry-timeout)`);
  }

  private async backoff(attempt: number, deadline: number, started: number, why: string, retryAfter?: number): Promise<void> {
    const base = Math.min(4000, 200 * 2 ** attempt);
    const delay = retryAfter ?? base / 2 + (Math.random() * base) / 2;
    if (Date.now() + delay >= deadline) this.giveUp(started, retryAfter !== undefined ? `${why} (retry after ${Math.round(retryAfter / 1000)} s)` : why);
    await new Promise((r) => setTimeout(r, delay));
  }

  private async authorization(deadline: number): Promise<string | undefined> {
    if (this.mode === 'basic') {
      const c = await this.credentials();
      return c ? basicHeader(c) : undefined;
    }
    if (this.mode === 'bearer') return `Bearer ${(await this.token(this.scope, deadline)).value}`;
    return undefined;
  }

  /** A token for `scope`: cached until it is due for renewal; one fetch at a time per scope. */
  private token(scope: string, deadline: number): Promise<Token> {
    const have = this.tokens.get(scope);
    if (have && Date.now() < have.renewAt) return Promise.resolve(have);
    let p = this.tokenFetches.get(scope);
    if (!p) {
      p = this.fetchToken(scope, deadline).finally(() => this.tokenFetches.delete(scope));
      this.tokenFetches.set(scope, p);
    }
    return p;
  }

  private async fetchToken(scope: string, deadline: number): Promise<Token> {
    const b = this.bearer!;
    const creds = await this.credentials();
    const url = new URL(b.realm);
    let res: HttpResponse;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant: what `docker login` with an identity token stores.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ocimount', scope });
      if (b.service) form.set('service', b.service);
      res = await this.send(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), maxBody: 1 << 20, deadline, auth: false, what: 'token' });
    } else {
      if (b.service) url.searchParams.set('service', b.service);
      url.searchParams.set('scope', scope);
      const headers: Record<string, string> = creds?.username !== undefined ? { authorization: basicHeader(creds) } : {};
      res = await this.send(url, { method: 'GET', headers, maxBody: 1 << 20, deadline, auth: false, what: 'token' });
    }
    if (res.status === 401 || res.status === 403) throw this.deniedError(res.status, res, creds, `token for ${this.ref.repository} from ${url.origin}`);
    if (res.status !== 200) throw new RegistryUnavailableError(`${this.ref.registry}: the token service ${url.origin} answered ${res.status}${registryMessage(res) ? ` (${registryMessage(res)})` : ''}`);
    let token: Token;
    try {
      token = tokenFromAnswer(res.body);
    } catch (err) {
      throw new RegistryUnavailableError(`${this.ref.registry}: the token service ${url.origin}: ${(err as Error).message}`);
    }
    this.tokens.set(scope, token);
    return token;
  }

  /** A 401 from the registry: learn how it wants us to authenticate. False when there is nothing new to try. */
  private async learnAuth(res: HttpResponse, hadAuth: string | undefined, sendStarted: number): Promise<boolean> {
    const challenges = parseChallenges(res.headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const first = this.mode !== 'bearer';
      this.mode = 'bearer';
      this.bearer = { realm: bearer.params.realm, service: bearer.params.service };
      const stale = this.tokens.get(this.scope);
      this.tokens.delete(this.scope);
      // A cached token that was refused is fetched anew once (it may have expired early: the
      // service's clock, a revocation); a token fetched during this very request and refused
      // means no access.
      return first || (stale !== undefined && hadAuth === `Bearer ${stale.value}` && stale.fetchedAt < sendStarted);
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (this.mode === 'basic') return false;
      const c = await this.credentials();
      if (!c || c.username === undefined) return false;
      this.mode = 'basic';
      return true;
    }
    return false;
  }

  /** One request, with retries, redirects and auth, until it has an answer that is not a fault. */
  private async send(url: URL, s: Send): Promise<HttpResponse> {
    const started = Date.now();
    let attempt = 0;
    let authRounds = 0;
    let redirects = 0;
    let current = url;
    for (;;) {
      if (this.fellBackToHttp && current.protocol === 'https:' && current.host === this.base.host) current = new URL(current.href.replace(/^https:/, 'http:'));
      const own = s.auth && current.host === this.base.host;
      const headers = { ...s.headers };
      let sentAuth: string | undefined;
      if (own) {
        sentAuth = await this.authorization(s.deadline);
        if (sentAuth) headers.authorization = sentAuth;
      }
      let res: HttpResponse;
      try {
        const t0 = Date.now();
        res = await httpAttempt(current, this.agents, { method: s.method, headers, body: s.body, maxBody: s.maxBody, deadline: s.deadline, idleMs: this.idleMs(s.deadline) });
        debug?.(`${s.method} ${current.href}${headers.range ? ` ${headers.range}` : ''} -> ${res.status} ${res.body.length} bytes in ${Date.now() - t0} ms`);
      } catch (err) {
        debug?.(`${s.method} ${current.href}${headers.range ? ` ${headers.range}` : ''} -> ${(err as Error).message}`);
        if (!(err instanceof NetworkError)) throw err;
        if (current.protocol === 'https:' && isTlsTrustError(err)) {
          if (this.opts.insecure) throw new RegistryUnavailableError(`${current.host}: TLS failed: ${oneLine(err.message)}`);
          throw new RegistryUnavailableError(`${current.host}: its TLS certificate is not trusted (${oneLine(err.message)}); add its CA to the system's bundle (or name it in SSL_CERT_FILE or NODE_EXTRA_CA_CERTS), or pass --insecure to skip verification`);
        }
        if (this.lenient && current.protocol === 'https:' && current.host === this.base.host && isNotTls(err)) {
          // A lenient registry that does not speak TLS at all: plain HTTP, as Docker falls back.
          this.fellBackToHttp = true;
          this.base.protocol = 'http:';
          current = new URL(current.href.replace(/^https:/, 'http:'));
          continue;
        }
        if (current.protocol === 'https:' && current.host === this.base.host && isNotTls(err)) {
          throw new RegistryUnavailableError(`${current.host}: does not speak TLS (the TLS handshake got a plain answer: ${err.code ?? oneLine(err.message)}); pass --insecure to allow plain HTTP`);
        }
        if (err.code === 'ETOOBIG') throw new RegistryUnavailableError(`${current.host}: ${s.what}: ${err.message}`);
        // Start over from the registry: a storage URL it redirected to may have expired.
        current = url;
        await this.backoff(attempt++, s.deadline, started, `${s.what}: ${err.message}${err.code && !err.message.includes(err.code) ? ` (${err.code})` : ''}`);
        continue;
      }
      if (res.status >= 300 && res.status < 400 && res.status !== 304 && res.headers.location) {
        if (++redirects > 10) throw new RegistryUnavailableError(`${this.ref.registry}: ${s.what}: too many redirects`);
        current = new URL(res.headers.location, current);
        continue;
      }
      if (res.status === 401 && own && authRounds < 3) {
        authRounds++;
        if (await this.learnAuth(res, sentAuth, started)) continue;
      }
      if (res.status === 429 || res.status >= 500) {
        current = url;
        await this.backoff(attempt++, s.deadline, started, `${s.what}: ${res.status} ${registryMessage(res) || 'from the server'}`, res.status === 429 || res.status === 503 ? retryAfterMs(res) : undefined);
        continue;
      }
      return res;
    }
  }

  /** How long one attempt may sit without a byte before it is retried. */
  private idleMs(deadline: number): number {
    return Math.max(1000, Math.min(this.opts.timeoutMs / 2, deadline - Date.now()));
  }

  private async checked(res: HttpResponse, what: string, notFound: () => Error): Promise<HttpResponse> {
    if (res.status === 401 || res.status === 403) throw this.deniedError(res.status, res, this.mode !== 'anonymous' ? await this.credentials() : undefined, what);
    if (res.status === 404) throw notFound();
    return res;
  }

  /** The manifest (or index) named by a tag or digest, its digest checked. */
  async manifest(reference: string): Promise<Manifest> {
    const what = `manifest ${this.ref.repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    const deadline = Date.now() + this.opts.timeoutMs;
    const sent = await this.send(this.url(`/v2/${this.ref.repository}/manifests/${reference}`), { method: 'GET', headers: { accept: MANIFEST_ACCEPT }, maxBody: 4 << 20, deadline, auth: true, what });
    const said404 = registryMessage(sent);
    const res = await this.checked(sent, what, () => new NotFoundError(`${this.ref.registry}: no ${what}${said404 ? ` (${said404})` : ''}`));
    if (res.status !== 200) throw new RegistryUnavailableError(`${this.ref.registry}: ${what}: answered ${res.status}${registryMessage(res) ? ` (${registryMessage(res)})` : ''}`);
    const digest = sha256(res.body);
    if (reference.startsWith('sha256:') && digest !== reference) throw new ArchiveError(`${this.ref.registry}: ${what}: the registry sent bytes that hash to ${digest}`);
    const said = res.headers['docker-content-digest'];
    if (typeof said === 'string' && said.startsWith('sha256:') && said !== digest) throw new ArchiveError(`${this.ref.registry}: ${what}: Docker-Content-Digest says ${said}, the bytes hash to ${digest}`);
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    try {
      const v = JSON.parse(res.body.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown };
      if (v.schemaVersion === 1) throw new ArchiveError(`${this.ref.registry}: ${what} is a schema 1 manifest, which ocimount does not read`);
      if (typeof v.mediaType === 'string') mediaType = v.mediaType;
      else if (!/json/.test(mediaType) || mediaType === 'application/json') mediaType = Array.isArray(v.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
    } catch (err) {
      if (err instanceof ArchiveError) throw err;
      throw new ArchiveError(`${this.ref.registry}: ${what}: not JSON`);
    }
    return { bytes: res.body, mediaType, digest };
  }

  private blobWhat(digest: string): string {
    return `blob ${digest.slice(0, 19)} of ${this.ref.repository}`;
  }

  /** The size of a blob (HEAD). */
  async blobSize(digest: string): Promise<number> {
    const what = this.blobWhat(digest);
    const res = await this.checked(
      await this.send(this.url(`/v2/${this.ref.repository}/blobs/${digest}`), { method: 'HEAD', maxBody: 0, deadline: Date.now() + this.opts.timeoutMs, auth: true, what }),
      what,
      () => new ArchiveError(`${this.ref.registry}: ${what}: not in the registry (404)`),
    );
    const n = Number(res.headers['content-length']);
    if (res.status !== 200 || !Number.isSafeInteger(n)) throw new RegistryUnavailableError(`${this.ref.registry}: ${what}: HEAD answered ${res.status} without a size`);
    return n;
  }

  /** A whole small blob (a config), its digest checked. */
  async blobWhole(digest: string, maxBytes: number): Promise<Buffer> {
    const what = this.blobWhat(digest);
    const res = await this.checked(
      await this.send(this.url(`/v2/${this.ref.repository}/blobs/${digest}`), { method: 'GET', maxBody: maxBytes, deadline: Date.now() + this.opts.timeoutMs, auth: true, what }),
      what,
      () => new ArchiveError(`${this.ref.registry}: ${what}: not in the registry (404)`),
    );
    if (res.status !== 200) throw new RegistryUnavailableError(`${this.ref.registry}: ${what}: answered ${res.status}`);
    const got = sha256(res.body);
    if (got !== digest) throw new ArchiveError(`${this.ref.registry}: ${what}: the registry sent bytes that hash to ${got}`);
    return res.body;
  }

  /**
   * Bytes [start, end) of a blob of `size` bytes, as one bounded Range request (retried until
   * `deadline`). A server that ignores Range and sends the whole blob is read to its end (never
   * cut off) and sliced.
   */
  async blobRange(digest: string, size: number, start: number, end: number, deadline: number): Promise<Buffer> {
    const what = `${this.blobWhat(digest)} bytes ${start}-${end - 1}`;
    const res = await this.checked(
      await this.send(this.url(`/v2/${this.ref.repository}/blobs/${digest}`), { method: 'GET', headers: { range: `bytes=${start}-${end - 1}` }, maxBody: Math.max(end - start, size), deadline, auth: true, what }),
      what,
      () => new ArchiveError(`${this.ref.registry}: ${what}: not in the registry (404)`),
    );
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (!m || Number(m[1]) !== start || Number(m[2]) !== end - 1 || res.body.length !== end - start || (m[3] !== '*' && Number(m[3]) !== size)) {
        throw new ArchiveError(`${this.ref.registry}: ${what}: the registry answered ${res.headers['content-range'] ?? 'no Content-Range'} with ${res.body.length} bytes (blob of ${size} bytes expected)`);
      }
      return res.body;
    }
    if (res.status === 200 && res.body.length === size) return res.body.subarray(start, end);
    if (res.status === 416) throw new ArchiveError(`${this.ref.registry}: ${what}: outside the blob (416); is it ${size} bytes?`);
    throw new RegistryUnavailableError(`${this.ref.registry}: ${what}: answered ${res.status} with ${res.body.length} bytes`);
  }
}
