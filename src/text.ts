/*
 * Text that is already text (image names and tags, paths read from JSON manifests, platform
 * strings, error messages from elsewhere) made safe to print. Names from layers are bytes and
 * have their own functions in src/names.ts (`displayName` for people, `nameToText` for JSON).
 */

// C0 and C1 controls and the Unicode line separators: each can move the cursor or forge a line.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const CONTROL_RUNS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/**
 * Text from an archive as it may be printed in a message: as it is when it is plain, JSON-quoted
 * when it holds control characters. Such text is attacker-chosen: printed raw, a newline forges
 * an extra line of output (a fake warning, a fake "mounted" line in a log) and an escape sequence
 * reprograms the user's terminal.
 */
export function printableText(text: string): string {
  return CONTROL.test(text) ? JSON.stringify(text) : text;
}

/**
 * Text made one line. `'message'` (error texts from elsewhere): every run of control characters,
 * newlines included, becomes one space. `'cell'` (a build step in a table row): a newline is
 * shown as `\n` and a tab as a space, so a heredoc in a RUN line stays readable, and any other
 * control character as `\xNN` (an ESC in a `created_by` would otherwise reach the terminal).
 */
export function oneLine(text: string, style: 'message' | 'cell' = 'message'): string {
  if (style === 'cell') {
    return text
      .replace(/\r?\n/g, '\\n')
      .replace(/\t/g, ' ')
      .replace(CONTROL_RUNS, (run) => [...run].map((c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
  }
  return text.replace(CONTROL_RUNS, ' ');
}
