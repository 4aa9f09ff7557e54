import { Option, type Command } from 'commander';
import { UsageError } from '../errors';
import { configureRegistry, DEFAULT_REGISTRY_SETTINGS } from './settings';

/*
 * The flags of registry access, on every command that reads an image (added by src/cli/main.ts,
 * applied before the command runs), and the help text that explains `docker://` references.
 */

export const REGISTRY_HELP = `
IMAGE may also be docker://[HOST[:PORT]/]REPO[:TAG|@sha256:DIGEST]: the image is read from its
registry lazily, without a pull (Docker's naming: docker://alpine is docker.io/library/alpine:latest).
localhost and 127.0.0.0/8 get HTTPS unchecked, else plain HTTP (Docker's rule); others verified
TLS (the system's CAs, SSL_CERT_FILE, NODE_EXTRA_CA_CERTS; --insecure allows HTTP or unverified TLS).
Credentials come from the Docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json:
auths, credHelpers, credsStore).`;

export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--insecure', 'docker:// only: allow plain HTTP or unverified TLS for a registry that is not on loopback'))
    .addOption(new Option('--registry-timeout <seconds>', 'docker:// only: give up on a registry request (retries included) after this long; a read in a mount then fails with EIO').default(String(DEFAULT_REGISTRY_SETTINGS.timeoutMs / 1000)))
    .addOption(new Option('--registry-cache-size <MiB>', 'docker:// only: cap of the on-disk cache of downloaded blob pieces (in --cache-dir)').default(String(DEFAULT_REGISTRY_SETTINGS.cacheBytes / 2 ** 20)));
}

/** Applies a command's parsed registry flags to the registry settings. */
export function applyRegistryOptions(opts: { insecure?: boolean; registryTimeout?: string; registryCacheSize?: string }): void {
  const timeout = Number(opts.registryTimeout ?? DEFAULT_REGISTRY_SETTINGS.timeoutMs / 1000);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--registry-timeout ${opts.registryTimeout}: expected a number of seconds above 0`);
  const cache = Number(opts.registryCacheSize ?? DEFAULT_REGISTRY_SETTINGS.cacheBytes / 2 ** 20);
  if (!Number.isFinite(cache) || cache < 1) throw new UsageError(`--registry-cache-size ${opts.registryCacheSize}: expected a number of MiB, at least 1`);
  configureRegistry({ insecure: !!opts.insecure, timeoutMs: timeout * 1000, cacheBytes: Math.floor(cache * 2 ** 20) });
}
