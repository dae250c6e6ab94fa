/**
 * What the bench measures: each scenario names its target (the server or the bare baseline), builds the requests a
 * connection cycles through, and says what a correct answer looks like. The documents are in workload.ts.
 */
import type { DataSet, SeededSession } from "./seed";
import { interaction, MERGE, READ_MANY, READ_ONE, realisticContext, STORE, USER_SESSIONS } from "./workload";

/** The server runs with AUTH_MODE=gateway and this secret; every request carries it. */
export const GATEWAY_SECRET = "bench-gateway-secret-not-for-production";
const READ_MANY_COUNT = 20;

export interface BenchRequest {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface Scenario {
  name: string;
  description: string;
  target: "server" | "baseline";
  /** Sessions one request reads or writes (read 20: 20). */
  sessionsPerRequest: number;
  /** The requests one connection cycles through. */
  requests(rand: () => number, connection: number): BenchRequest[];
  /** True for a correct answer; anything else counts as an error. */
  verify(body: string): boolean;
}

const headersFor = (session: SeededSession): Record<string, string> => ({
  "content-type": "application/json",
  "x-gateway-secret": GATEWAY_SECRET,
  "x-tenant-id": session.tenantId,
  "x-user-id": session.userId,
});

const post = (session: SeededSession, query: string, variables: Record<string, unknown>): BenchRequest => ({
  method: "POST",
  path: "/graphql",
  headers: headersFor(session),
  body: JSON.stringify({ query, variables }),
});

/** The baseline server's path for one session (`json` or `raw`: see baseline-server.ts). */
export const baselinePath = (mode: "json" | "raw", s: SeededSession): string =>
  `/${mode}/${encodeURIComponent(s.tenantId)}/${encodeURIComponent(s.userId)}/${encodeURIComponent(s.sessionId)}`;

const baselineGets = (data: DataSet, mode: "json" | "raw", rand: () => number): BenchRequest[] =>
  Array.from({ length: 512 }, () => ({ method: "GET", path: baselinePath(mode, data.anySession(rand)), headers: {} }));

/** What every merge scenario merges: two state keys and one appended interaction. */
export const mergeFields = (rand: () => number, n: number) => ({
  conversationState: { step: n % 12, lastIntent: "track_order" },
  recentInteractions: [interaction(rand, Date.UTC(2025, 0, 15, 10) + n * 1000)],
});

const mergeInput = (rand: () => number, session: SeededSession, n: number) => ({
  sessionId: session.sessionId,
  ...mergeFields(rand, n),
});

const noErrors = (body: string) => !body.includes('"errors"');

/** The one session merge-64-on-one writes into from every connection. */
export const hotSession = (data: DataSet): SeededSession => data.session(0);

/** Every scenario, in the order they run: baseline-json first and (as baseline-json-again) last. */
export function scenarios(data: DataSet): Scenario[] {
  const hot = hotSession(data);
  const baselineJson = (name: string, description: string): Scenario => ({
    name,
    description,
    target: "baseline",
    sessionsPerRequest: 1,
    requests: (rand) => baselineGets(data, "json", rand),
    verify: (body) => body.startsWith('{"data":{"sessionContext":{"id":'),
  });
  const mergeInto = (name: string, description: string, history: boolean) =>
    mergeScenario(data, name, description, history);
  return [
    baselineJson(
      "baseline-json",
      "bare node:http + ioredis GET of one session, JSON.parse + JSON.stringify into the GraphQL answer's shape",
    ),
    {
      name: "baseline-raw",
      description: "bare node:http + ioredis GET of one session, the stored JSON as is (no JSON work)",
      target: "baseline",
      sessionsPerRequest: 1,
      requests: (rand) => baselineGets(data, "raw", rand),
      verify: (body) => body.startsWith('{"version":'),
    },
    {
      name: "read-one",
      description: "sessionContext(sessionId) with every field, the caller's own session, random across the data set",
      target: "server",
      sessionsPerRequest: 1,
      requests: (rand) =>
        Array.from({ length: 512 }, () => {
          const s = data.anySession(rand);
          return post(s, READ_ONE, { sessionId: s.sessionId });
        }),
      verify: (body) => body.startsWith('{"data":{"sessionContext":{"id":'),
    },
    {
      name: "read-20",
      description: "20 aliased sessionContext reads (every field) of one user's 20 sessions in one request",
      target: "server",
      sessionsPerRequest: READ_MANY_COUNT,
      requests: (rand) =>
        Array.from({ length: 128 }, () => {
          const base = data.anyUserIndex(rand);
          const first = data.session(base);
          const variables: Record<string, string> = {};
          for (let i = 0; i < READ_MANY_COUNT; i++) variables[`s${i}`] = data.session(base + i).sessionId;
          return post(first, READ_MANY(READ_MANY_COUNT), variables);
        }),
      verify: (body) => body.startsWith('{"data":{"s0":{"id":') && noErrors(body) && !body.includes("null"),
    },
    {
      name: "user-sessions",
      description: "userSessions(first: 20) with every field of each node: one user's newest 20 sessions",
      target: "server",
      sessionsPerRequest: data.sessionsPerUser,
      requests: (rand) => Array.from({ length: 256 }, () => post(data.anyUser(rand), USER_SESSIONS, { first: 20 })),
      verify: (body) =>
        body.startsWith(`{"data":{"userSessions":{"totalCount":${data.sessionsPerUser},`) && noErrors(body),
    },
    {
      name: "store",
      description: "storeSessionContext of a fresh ~1.6 KB context over a random existing session",
      target: "server",
      sessionsPerRequest: 1,
      requests: (rand) =>
        Array.from({ length: 128 }, () => {
          const s = data.anySession(rand);
          return post(s, STORE, { input: { sessionId: s.sessionId, ...realisticContext(rand) } });
        }),
      verify: (body) => body.startsWith('{"data":{"storeSessionContext":{"id":'),
    },
    mergeInto(
      "merge",
      "mergeSessionContext (two state keys, one appended interaction) into a random existing session of a tenant keeping history (historyDepth 20)",
      true,
    ),
    mergeInto(
      "merge-no-history",
      "the same merge into a session of a tenant with historyDepth 0: what history costs",
      false,
    ),
    {
      name: "merge-64-on-one",
      description: "the same merge, all 64 connections into one session (atomicity under contention)",
      target: "server",
      sessionsPerRequest: 1,
      requests: (rand) => Array.from({ length: 64 }, (_, n) => post(hot, MERGE, { input: mergeInput(rand, hot, n) })),
      verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
    },
    baselineJson("baseline-json-again", "baseline-json once more at the end: the ratios use the mean of both runs"),
  ];
}

/** The same merge workload into sessions of tenants that keep history, or of tenants that do not. */
function mergeScenario(data: DataSet, name: string, description: string, history: boolean): Scenario {
  return {
    name,
    description,
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 256 }, (_, n) => {
        const s = data.anySessionWithHistory(rand, history);
        return post(s, MERGE, { input: mergeInput(rand, s, n) });
      }),
    verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
  };
}

/** The scenarios named in `only` (all when undefined); naming baseline-json brings its second run too. */
export function selectScenarios(all: Scenario[], only: readonly string[] | undefined): Scenario[] {
  return all.filter(
    (s) => !only || only.includes(s.name) || (s.name === "baseline-json-again" && only.includes("baseline-json")),
  );
}
