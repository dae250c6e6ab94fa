import { GraphQLError, type GraphQLFormattedError, type ValidationRule } from "graphql";
import { ErrorCode } from "../errors/error-code";
import type { OperationEnd, OperationRule, OperationStart, OperationToAdmit } from "./operation-rule";

/** Formats one error for the client; `error` is the original (Apollo's `formatError` signature). */
export type ErrorFormatter = (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;

export interface ExecutionSeamOptions {
  /** Run in this order: admission rules refuse at the first that throws; observers see operations in this order. */
  rules: readonly OperationRule[];
  /** Validation rules every document must pass besides graphql-js's own (document limits). */
  validationRules: readonly ValidationRule[];
  /** The last step of every error's way to the client. */
  formatError: ErrorFormatter;
  /** Add each error's stack to `extensions.stacktrace` (development). */
  includeStacktrace: boolean;
}

/** An operation under observation; `end` reports it to every observer that asked to see it. */
export interface ObservedOperation {
  end(end: Omit<OperationEnd, "durationMs">): void;
}

/** Errors formatted for the client, with the HTTP status and headers their `extensions.http` asked for. */
export interface FormattedErrors {
  errors: GraphQLFormattedError[];
  status: number | undefined;
  headers: Map<string, string>;
}

/**
 * The one place the server's cross-cutting rules live — admission, observation, error formatting — so that every
 * way an operation runs applies them alike: Apollo's pipeline through ExecutionSeamPlugin, the prepared-operation
 * lane directly, subscriptions next. A rule added here is seen by every path; no path re-implements one.
 */
export class ExecutionSeam {
  readonly validationRules: readonly ValidationRule[];
  readonly formatError: ErrorFormatter;
  private readonly admitters: OperationRule[];
  private readonly observers: OperationRule[];
  private readonly contextObservers: OperationRule[];

  constructor(private readonly options: ExecutionSeamOptions) {
    this.validationRules = options.validationRules;
    this.formatError = options.formatError;
    this.admitters = options.rules.filter((rule) => rule.admit !== undefined);
    this.observers = options.rules.filter((rule) => rule.observe !== undefined);
    this.contextObservers = options.rules.filter((rule) => rule.contextFailed !== undefined);
  }

  /** Runs every admission rule; throws the refusal of the first that refuses. */
  admit(operation: OperationToAdmit): void {
    for (const rule of this.admitters) rule.admit!(operation);
  }

  /** Starts observing an operation; call `end` once when its response is ready. */
  start(start: OperationStart): ObservedOperation {
    const started = performance.now();
    const ends: ((end: OperationEnd) => void)[] = [];
    for (const rule of this.observers) {
      const end = rule.observe!(start);
      if (end !== undefined) ends.push(end);
    }
    return {
      end: (end) => {
        const ended = { ...end, durationMs: performance.now() - started };
        for (const report of ends) report(ended);
      },
    };
  }

  /** The request's credentials were refused before any operation started. */
  contextFailed(error: unknown): void {
    for (const rule of this.contextObservers) rule.contextFailed!(error);
  }

  /**
   * Errors as Apollo sends them (its `normalizeAndFormatErrors`, which it does not export): a code always
   * (INTERNAL_SERVER_ERROR when none), `extensions.http` taken out into the response's status and headers, the
   * stack in development, then `formatError`; an error thrown by `formatError` itself becomes "Internal server
   * error". For the paths that build their responses themselves; Apollo's own pipeline calls `formatError`.
   */
  formatErrors(errors: readonly GraphQLError[]): FormattedErrors {
    const formatted: FormattedErrors = { errors: [], status: undefined, headers: new Map() };
    for (const error of errors) {
      let http: HttpExtension | undefined;
      const enrich = (graphqlError: GraphQLError): GraphQLFormattedError => {
        // graphql-jit's errors have no `extensions` at all when the error they wrap had none.
        const own = (graphqlError.extensions as GraphQLError["extensions"] | undefined) ?? {};
        const extensions: Record<string, unknown> = { ...own, code: own.code ?? ErrorCode.INTERNAL_SERVER_ERROR };
        if (isHttpExtension(extensions.http)) {
          http = extensions.http;
          delete extensions.http;
        }
        if (this.options.includeStacktrace) extensions.stacktrace = graphqlError.stack?.split("\n");
        return { ...graphqlError.toJSON(), extensions };
      };
      let one: GraphQLFormattedError;
      try {
        one = this.formatError(enrich(error), error);
      } catch (formattingError) {
        if (this.options.includeStacktrace) {
          const asError = formattingError instanceof Error ? formattingError : new Error(String(formattingError));
          one = enrich(new GraphQLError(asError.message, { originalError: asError }));
        } else {
          one = { message: "Internal server error", extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
          http = undefined;
        }
      }
      formatted.errors.push(one);
      if (http?.status !== undefined) formatted.status = http.status;
      for (const [name, value] of http?.headers ?? []) formatted.headers.set(name, value);
    }
    return formatted;
  }
}

interface HttpExtension {
  status?: number;
  headers?: Map<string, string>;
}

function isHttpExtension(value: unknown): value is HttpExtension {
  return (
    typeof value === "object" &&
    value !== null &&
    (!("status" in value) || typeof value.status === "number") &&
    (!("headers" in value) || value.headers instanceof Map)
  );
}
