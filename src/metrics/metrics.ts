import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** A histogram with its labels bound. */
export interface Observer {
  observe(value: number): void;
}

/**
 * The service's Prometheus instruments, on a registry of their own (one per server, so tests can run several
 * servers in one process). Served as text on `GET /metrics`.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Every GraphQL operation, from request to response. */
  readonly operationDuration = new Histogram({
    name: "graphql_operation_duration_seconds",
    help: "Duration of GraphQL operations, from the request to the response.",
    labelNames: ["operation_name", "operation_type", "outcome"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  /** Resolvers of the root fields (Query, Mutation): the work below them is the store's. */
  readonly resolverDuration = new Histogram({
    name: "graphql_resolver_duration_seconds",
    help: "Duration of root-field resolvers.",
    labelNames: ["parent_type", "field_name"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /** Each call to the session store; one call is one Redis round trip (a script, MGET, or a few for purge). */
  readonly storeCommandDuration = new Histogram({
    name: "session_store_command_duration_seconds",
    help: "Duration of session store commands.",
    labelNames: ["command"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /** Where `session_store_commands_in_flight` is read at each scrape (the server sets it; AdmittedSessionStore). */
  storeInFlight: () => number = () => 0;

  /** Store commands sent and not answered yet. */
  readonly storeCommandsInFlight: Gauge = new Gauge({
    name: "session_store_commands_in_flight",
    help: "Session store commands sent to Redis and not answered yet, timed-out ones included.",
    registers: [this.registry],
    collect: () => this.storeCommandsInFlight.set(this.storeInFlight()),
  });

  /** Store calls refused before anything was sent: too many commands in flight, or a tenant's writes at its limit. */
  readonly storeCommandsRefused = new Counter({
    name: "session_store_commands_refused_total",
    help: "Session store calls refused at once, retryable, by reason (in_flight: REDIS_MAX_IN_FLIGHT; tenant_writes: TENANT_WRITES_IN_FLIGHT).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** Requests answered before their body was read: a tenant over its share of large requests. */
  readonly requestsRefused = new Counter({
    name: "graphql_requests_refused_total",
    help: "GraphQL requests refused before their body was read, retryable, by reason (tenant_large_bytes: TENANT_LARGE_BYTES_PER_SECOND).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** Errors sent to clients, by `extensions.code`. */
  readonly errors = new Counter({
    name: "graphql_errors_total",
    help: "GraphQL errors returned to clients, by extensions.code.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });

  /** Requests the prepared-operation lane answered; every other `/graphql` request went through Apollo's pipeline. */
  readonly preparedLaneRequests = new Counter({
    name: "graphql_prepared_lane_requests_total",
    help: "GraphQL requests answered by the prepared-operation lane instead of Apollo's request pipeline.",
    registers: [this.registry],
  });

  // prom-client hashes the label values on every `observe(labels, value)`, which showed in the profile of a read:
  // the children of the two per-request histograms are looked up once per label set and kept.
  private readonly storeCommandChildren = new Map<string, Observer>();
  private readonly operationChildren = new Map<string, Observer>();

  /** `session_store_command_duration_seconds` of one command. */
  storeCommand(command: string): Observer {
    let child = this.storeCommandChildren.get(command);
    if (child === undefined) {
      child = this.storeCommandDuration.labels({ command });
      this.storeCommandChildren.set(command, child);
    }
    return child;
  }

  /** `graphql_operation_duration_seconds` of one operation name, type and outcome (names are capped by the caller). */
  operation(operationName: string, operationType: string, outcome: string): Observer {
    const key = `${operationName}\u0000${operationType}\u0000${outcome}`;
    let child = this.operationChildren.get(key);
    if (child === undefined) {
      child = this.operationDuration.labels({
        operation_name: operationName,
        operation_type: operationType,
        outcome,
      });
      this.operationChildren.set(key, child);
    }
    return child;
  }

  /** `/graphql` requests being served right now. */
  readonly inFlight = new Gauge({
    name: "graphql_requests_in_flight",
    help: "GraphQL HTTP requests being served.",
    registers: [this.registry],
  });

  /** Live subscriptions open now, by root field (`sessionContextChanged`, `userSessionsChanged`). */
  readonly subscriptionsActive = new Gauge({
    name: "graphql_subscriptions_active",
    help: "GraphQL subscriptions open on this process, over WebSocket and SSE, by root field.",
    labelNames: ["field"] as const,
    registers: [this.registry],
  });

  /** Events handed to subscribers. */
  readonly eventsDelivered = new Counter({
    name: "session_events_delivered_total",
    help: "Session events sent to subscribers, by root field.",
    labelNames: ["field"] as const,
    registers: [this.registry],
  });

  /**
   * Executions of a `sessionContextChanged` selection for an event: one per live event and shared document
   * (live-subscribe.ts), one per subscriber for replayed events and unshared documents. Beside
   * session_events_delivered_total it shows how much the sharing saves.
   */
  readonly eventExecutions = new Counter({
    name: "session_event_executions_total",
    help: "Executions of a subscription selection for a session event; shared: executed once for every subscriber with the same document.",
    labelNames: ["shared"] as const,
    registers: [this.registry],
  });

  /** Connections closed because their client did not read its events. */
  readonly slowConsumers = new Counter({
    name: "graphql_subscription_slow_consumers_total",
    help: "Live connections closed because their client did not read its events (more than the queue bound behind).",
    registers: [this.registry],
  });

  /** From the write's commit (the store's clock) to the event's send, for events that stand for one write. */
  readonly eventDelivery = new Histogram({
    name: "session_event_delivery_seconds",
    help: "Seconds from a session write's commit (the store's clock) to its event being sent to a subscriber.",
    labelNames: ["field"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  /**
   * Adds `session_store_up`: 1 when the store answered its last ping (`answers`: the store's ping within a bound,
   * storeAnswers — the check of /health/ready), else 0. Each scrape starts the next ping and reports the last one
   * that finished, so a scrape never waits on a store that hangs (a scrape must stay fast, and `/metrics` is what
   * one reads while the store is in trouble); the first ping starts now.
   */
  watchStore(answers: () => Promise<boolean>): void {
    let last: Promise<boolean> = answers();
    let asking: Promise<boolean> | undefined = last;
    const ask = () => {
      asking ??= answers().then((up) => {
        last = Promise.resolve(up);
        asking = undefined;
        return up;
      });
    };
    void last.then(() => (asking = undefined));
    new Gauge({
      name: "session_store_up",
      help: "1 when the session store (Redis, or the embedded store) answered its last ping (one per scrape), else 0.",
      registers: [this.registry],
      async collect() {
        const known = await last; // settled, except before the very first ping has answered (at most its bound)
        ask();
        this.set(known ? 1 : 0);
      },
    });
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const reason of ["in_flight", "tenant_writes"]) this.storeCommandsRefused.labels({ reason }).inc(0);
  }
}
