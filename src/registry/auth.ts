import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DOCKER_HUB } from './reference';

/*
 * Where credentials come from, the way the docker CLI finds them:
 *   1. `credHelpers[registry]` in the Docker config: run `docker-credential-NAME get`;
 *   2. `credsStore`: the same with that helper, for every registry;
 *   3. `auths[registry].auth` (base64 `user:password`), or `username`/`password`, or
 *      `identitytoken` (an OAuth2 refresh token, exchanged at the token service).
 * The config is `$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`. Docker Hub's
 * entry is keyed `https://index.docker.io/v1/`; other registries by `host[:port]`, sometimes
 * written as a URL, which is accepted too.
 *
 * How they are used is the registry's choice, from its 401 challenge (RFC 6750 / the
 * distribution token spec): `Basic realm=…` → the credentials on every request; `Bearer
 * realm=…,service=…,scope=…` → a token from the realm (anonymous when there are no credentials),
 * cached per scope until it expires, then fetched again.
 */

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user). */
  identityToken?: string;
  /** Where they came from, for messages: `credential helper docker-credential-pass`. */
  source: string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function dockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function readDockerConfig(file: string, warn: (m: string) => void): DockerConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as DockerConfig) : {};
  } catch (err) {
    warn(`${file}: not valid JSON (${(err as Error).message.split('\n')[0]}); no credentials read from it`);
    return {};
  }
}

/** The keys the config may file `registry` under. */
function configKeys(registry: string): string[] {
  if (registry === DOCKER_HUB) return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://registry-1.docker.io'];
  return [registry, `https://${registry}`, `http://${registry}`];
}

/** `https://host:port/v1/` → `host:port`, to match config keys written as URLs. */
function keyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

function findEntry<T>(map: Record<string, T> | undefined, registry: string): T | undefined {
  if (!map) return undefined;
  for (const k of configKeys(registry)) if (map[k] !== undefined) return map[k];
  const host = registry === DOCKER_HUB ? 'index.docker.io' : registry.toLowerCase();
  for (const [k, v] of Object.entries(map)) if (keyHost(k) === host) return v;
  return undefined;
}

/** Runs `docker-credential-NAME get` with the server URL on stdin. */
function runHelper(name: string, registry: string, timeoutMs: number): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return Promise.reject(new Error(`credential helper name ${JSON.stringify(name)} is not a plain name`));
  const server = registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const text = `${stdout}`.trim();
      if (err) {
        // The helper protocol's "no entry" answer: not an error, just no credentials.
        if (/credentials not found/i.test(`${stdout}${stderr}`)) return resolve(undefined);
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${program} is not installed` : `${program} failed: ${(`${stderr}`.trim() || err.message).split('\n')[0]}`;
        return reject(new Error(why));
      }
      try {
        const v = JSON.parse(text) as { Username?: string; Secret?: string };
        const source = `credential helper ${program}`;
        if (v.Username === '<token>') resolve({ identityToken: v.Secret, source });
        else resolve({ username: v.Username, password: v.Secret, source });
      } catch {
        reject(new Error(`${program} answered something that is not JSON`));
      }
    });
    child.stdin?.end(server);
  });
}

/** Credentials for `registry`, or undefined (anonymous). A broken helper is a warning, then anonymous. */
export async function findCredentials(registry: string, warn: (m: string) => void, helperTimeoutMs = 20_000): Promise<Credentials | undefined> {
  const file = dockerConfigPath();
  const cfg = readDockerConfig(file, warn);
  const helper = findEntry(cfg.credHelpers, registry) ?? cfg.credsStore;
  if (helper) {
    try {
      const c = await runHelper(helper, registry, helperTimeoutMs);
      if (c) return c;
    } catch (err) {
      warn(`${registry}: ${(err as Error).message}; trying without its credentials`);
    }
  }
  const entry = findEntry(cfg.auths, registry);
  if (!entry) return undefined;
  const source = `${file}`;
  if (entry.identitytoken) return { identityToken: entry.identitytoken, source };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      warn(`${file}: the "auth" for ${registry} is not base64 of user:password; ignored`);
      return undefined;
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  if (entry.username !== undefined) return { username: entry.username, password: entry.password ?? '', source };
  return undefined;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

/**
 * `WWW-Authenticate` values: `Bearer realm="https://auth",service="reg",scope="repository:a:pull"`,
 * `Basic realm="x"`. Quoted strings may hold commas; several challenges may be listed.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const text = Array.isArray(header) ? header.join(', ') : (header ?? '');
  const out: Challenge[] = [];
  const re = /([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+|$)|([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))|\s*,\s*/y;
  let m: RegExpExecArray | null;
  let pos = 0;
  let current: Challenge | undefined;
  while (pos < text.length) {
    re.lastIndex = pos;
    m = re.exec(text);
    if (!m || m[0] === '') break;
    pos = re.lastIndex;
    if (m[2] !== undefined) {
      if (current) current.params[m[2].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[4];
    } else if (m[1] !== undefined) {
      current = { scheme: m[1].toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

export interface Token {
  value: string;
  /** Absolute ms after which it is fetched anew. */
  renewAt: number;
  fetchedAt: number;
}

/** What a token service answered, as a Token. `expires_in` defaults to 60 s (the spec's minimum). */
export function tokenFromAnswer(body: Buffer, now = Date.now()): Token {
  const v = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
  const value = v.token || v.access_token;
  if (!value) throw new Error('the token service answered without a token');
  const life = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : 60;
  // Counted from our clock (issued_at is theirs, which may be off), renewed a little early: a
  // token must not expire between being attached and being checked.
  const margin = Math.min(10, life / 5);
  return { value, renewAt: now + (life - margin) * 1000, fetchedAt: now };
}
