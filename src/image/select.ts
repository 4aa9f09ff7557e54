import { NotFoundError, UsageError } from '../errors';
import { printableText } from '../text';
import { platformString, type ImageRecord, type Platform } from './model';
import { warning, type Warning } from '../warnings';

export interface ImageSelector {
  /** A position (`0`), a name (`myapp:1.0`, `docker.io/library/myapp:1.0`) or a digest (`sha256:…`, a prefix will do). */
  image?: string;
  /** `os/arch[/variant]`, e.g. `linux/arm64/v8`. */
  platform?: string;
}

/** `myapp` → `docker.io/library/myapp:latest`, the way Docker compares references. */
export function normalizeReference(ref: string): string {
  let name = ref;
  let suffix = '';
  const at = name.indexOf('@');
  if (at >= 0) {
    suffix = name.slice(at);
    name = name.slice(0, at);
  }
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon <= slash && !suffix) name += ':latest';
  const first = name.split('/')[0];
  const hasRegistry = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasRegistry) name = `docker.io/${name.includes('/') ? '' : 'library/'}${name}`;
  return name + suffix;
}

export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new UsageError(`invalid platform ${JSON.stringify(text)}: expected os/arch or os/arch/variant, e.g. linux/arm64`);
  }
  return { os: parts[0], architecture: parts[1], variant: parts[2] };
}

function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  return have.os === want.os && have.architecture === want.architecture && (!want.variant || have.variant === want.variant);
}

function matchesImage(r: ImageRecord, sel: string): boolean {
  if (/^(sha256:)?[a-f0-9]{6,64}$/.test(sel)) {
    const hex = sel.replace(/^sha256:/, '');
    for (const d of [r.manifestDigest, r.configDigest]) if (d?.replace(/^sha256:/, '').startsWith(hex)) return true;
  }
  if (r.names.includes(sel)) return true;
  const want = normalizeReference(sel);
  return r.names.some((n) => normalizeReference(n) === want);
}

/**
 * Names worth showing: one spelling per reference (`myapp:1.0` and `docker.io/library/myapp:1.0`
 * are the same), and a bare OCI ref.name tag (`latest`) only when nothing fuller is known.
 */
export function displayNames(names: string[]): string[] {
  const seen = new Set<string>();
  const full = names.filter((n) => n.includes(':') || n.includes('/'));
  const out: string[] = [];
  for (const n of full.length ? full : names) {
    const key = normalizeReference(n);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(n);
    }
  }
  return out;
}

/** One line per image, for listings and for the error that asks the user to choose. */
export function describeRecord(r: ImageRecord): string {
  // Names come from the archive: never let one print a newline or a terminal escape.
  const names = r.names.length ? displayNames(r.names).map(printableText).join(', ') : '<untagged>';
  const platform = platformString(r.platform);
  const digest = r.manifestDigest ?? r.configDigest ?? '';
  return `${r.position}: ${names}${platform ? ` [${platform}]` : ''}${digest ? ` ${digest.slice(0, 19)}` : ''}`;
}

/** Spellings of one architecture, by the name the OCI spec (GOARCH) uses. */
const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386', i686: '386' };
/** The variant an architecture means when none is written (as containerd normalizes them). */
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7', amd64: 'v1' };

function normalizePlatform(p: Platform): Platform {
  const architecture = p.architecture && (ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase());
  return { os: p.os?.toLowerCase(), architecture, variant: p.variant?.toLowerCase() ?? (architecture ? DEFAULT_VARIANT[architecture] : undefined) };
}

/**
 * Checks `--platform` against what the selected image *is*: the os, architecture and variant of
 * its config, whatever the archive's index said or did not say (an archive of one image often
 * lists no platform at all, and then selection lets any request through). A mismatch is exit 1
 * naming both. A config that records no architecture cannot be checked: the image is taken on
 * the request's word, and the returned warning says so.
 */
export function checkConfigPlatform(config: Platform, requested: string, position: number, location: string): Warning | undefined {
  const asked = parsePlatform(requested);
  const want = normalizePlatform(asked);
  if (!config.architecture) {
    return warning('platform', `image ${position}'s config records no architecture${config.os ? ` (os ${printableText(config.os)})` : ''}; taking it as ${requested} unchecked`);
  }
  const have = normalizePlatform(config);
  const ok =
    (!have.os || have.os === want.os) &&
    have.architecture === want.architecture &&
    // A request without a variant takes any; one with a variant needs it (a config without one
    // means its architecture's default, arm64 = v8).
    (!asked.variant || have.variant === want.variant);
  if (!ok) {
    const shown = printableText(platformString({ os: config.os ?? '?', architecture: config.architecture, variant: config.variant }));
    throw new NotFoundError(`${location}: image ${position} is ${shown}, not ${requested}`);
  }
  return undefined;
}

function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/**
 * Picks the image the user meant. One image is taken silently; several need `--image`, except
 * that the platforms of one multi-platform image default to this machine's, as `docker run` does.
 */
export function selectImage(records: ImageRecord[], sel: ImageSelector, location: string): ImageRecord {
  const listing = () => (records.length ? records.map(describeRecord).join('; ') : 'no image at all');
  let candidates = records;
  if (sel.image !== undefined && sel.image !== '') {
    const wanted = sel.image;
    candidates = /^\d+$/.test(wanted) ? records.filter((r) => r.position === Number(wanted)) : records.filter((r) => matchesImage(r, wanted));
    if (candidates.length === 0) throw new NotFoundError(`${location}: no image ${JSON.stringify(wanted)}; the archive has ${listing()}`);
  }
  if (sel.platform) {
    const want = parsePlatform(sel.platform);
    const before = candidates;
    candidates = candidates.filter((r) => platformMatches(r.platform, want));
    // Single-platform archives often do not record a platform: they pass here, and the image's
    // config decides once it is loaded (checkConfigPlatform).
    if (candidates.length === 0 && before.length === 1 && !before[0].platform) candidates = before;
    if (candidates.length === 0) throw new NotFoundError(`${location}: no image for platform ${sel.platform}; the archive has ${listing()}`);
  }
  if (candidates.length === 1) return candidates[0];
  if (records.length === 0) throw new NotFoundError(`${location}: the archive holds no image`);
  const platforms = new Set(candidates.map((r) => platformString(r.platform)));
  if (!sel.platform && platforms.size === candidates.length && !platforms.has('')) {
    const host = candidates.filter((r) => platformMatches(r.platform, hostPlatform()));
    if (host.length === 1) return host[0];
  }
  throw new UsageError(
    `${location} holds ${candidates.length} images; choose one with --image (a position, name or digest)${platforms.size > 1 ? ' or --platform' : ''}: ${candidates.map(describeRecord).join('; ')}`,
  );
}
