import type { DocumentNode, GraphQLError, OperationDefinitionNode, OperationTypeNode } from "graphql";
import type { RequestContext } from "../context/request-context";

/**
 * How an operation reached execution: Apollo's HTTP pipeline, or the prepared-operation lane (documents Apollo has
 * already validated), or a subscription over WebSocket or SSE (src/live/transports).
 */
export type ExecutionPath = "apollo" | "prepared" | "subscription";

/** An operation about to run, as admission rules see it: parsed, validated and resolved, nothing executed yet. */
export interface OperationToAdmit {
  readonly document: DocumentNode;
  readonly operation: OperationDefinitionNode;
  readonly variables: Readonly<Record<string, unknown>>;
  readonly context: RequestContext;
}

/** An operation starting, as observers see it. */
export interface OperationStart {
  readonly path: ExecutionPath;
  readonly context: RequestContext;
  /** The operation name the request asked for (null or undefined: none given). */
  readonly operationName: string | null | undefined;
}

/** An operation that ended, as observers see it. */
export interface OperationEnd {
  /** The name of the operation that ran; null when it has none or none could be resolved. */
  readonly operationName: string | null | undefined;
  /** `query`, `mutation`, or undefined when the request never got as far as an operation (parse errors). */
  readonly operationType: OperationTypeNode | undefined;
  /** Every error sent to the client, before formatting (their `extensions.code` is what clients see). */
  readonly errors: readonly GraphQLError[];
  /** From the start to the end, in ms. */
  readonly durationMs: number;
}

/**
 * One cross-cutting rule of the server (a read limit, the operation recorder, tracing): a name and hooks, written
 * once and run by every execution path through the ExecutionSeam. Hooks must be cheap and synchronous: they run on
 * every request of every path.
 */
export interface OperationRule {
  readonly name: string;
  /** Admission, before anything runs: throw a GraphQLError (with its code and `http` status) to refuse. */
  admit?(operation: OperationToAdmit): void;
  /**
   * Observation: sees every operation start; the function it returns sees the same operation end. An operation
   * one path hands over to another before anything has run (the prepared lane standing aside for Apollo) starts
   * again there, and the first start never ends: keep nothing in an observer that needs closing.
   */
  observe?(start: OperationStart): ((end: OperationEnd) => void) | undefined;
  /** The request's credentials were refused: no operation started. */
  contextFailed?(error: unknown): void;
}
