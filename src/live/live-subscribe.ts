import {
  createSourceEventStream,
  execute,
  subscribe,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type GraphQLError,
  type GraphQLFormattedError,
} from "graphql";
import type { CompiledQuery } from "graphql-jit";
import type { RequestContext } from "../context/request-context";
import { compileOperation } from "../execution/prepared/compile-operation";
import { writeJson } from "../execution/json-answer";
import type { Metrics } from "../metrics/metrics";
import { closing } from "./closing-iterator";
import type { LiveUpdates } from "./live-updates";
import { isSharedItem, type SharedAnswer, type SharedItem, type StreamItem } from "./session-change-stream";
import { SHARED_ROOT_FIELD, type SharingPlans } from "./sharing-plan";

/**
 * Where one subscription's `next` messages go, given by its transport: graphql-ws wraps the payload in
 * `{"id":…,"type":"next","payload":…}` with the subscription's id, graphql-sse in an `event: next` line.
 */
export interface LiveOperationSink {
  /**
   * Sends one `next` whose payload is this serialized ExecutionResult (UTF-8 JSON). Resolves once the message is
   * handed to the socket: a client that does not read holds back the next one, so its events wait in its bounded
   * queue (and overflow it: 1013), not in this process's buffers.
   */
  send(payload: Buffer): Promise<void>;
}

export interface LiveSubscribeOptions {
  updates: LiveUpdates;
  plans: SharingPlans;
  /** The sink of the operation whose context this is; undefined: let graphql-js run it. */
  sinkOf(contextValue: unknown): LiveOperationSink | undefined;
  /** session_event_executions_total. */
  executions: Metrics["eventExecutions"];
  /** The seam's error formatting, for a result of one subscriber that carries errors. */
  formatErrors(errors: readonly GraphQLError[]): readonly GraphQLFormattedError[];
}

/**
 * The `subscribe` the live transports give graphql-ws and graphql-sse in place of graphql-js's. For
 * `sessionContextChanged` it opens the event stream as graphql-js would (createSourceEventStream: the resolver's
 * subscribe, with its authorization), then sends each event itself through the operation's sink, and the iterator it
 * hands the library yields nothing: it completes when the stream ends, and the library's `return` (a `complete`
 * message, a closed socket) ends the stream.
 *
 * Sending it itself is what lets subscribers share work. A live change in order is the same SharedItem for every
 * follower of its session in this process; subscriptions whose document, operation and relevant variables are the
 * same (SharingPlans' key) get the same answer to it, so the first of them to send it executes the selection and
 * serializes the result once, keeps the bytes on the item, and the others send those bytes. Only the id around them
 * differs, and the transport's sink adds it. Everything that is the subscriber's own stays its own: the rights checked
 * when it subscribed, its position and replay, its bounded queue and slow-consumer close, and in-order delivery (the
 * sink's send is awaited before the next event is taken). Replayed and resync events, documents that reach fields
 * outside SHARED_FIELDS, and results with errors are executed per subscriber, as graphql-js would, and sent through
 * the same sink, formatted by the seam — one path, so the order of what a subscriber receives is its stream's order.
 *
 * Other subscriptions (`userSessionsChanged`) run as graphql-js runs them.
 */
export function liveSubscribe(
  options: LiveSubscribeOptions,
): (args: ExecutionArgs) => Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const { updates, plans } = options;
  const executedShared = options.executions.labels({ shared: "true" });
  const executedOwn = options.executions.labels({ shared: "false" });
  return async (args) => {
    const sink = options.sinkOf(args.contextValue);
    const plan = sink && plans.planOf(args.document, args.operationName);
    if (sink === undefined || plan === undefined || plan.rootField !== SHARED_ROOT_FIELD) {
      return subscribe(args);
    }
    // Its events leave as writeJson writes them (below): the stored context is copied, not parsed and serialized.
    (args.contextValue as RequestContext).answerWritesJsonText = true;
    const source = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in source)) return source; // refused (FORBIDDEN, a bad argument, …)
    const events = source as AsyncIterableIterator<StreamItem>;
    const key = plan.sharingKey(args.variableValues);

    const executeOn = eventExecutor(args);
    const perSubscriber = async (item: StreamItem): Promise<Buffer> => {
      executedOwn.inc();
      const result = await executeOn(item);
      return serialize(result.errors?.length ? { ...result, errors: options.formatErrors(result.errors) } : result);
    };
    const shared = (item: SharedItem, key: string): SharedAnswer => {
      let answer = item.answers.get(key);
      if (answer === undefined) {
        executedShared.inc();
        const executed = executeOn(item);
        // The event's resolvers answer synchronously (a result, not a promise); a promise is shared the same way.
        answer = executed instanceof Promise ? executed.then(shareable) : shareable(executed);
        item.answers.set(key, answer);
      }
      return answer;
    };

    // It yields nothing to the library: it sends each event through the sink itself, and only ends (or throws).
    // eslint-disable-next-line require-yield
    async function* deliver(): AsyncGenerator<never> {
      for (;;) {
        const step = await events.next();
        if (step.done) return;
        const item = step.value;
        let payload = key !== undefined && isSharedItem(item) ? shared(item, key) : null;
        if (payload instanceof Promise) payload = await payload;
        if (payload === null) payload = await perSubscriber(item);
        if ("event" in item) updates.delivered("sessionContextChanged", item.event.committedAt);
        await sink!.send(payload);
      }
    }
    // Ending the stream (the library returns early) ends deliver(): its pending events.next() resolves done.
    return closing(deliver(), () => void events.return?.());
  };
}

type EventExecutor = (item: StreamItem) => Promise<ExecutionResult> | ExecutionResult;

/** graphql-jit's compiled form of each subscription document (null: graphql-js runs it), per schema. */
const compiledDocuments = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, CompiledQuery | null>>>();

/**
 * Runs the subscription's selection on one item of its stream, as graphql-js does for each event (the root field's
 * resolver gets the item): through graphql-jit's compiled form of the document when compileOperation gives one —
 * compiled once per document (subscriptions share parsed documents), where graphql-js's execute coerced the variables
 * and collected the fields again on every event — else through graphql-js.
 */
function eventExecutor(args: ExecutionArgs): EventExecutor {
  let bySchema = compiledDocuments.get(args.schema);
  if (bySchema === undefined) compiledDocuments.set(args.schema, (bySchema = new WeakMap()));
  let byOperation = bySchema.get(args.document);
  if (byOperation === undefined) bySchema.set(args.document, (byOperation = new Map()));
  const operation = args.operationName ?? "";
  let compiled = byOperation.get(operation);
  if (compiled === undefined) {
    compiled = compileOperation(args.schema, args.document, args.operationName);
    byOperation.set(operation, compiled);
  }
  if (compiled === null) return (item) => execute({ ...args, rootValue: item });
  const query = compiled.query.bind(compiled);
  return (item) => query(item, args.contextValue, args.variableValues ?? undefined);
}

/** A result's bytes, or null when it carries errors: those go through the seam's formatting per subscriber. */
function shareable(result: ExecutionResult): Buffer | null {
  return result.errors?.length ? null : serialize(result);
}

function serialize(result: ExecutionResult | { data?: unknown; errors?: readonly unknown[] }): Buffer {
  const text = writeJson(result);
  return typeof text === "string" ? Buffer.from(text) : text;
}
