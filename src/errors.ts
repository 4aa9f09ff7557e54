/**
 * Failures a user can act on: one class per exit code, so a call site says what went wrong and
 * the code follows from it. Messages are one line that says what and where; the CLI prints them
 * as they are. An error caused by another keeps it (ES2022 `cause`) for a debugger or a library
 * caller; the CLI prints only the message.
 *
 *   0 ok
 *   1 NotFoundError     a path or an image the archive does not have (and an output path that
 *                       cannot be written: OutputError)
 *   2 UsageError        a command line that does not make sense
 *   3 ArchiveError      the archive cannot be read or is not what it claims
 *   4 EnvironmentError  this machine cannot do it: FUSE, /dev/fuse, fusermount, the addon, the
 *                       state of a mountpoint
 */
export const ExitCode = {
  Ok: 0,
  NotFound: 1,
  Usage: 2,
  Archive: 3,
  Environment: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export abstract class UserError extends Error {
  abstract readonly exitCode: ExitCode;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A path or an image that the archive does not have (exit 1). */
export class NotFoundError extends UserError {
  readonly exitCode = ExitCode.NotFound;
}

/**
 * An output path (export's tar, extract's target) that cannot be written: exit 1, the code a
 * missing path has, as it always had; kept a class of its own so a caller can tell the two apart.
 */
export class OutputError extends NotFoundError {}

/** A command line that does not make sense (exit 2). */
export class UsageError extends UserError {
  readonly exitCode = ExitCode.Usage;
}

/** The archive cannot be read or is not what it claims (exit 3). */
export class ArchiveError extends UserError {
  readonly exitCode = ExitCode.Archive;
}

/**
 * This machine cannot do what was asked, whatever the archive and the command line (exit 4):
 * no FUSE (/dev/fuse missing or not permitted), no fusermount, the addon not built or libfuse
 * missing, a mountpoint already in use or left dead, a mount or unmount the kernel refused.
 * A mountpoint that does not exist or is not a directory is the command line's mistake (a typo
 * in an argument), so it stays a UsageError.
 */
export class EnvironmentError extends UserError {
  readonly exitCode = ExitCode.Environment;
}

/**
 * The error for an exit code that crossed a process boundary (the mount server tells its parent
 * the message and code of what stopped it). An unknown code is an archive error, the old default.
 */
export function userErrorFor(exitCode: number, message: string): UserError {
  switch (exitCode) {
    case ExitCode.NotFound:
      return new NotFoundError(message);
    case ExitCode.Usage:
      return new UsageError(message);
    case ExitCode.Environment:
      return new EnvironmentError(message);
    default:
      return new ArchiveError(message);
  }
}

/**
 * An internal failure that already says where it happened (`layer 3 (sha256:…)`, an archive
 * path), so that whoever turns it into a user-facing error adds the place only when it is not
 * there, without looking into the message.
 */
export class LocatedError extends Error {
  constructor(
    readonly where: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${where}: ${detail}`, options);
    this.name = 'LocatedError';
  }
}

/** `err`'s message with `where` in front, unless it already names that place. */
export function locatedMessage(err: unknown, where: string): string {
  if (err instanceof LocatedError && err.where === where) return err.message;
  return `${where}: ${(err as Error).message}`;
}
