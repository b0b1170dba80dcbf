/**
 * The error catalogue of the I/O shell (CLI, API, host). The pure core never throws
 * for bad input: it returns issues/diagnostics; a throw from the core is a bug.
 * `Record<ErrorType, …>` makes a new error type fail the build until it has an
 * HTTP status and an exit code.
 */
export type ErrorType = 'InvalidInput' | 'NotFound' | 'Conflict' | 'HostCommandFailed' | 'ApiRefused' | 'Internal'

export class AppError extends Error {
  constructor(
    readonly type: ErrorType,
    message: string,
    readonly detail = '',
  ) {
    super(message)
    this.name = 'AppError'
  }
}

export const httpStatus: Record<ErrorType, number> = {
  InvalidInput: 400,
  NotFound: 404,
  Conflict: 409,
  HostCommandFailed: 500,
  ApiRefused: 502,
  Internal: 500,
}

/** CLI exit codes: 0 ok, 1 drift found, 2 bad input, 3 API refused, 4 host command failed, 70 bug. */
export const exitCode: Record<ErrorType, number> = {
  InvalidInput: 2,
  NotFound: 2,
  Conflict: 2,
  HostCommandFailed: 4,
  ApiRefused: 3,
  Internal: 70,
}
