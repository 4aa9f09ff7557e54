import { NotFoundError, UsageError } from '../errors';

/**
 * `--layers` syntax, a comma list: `N` (layer N), `A-B` (A to B), `..B` (the image as it stood
 * after layer B), `A..` (A to the top), and any of these after `^` to leave layers out
 * (`^2` is every layer but 2). Positions count from 0 at the bottom.
 */
export function parseLayerSelection(spec: string, layerCount: number): number[] {
  const include = new Set<number>();
  const exclude = new Set<number>();
  let sawInclude = false;
  const top = layerCount - 1;
  const num = (s: string, whole: string): number => {
    if (!/^\d+$/.test(s)) throw new UsageError(`--layers ${whole}: ${JSON.stringify(s)} is not a layer position`);
    const n = Number(s);
    // A position past the top is the image's answer, as for --layer 99: not found (exit 1).
    if (n > top) throw new NotFoundError(`--layers ${whole}: layer ${n} does not exist (the image has layers 0-${top})`);
    return n;
  };
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') throw new UsageError(`--layers ${spec}: empty item`);
    const negate = item.startsWith('^');
    const body = negate ? item.slice(1) : item;
    let from: number;
    let to: number;
    if (body.startsWith('..')) [from, to] = [0, num(body.slice(2), spec)];
    else if (body.endsWith('..')) [from, to] = [num(body.slice(0, -2), spec), top];
    else if (body.includes('-')) {
      const [a, b] = body.split('-');
      [from, to] = [num(a, spec), num(b, spec)];
    } else from = to = num(body, spec);
    if (from > to) throw new UsageError(`--layers ${spec}: range ${body} runs backwards`);
    for (let i = from; i <= to; i++) (negate ? exclude : include).add(i);
    if (!negate) sawInclude = true;
  }
  const base = sawInclude ? [...include] : Array.from({ length: layerCount }, (_, i) => i);
  return base.filter((i) => !exclude.has(i)).sort((a, b) => a - b);
}
