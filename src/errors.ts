/**
 * Failures a user can act on, each with the exit code the CLI gives it. Messages are one line
 * that says what and where; the CLI prints them as they are.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** A path or an image that the archive does not have (exit 1). */
export class NotFoundError extends UserError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** A command line that does not make sense (exit 2). */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
  }
}
