/**
 * Problems that do not stop a command: each one an object that says what kind of problem it is
 * (`code`), where (`layer`, `entry`, when it has them) and the one line a person reads (`text`,
 * printed by the CLI as `ocimount: warning: <text>`). Code that needs to know what happened
 * looks at `code`, never into `text`.
 */
export type WarningCode =
  /** The stream ends before the end-of-archive blocks or inside a member's data. */
  | 'truncated'
  /** An entry left out: a NUL in its name, a path leaving the root, a non-directory root. */
  | 'skipped-entry'
  /** A typeflag the reader does not know, read as a regular file (POSIX). */
  | 'unknown-type'
  /** A pax record whose value is not a number where one is needed; the header's field was used. */
  | 'malformed-pax'
  /** A whiteout that is a directory or has data, or that names nothing a whiteout can. */
  | 'whiteout'
  /** A hard link whose target is missing or a directory, left out. */
  | 'hard-link'
  /** The manifest, config or index disagrees with itself (diff_id count, history, index.json). */
  | 'image'
  /** A digest that does not match the bytes it names. */
  | 'digest'
  /** `--platform` could not be checked against the config. */
  | 'platform'
  /** A blob's size differs from what its descriptor says. */
  | 'size'
  /** The index cache cannot be read or written. */
  | 'cache'
  /** An item extract could not make (a device node without root). */
  | 'extract'
  /** Anything else, from a module that still hands out text (see `textWarning`). */
  /** A registry answered with less than asked (an offline fallback to the last digest seen). */
  | 'registry'
  | 'other';

export interface Warning {
  code: WarningCode;
  /** The layer it concerns, as messages name it: "layer 3 (sha256:…)". */
  layer?: string;
  /** The entry it concerns: a byte string path (src/names.ts). */
  entry?: string;
  /** One line for people, already escaped for a terminal. */
  text: string;
}

export function warning(code: WarningCode, text: string, where: { layer?: string; entry?: string } = {}): Warning {
  const w: Warning = { code, text };
  if (where.layer !== undefined) w.layer = where.layer;
  if (where.entry !== undefined) w.entry = where.entry;
  return w;
}

export type WarningSink = (w: Warning) => void;

/**
 * Adapter for modules that still produce or keep warnings as text (src/compress/*,
 * src/archive/open-archive.ts, src/layers/index-layer.ts, and index-cache entries written by
 * earlier versions, which store only the text). The text is kept as it is; the code is
 * `truncated` only for the scanner's own truncation wording, so that a cut archive still says
 * why a member is missing. Remove when those modules hand out Warning objects.
 */
export function textWarning(text: string, where: { layer?: string; entry?: string } = {}): Warning {
  return warning(/: truncated(:| in the data of )/.test(text) ? 'truncated' : 'other', text, where);
}
