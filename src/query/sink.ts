/** What writing needs of a stream: Node's Writable and tar-stream's (streamx) entries alike. */
export interface ChunkSink {
  write(chunk: Buffer | string): boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * Writes `chunk` and waits while the stream's buffer is over its high-water mark, so a slow
 * reader (a pipe into `head`, a network upload) paces the producer instead of memory growing.
 */
export async function writeWithBackpressure(out: ChunkSink, chunk: Buffer | string): Promise<void> {
  if (out.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const finish = (err?: Error) => {
      out.off('drain', onDrain);
      out.off('close', onClose);
      out.off('error', finish);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => finish();
    const onClose = () => finish(Object.assign(new Error('output closed'), { code: 'EPIPE' }));
    out.on('drain', onDrain);
    out.on('close', onClose);
    out.on('error', finish);
  });
}

/**
 * Ends the process quietly when stdout's reader goes away (`ocimount cat … | head`): a closed
 * pipe is the reader's choice, not an error worth a stack trace.
 */
export function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
