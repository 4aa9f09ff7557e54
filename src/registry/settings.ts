/*
 * The command-line settings of registry access, set once by the CLI (src/cli/main.ts) before a
 * command runs and read when a `docker://` reference is opened. Library users may set them too.
 */

export interface RegistrySettings {
  /** Plain HTTP or unverified TLS for registries that are not on loopback (--insecure). */
  insecure: boolean;
  /** Deadline of one registry operation, retries included, in ms (--registry-timeout, seconds). */
  timeoutMs: number;
  /** Cap of the on-disk cache of downloaded blob blocks, in bytes (--registry-cache-size, MiB). */
  cacheBytes: number;
}

export const DEFAULT_REGISTRY_SETTINGS: Readonly<RegistrySettings> = { insecure: false, timeoutMs: 30_000, cacheBytes: 2048 * 1024 * 1024 };

export const registrySettings: RegistrySettings = { ...DEFAULT_REGISTRY_SETTINGS };

export function configureRegistry(s: Partial<RegistrySettings>): void {
  for (const [k, v] of Object.entries(s)) if (v !== undefined) (registrySettings as unknown as Record<string, unknown>)[k] = v;
}
