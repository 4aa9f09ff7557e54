import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';

/*
 * One HTTP exchange, bounded in time and size: the request is sent, the whole (bounded) body is
 * read, and the answer comes back, or the attempt fails with a NetworkError. Retries, redirects
 * and auth are the client's business (client.ts); this file only makes sure nothing waits
 * forever and nothing reads without bound.
 */

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

export interface HttpAttempt {
  method: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  /** Largest body read; a longer one fails the attempt (never a short-read success). */
  maxBody: number;
  /** Give up when nothing moves for this long (ms). */
  idleMs: number;
  /** Give up at this absolute time (ms since the epoch), whatever moves. */
  deadline: number;
}

/** The connection failed, stalled or was cut: worth another try. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * The CAs a registry's certificate is checked against: Node's bundled roots, the system's bundle
 * (`SSL_CERT_FILE`, else Debian's /etc/ssl/certs/ca-certificates.crt: Node alone would not read
 * it) and `NODE_EXTRA_CA_CERTS` (read here too, since an explicit CA list would leave it out).
 * Read once per process.
 */
let trusted: string[] | undefined;
export function trustedCas(): string[] {
  if (trusted) return trusted;
  const cas = [...tls.rootCertificates];
  for (const file of [process.env.SSL_CERT_FILE || '/etc/ssl/certs/ca-certificates.crt', process.env.NODE_EXTRA_CA_CERTS]) {
    if (!file) continue;
    try {
      cas.push(fs.readFileSync(file, 'utf8'));
    } catch {
      /* no such bundle here: the others still apply */
    }
  }
  return (trusted = cas);
}

/**
 * The agents of one client: kept-alive sockets; TLS verified, except towards the hosts `unverified`
 * names (an --insecure registry, or one on loopback, as Docker treats 127.0.0.0/8).
 */
export class Agents {
  readonly http = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly unverified = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false });
  /** Made on first use: parsing a few hundred CAs takes a while, and loopback never needs them. */
  private verified?: https.Agent;

  constructor(private readonly unverifiedHost: (host: string) => boolean) {}

  forUrl(url: URL): http.Agent {
    if (url.protocol !== 'https:') return this.http;
    if (this.unverifiedHost(url.host)) return this.unverified;
    // One secure context for every connection, rather than the CAs parsed again per socket.
    this.verified ??= new https.Agent({ keepAlive: true, maxSockets: 8, secureContext: tls.createSecureContext({ ca: trustedCas() }) });
    return this.verified;
  }

  destroy(): void {
    this.http.destroy();
    this.verified?.destroy();
    this.unverified.destroy();
  }
}

export function httpAttempt(url: URL, agents: Agents, a: HttpAttempt): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const lib = url.protocol === 'https:' ? https : http;
    let settled = false;
    const chunks: Buffer[] = [];
    let got = 0;
    const finish = (err: Error | undefined, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(res!);
    };
    const remaining = a.deadline - Date.now();
    if (remaining <= 0) return reject(new NetworkError('no time left', 'ETIMEDOUT'));
    const overall = setTimeout(() => finish(new NetworkError(`no complete answer within ${Math.round(remaining / 100) / 10} s`, 'ETIMEDOUT')), remaining);
    const req = lib.request(
      url,
      {
        method: a.method,
        agent: agents.forUrl(url),
        headers: { 'user-agent': 'ocimount', ...(a.body ? { 'content-length': String(a.body.length) } : {}), ...a.headers },
      },
      (res) => {
        const declared = Number(res.headers['content-length']);
        if (a.method !== 'HEAD' && Number.isFinite(declared) && declared > a.maxBody && res.statusCode! < 300) {
          return finish(new NetworkError(`answer of ${declared} bytes is larger than the ${a.maxBody} expected`, 'ETOOBIG'));
        }
        // A body of declared size goes straight into one buffer of that size: a 4 MiB blob
        // window otherwise costs a list of 64 KiB chunks, a copy into one buffer, and the garbage.
        const into = a.method !== 'HEAD' && Number.isSafeInteger(declared) && declared > 0 && declared <= a.maxBody ? Buffer.allocUnsafe(declared) : undefined;
        res.on('data', (c: Buffer) => {
          if (into && got + c.length <= into.length) {
            c.copy(into, got);
            got += c.length;
            return;
          }
          got += c.length;
          // Error answers are read only up to the limit: their text is for messages.
          if (got > a.maxBody) {
            if (res.statusCode! >= 300) return;
            return finish(new NetworkError(`answer larger than the ${a.maxBody} bytes expected`, 'ETOOBIG'));
          }
          if (into) return finish(new NetworkError(`answer longer than its Content-Length of ${declared} bytes`, 'ECONNRESET'));
          chunks.push(c);
        });
        res.on('end', () => {
          if (!res.complete || (into && got !== into.length)) return finish(new NetworkError('connection closed before the answer was complete', 'ECONNRESET'));
          finish(undefined, { status: res.statusCode!, headers: res.headers, body: into ?? Buffer.concat(chunks), url });
        });
        res.on('aborted', () => finish(new NetworkError('connection closed before the answer was complete', 'ECONNRESET')));
        res.on('error', (err: NodeJS.ErrnoException) => finish(new NetworkError(err.message, err.code)));
      },
    );
    req.setTimeout(Math.max(1, Math.min(a.idleMs, remaining)), () => finish(new NetworkError(`no answer for ${Math.round(Math.min(a.idleMs, remaining) / 100) / 10} s`, 'ETIMEDOUT')));
    req.on('error', (err: NodeJS.ErrnoException) => finish(new NetworkError(err.message, err.code)));
    req.end(a.body);
  });
}
