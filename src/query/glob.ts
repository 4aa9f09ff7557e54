/**
 * Shell patterns as find's -name and -path use them (fnmatch without FNM_PATHNAME or
 * FNM_PERIOD): `*` and `?` match any character including `/` and a leading dot, `[...]` is a
 * set (`!` or `^` negates, ranges and [:classes:] allowed), a backslash quotes the next character.
 */
export function globToRegExp(glob: string, opts: { ignoreCase?: boolean } = {}): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < glob.length) re += escape(glob[++i]);
    else if (c === '[') {
      const set = parseSet(glob, i);
      if (set) {
        re += set.source;
        i = set.end;
      } else re += '\\[';
    } else re += escape(c);
  }
  return new RegExp(`^${re}$`, opts.ignoreCase ? 'iu' : 'u');
}

const CLASSES: Record<string, string> = {
  alpha: 'a-zA-Z',
  digit: '0-9',
  alnum: 'a-zA-Z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: ' \\t\\n\\r\\f\\v',
  xdigit: '0-9a-fA-F',
  punct: '!-\\/:-@\\[-`{-~',
  blank: ' \\t',
  print: ' -~',
  graph: '!-~',
  cntrl: '\\x00-\\x1f\\x7f',
};

/** `[...]` starting at `start`; undefined when unterminated (then `[` is literal, as in fnmatch). */
function parseSet(glob: string, start: number): { source: string; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (glob[i] === '!' || glob[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (; i < glob.length; i++) {
    const c = glob[i];
    if (c === ']' && !first) return { source: `[${negate ? '^' : ''}${body}]`, end: i };
    first = false;
    if (c === '[' && glob[i + 1] === ':') {
      const close = glob.indexOf(':]', i + 2);
      const cls = close > 0 ? CLASSES[glob.slice(i + 2, close)] : undefined;
      if (cls) {
        body += cls;
        i = close + 1;
        continue;
      }
    }
    if (c === '\\' && i + 1 < glob.length) body += escapeInSet(glob[++i]);
    else if (c === '-' && body !== '' && glob[i + 1] !== ']') body += '-';
    else body += escapeInSet(c);
  }
  return undefined;
}

function escape(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function escapeInSet(c: string): string {
  return c.replace(/[\]\\^\-[]/g, '\\$&');
}
