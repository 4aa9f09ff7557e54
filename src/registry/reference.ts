import { UsageError } from '../errors';

/*
 * `docker://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]`, normalised the way Docker (the
 * distribution/reference package) does it: the first path component is a registry host only when
 * it has a `.` or a `:`, or is `localhost`; otherwise the image lives on Docker Hub, whose
 * one-component names are under `library/`. No tag and no digest means `:latest`.
 */

export const DOCKER_SCHEME = 'docker://';

/** Docker Hub: how references name it, and where its API really is. */
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_API = 'registry-1.docker.io';

export interface RegistryReference {
  /** The registry as references name it: `docker.io`, `127.0.0.1:5000`, `ghcr.io`. */
  registry: string;
  /** Host (and port) the API is reached at (`registry-1.docker.io` for Docker Hub). */
  apiHost: string;
  /** Repository path: `library/alpine`, `team/app`. */
  repository: string;
  tag?: string;
  digest?: string;
  /** Full normalised name, as Docker prints it: `docker.io/library/alpine:3.19`. */
  name: string;
  /** The manifest to ask for: the digest when one was given, else the tag. */
  manifestRef: string;
}

export function isRegistryReference(location: string): boolean {
  return location.startsWith(DOCKER_SCHEME);
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** Parses `docker://…` (the scheme is optional here); a malformed one is a usage error (exit 2). */
export function parseRegistryReference(text: string): RegistryReference {
  const body = text.startsWith(DOCKER_SCHEME) ? text.slice(DOCKER_SCHEME.length) : text;
  const bad = (why: string) => new UsageError(`${JSON.stringify(text)}: not a valid image reference (${why}); expected docker://[HOST[:PORT]/]REPO[:TAG][@sha256:DIGEST]`);
  if (body === '') throw bad('empty');
  let rest = body;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!HOST.test(registry)) throw bad(`registry ${JSON.stringify(registry)}`);
  }
  // Docker accepts these spellings of Docker Hub and files them all under docker.io.
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  for (const p of parts) if (!PATH_COMPONENT.test(p)) throw bad(`repository component ${JSON.stringify(p)} (lowercase letters, digits and . _ - only)`);
  const repository = parts.join('/');
  if (repository.length > 255) throw bad('repository name longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  const name = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return {
    registry,
    apiHost: registry === DOCKER_HUB ? DOCKER_HUB_API : registry,
    repository,
    tag,
    digest,
    name,
    manifestRef: digest ?? tag!,
  };
}

/** Host part of `host:port` / `[v6]:port`, lowercased, without brackets. */
export function hostOnly(hostPort: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostPort);
  if (m) return m[1].toLowerCase();
  const colon = hostPort.lastIndexOf(':');
  return (colon >= 0 && hostPort.indexOf(':') === colon ? hostPort.slice(0, colon) : hostPort).toLowerCase();
}

/** Docker's convention: localhost and the loopback networks speak plain HTTP. */
export function isLoopbackRegistry(hostPort: string): boolean {
  const host = hostOnly(hostPort);
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
