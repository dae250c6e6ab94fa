import type { IncomingHttpHeaders } from "node:http";
import { execute, type ExecutionResult, type GraphQLSchema } from "graphql";
import type { RequestContext } from "../../context/request-context";
import type { Metrics } from "../../metrics/metrics";
import type { ExecutionSeam } from "../execution-seam";
import { writeJsonAnswerChunks, type AnswerChunks } from "../json-answer";
import { compileOperation } from "./compile-operation";
import type { PreparedOperationCache } from "./prepared-operation-cache";
import { singleResultContentType } from "./response-content-type";

/** What the lane answers with; the HTTP layer adds its own headers (request id, CORS, Server-Timing). */
export interface LaneResponse {
  status: number;
  headers: Map<string, string>;
  /** Pieces when the answer carries stored bytes (writeJsonAnswerChunks), to be sent one after the other. */
  body: AnswerChunks | string;
  context: RequestContext;
}

export interface PreparedOperationLaneOptions {
  /** The schema Apollo serves (the same object, with the same resolvers and root-field timing). */
  schema: GraphQLSchema;
  /** The rules every path applies: admission, observation, error formatting. */
  seam: ExecutionSeam;
  /** The operations Apollo has prepared. */
  prepared: PreparedOperationCache;
  metrics: Metrics;
}

/**
 * The fast path for operations the server has already seen. Apollo's request pipeline costs most of the CPU of a
 * simple read (hashing the query, a dozen plugin hooks, header maps, per-request objects for the garbage
 * collector). Once Apollo has parsed and validated a document for an operation name, this lane runs later
 * requests with the same query text and operation name on the same schema itself — compiled by graphql-jit, or
 * with graphql-js `execute` where graphql-jit is not used (compileOperation) — under the same ExecutionSeam rules.
 *
 * It serves only what it can answer exactly as Apollo would; everything else returns undefined before anything
 * has been read or written, and Apollo serves the request: a query it has not seen, a persisted-query hash,
 * a federation trace request, an `accept` header Apollo would not answer with JSON, credentials the context
 * factory refuses, an operation an admission rule refuses (Apollo refuses it in its own words), variables that do
 * not coerce, and every request once the server is stopping.
 */
export class PreparedOperationLane {
  constructor(private readonly options: PreparedOperationLaneOptions) {}

  /**
   * Serves a parsed JSON POST body, or returns undefined for Apollo to serve it (nothing was executed then).
   * `createContext` is the same context factory Apollo uses.
   */
  async run(
    body: unknown,
    headers: IncomingHttpHeaders,
    createContext: () => Promise<RequestContext>,
  ): Promise<LaneResponse | undefined> {
    const { seam, prepared: cache } = this.options;
    if (!cache.isOpen || headers["apollo-federation-include-trace"] !== undefined) return undefined;
    const contentType = singleResultContentType(headers.accept);
    if (contentType === null || !isPlainObject(body)) return undefined;
    const { query, operationName, variables, extensions } = body;
    if (typeof query !== "string") return undefined;
    if (operationName !== undefined && operationName !== null && typeof operationName !== "string") return undefined;
    if (variables !== undefined && variables !== null && !isPlainObject(variables)) return undefined;
    if (
      extensions !== undefined &&
      extensions !== null &&
      (!isPlainObject(extensions) || "persistedQuery" in extensions)
    )
      return undefined;
    const prepared = cache.get(query, operationName);
    if (prepared === undefined) return undefined;
    const { document, operation } = prepared;
    const variableValues = variables ?? {};

    let context: RequestContext;
    try {
      context = await createContext();
      seam.admit({ document, operation, variables: variableValues, context });
    } catch {
      return undefined;
    }
    const observed = seam.start({ path: "prepared", context, operationName });
    if (prepared.compiled === undefined)
      prepared.compiled = compileOperation(this.options.schema, document, operationName);
    const result: ExecutionResult = prepared.compiled
      ? await prepared.compiled.query(undefined, context, variableValues)
      : await execute({ schema: this.options.schema, document, operationName, variableValues, contextValue: context });
    // No data means graphql-js stopped before running anything (variables that do not coerce): Apollo words that.
    if (result.data === undefined) return undefined;

    const errors = result.errors ?? [];
    const formatted = errors.length > 0 ? seam.formatErrors(errors) : undefined;
    const responseHeaders = new Map([["content-type", contentType], ...(formatted?.headers ?? [])]);
    const text = writeJsonAnswerChunks({ errors: formatted?.errors, data: result.data, extensions: result.extensions });
    observed.end({ operationName: operation.name?.value ?? null, operationType: operation.operation, errors });
    this.options.metrics.preparedLaneRequests.inc();
    return { status: formatted?.status ?? 200, headers: responseHeaders, body: text, context };
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
