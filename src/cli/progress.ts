/**
 * One self-overwriting line on a terminal while long passes run (compressed layers), nothing at
 * all when stderr is not a terminal, so logs and pipes stay clean.
 */
export interface Progress {
  update(what: string, done: number, total: number): void;
  /** Clears the line. */
  end(): void;
}

const MiB = 1024 * 1024;

export function terminalProgress(out: NodeJS.WriteStream = process.stderr): Progress | undefined {
  if (!out.isTTY) return undefined;
  let last = 0;
  let shown = false;
  const started = new Map<string, number>();
  return {
    update(what, done, total) {
      const now = Date.now();
      if (!started.has(what)) started.set(what, now);
      if (now - last < 200 && done < total) return;
      last = now;
      const secs = Math.max(0.001, (now - started.get(what)!) / 1000);
      const line = `indexing ${what}: ${(done / MiB).toFixed(0)}/${(total / MiB).toFixed(0)} MiB (${(done / MiB / secs).toFixed(0)} MiB/s)`;
      out.write(`\r\x1b[K${line.slice(0, (out.columns || 100) - 1)}`);
      shown = true;
    },
    end() {
      if (shown) out.write('\r\x1b[K');
      shown = false;
    },
  };
}
