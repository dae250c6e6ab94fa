import { GraphQLError } from "graphql";
import { ErrorCode } from "./error-code";

/** Invalid input; `field` is the argument path that was wrong (for example `input.ttlSeconds`). */
export class BadUserInputError extends GraphQLError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`, { extensions: { code: ErrorCode.BAD_USER_INPUT, field } });
  }
}

/** Missing or invalid credentials. Raised in the context factory, so the whole request answers HTTP 401. */
export class UnauthenticatedError extends GraphQLError {
  constructor(message: string) {
    super(message, { extensions: { code: ErrorCode.UNAUTHENTICATED, http: { status: 401 } } });
  }
}

export class ForbiddenError extends GraphQLError {
  constructor(message: string) {
    super(message, { extensions: { code: ErrorCode.FORBIDDEN } });
  }
}

/** `expectedVersion` did not match the stored version; nothing was written. */
export class ConflictError extends GraphQLError {
  constructor(
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`expected version ${expectedVersion} but the stored version is ${actualVersion}; nothing was written`, {
      extensions: { code: ErrorCode.CONFLICT, expectedVersion, actualVersion },
    });
  }
}

/**
 * The store could not be reached or did not answer in time. For a write, `outcomeUnknown` says the command may
 * still have been applied (a timed-out command can land later), so the client should read before retrying.
 */
export class ServiceUnavailableError extends GraphQLError {
  /** `retryable`: nothing was tried, and the same request may well succeed at once (another replica, a moment later). */
  constructor(message: string, outcomeUnknown = false, retryable = false) {
    super(message, {
      extensions: { code: ErrorCode.SERVICE_UNAVAILABLE, outcomeUnknown, ...(retryable ? { retryable } : {}) },
    });
  }
}

/** A merge would leave an object field with more than MAX_OBJECT_KEYS top-level keys; nothing was written. */
export class TooManyKeysError extends BadUserInputError {
  constructor(
    field: "conversationState" | "userPreferences",
    readonly keys: number,
    readonly maxKeys: number,
  ) {
    super(
      `input.${field}`,
      `the merge would leave ${keys} top-level keys, over the limit of ${maxKeys}; store the field whole to shrink it`,
    );
  }
}

/** The context after the write would be larger than MAX_CONTEXT_BYTES; nothing was written. */
export class ContextTooLargeError extends BadUserInputError {
  constructor(
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super("input", `the context would be ${bytes} bytes, over the limit of ${maxBytes} (MAX_CONTEXT_BYTES)`);
  }
}
