/*
 * Names at the FUSE boundary are byte strings: one JS char per byte (latin1), exactly the bytes
 * the kernel sent or will show. The native fork (native/fuse) hands paths and xattr names to
 * ops.ts that way and reads readdir names, readlink targets and xattr names back that way, so a
 * name that is not valid UTF-8 round-trips.
 *
 * The engine's trees still hold names (and xattr names, symlink targets) decoded as UTF-8, with
 * invalid bytes as U+FFFD. Until they hold byte strings too, Namespace converts at this one place
 * with the two functions below; then TREE_NAMES_ARE_BYTES becomes true (or both functions the
 * identity) and nothing else changes.
 */
const TREE_NAMES_ARE_BYTES = false;

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** A byte string from the kernel as the engine's trees spell it today. */
export function toTreeName(bytes: string): string {
  if (TREE_NAMES_ARE_BYTES || ASCII.test(bytes)) return bytes;
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** An engine name as the byte string the kernel is to show. */
export function toByteName(name: string): string {
  if (TREE_NAMES_ARE_BYTES || ASCII.test(name)) return name;
  return Buffer.from(name, 'utf8').toString('latin1');
}

/** A byte string as text for a log line (invalid UTF-8 shows as U+FFFD); pass it to printable(). */
export function displayName(bytes: string): string {
  return ASCII.test(bytes) ? bytes : Buffer.from(bytes, 'latin1').toString('utf8');
}
