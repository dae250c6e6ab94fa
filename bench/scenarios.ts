/**
 * What the bench measures: each scenario names its target (the server, the bare baseline or the GraphQL peer),
 * builds the requests a connection cycles through, and says what a correct answer looks like. The documents are in
 * workload.ts; the two data sets (~1.7 KB and ~64 KB contexts) in seed.ts.
 */
import type { DataSet, SeededSession } from "./seed";
import { interaction, MERGE, READ_MANY, READ_ONE, realisticContext, STORE, USER_SESSIONS } from "./workload";

/** The server runs with AUTH_MODE=gateway and this secret; every request carries it. */
export const GATEWAY_SECRET = "bench-gateway-secret-not-for-production";
const READ_MANY_COUNT = 20;
/**
 * Users whose sessions merge-watched writes into, each session with one subscriber (20 users' sessions per
 * connection of the load generator would be 1,280; 320 users are 6,400 sessions): merge-no-history writes into the
 * same number of users of the tenants without history, so both scenarios' documents grow alike.
 */
export const WATCHED_USERS = 320;

export interface BenchRequest {
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface Scenario {
  name: string;
  description: string;
  target: "server" | "baseline" | "peer";
  /** Scenarios whose rows this one's ratios need: selecting it by BENCH_SCENARIOS runs them too. */
  needs?: readonly string[];
  /**
   * Sessions (grouped by user) that have one live subscriber each while the scenario runs: run.ts opens them
   * before the check and closes them after the measured run.
   */
  watched?: readonly (readonly SeededSession[])[];
  /** In the sequential check, every answer must be byte for byte the server's answer to the same request. */
  sameAnswerAsServer?: boolean;
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

const readOnes = (data: DataSet, rand: () => number): BenchRequest[] =>
  Array.from({ length: 512 }, () => {
    const s = data.anySession(rand);
    return post(s, READ_ONE, { sessionId: s.sessionId });
  });

const isReadOne = (body: string) => body.startsWith('{"data":{"sessionContext":{"id":');

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

/**
 * Every scenario, in the order they run: baseline-json first and (as baseline-json-again) last; each size's bare
 * baseline and the peer just before our server's read of that size. `large`: the ~64 KB data set.
 */
export function scenarios(data: DataSet, large: DataSet): Scenario[] {
  const hot = hotSession(data);
  const baselineJson = (name: string, description: string, of = data): Scenario => ({
    name,
    description,
    target: "baseline",
    sessionsPerRequest: 1,
    requests: (rand) => baselineGets(of, "json", rand),
    verify: isReadOne,
  });
  const readOne = (name: string, description: string, of: DataSet, target: "server" | "peer"): Scenario => ({
    name,
    description,
    target,
    sessionsPerRequest: 1,
    requests: (rand) => readOnes(of, rand),
    verify: isReadOne,
    sameAnswerAsServer: target === "peer",
  });
  const watchedPool = data.usersWithHistory(WATCHED_USERS, true);
  const unwatchedPool = data.usersWithHistory(WATCHED_USERS, false);
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
      ...readOne(
        "peer-read-one",
        "the read-one request served by the peer: Mercurius on Fastify with graphql-jit, GET + JSON.parse in the resolver",
        data,
        "peer",
      ),
      needs: ["baseline-json"],
    },
    readOne(
      "read-one",
      "sessionContext(sessionId) with every field, the caller's own session, random across the data set",
      data,
      "server",
    ),
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
    mergeScenario(
      "merge",
      "mergeSessionContext (two state keys, one appended interaction) into a random existing session of a tenant keeping history (historyDepth 20)",
      (rand) => data.anySessionWithHistory(rand, true),
    ),
    mergeScenario(
      "merge-no-history",
      `the same merge into a session of a tenant with historyDepth 0, among ${unwatchedPool.length} users' sessions (as many as merge-watched's)`,
      poolPicker(unwatchedPool),
    ),
    {
      ...mergeScenario(
        "merge-watched",
        `the same merge with history (depth 20) among ${watchedPool.length} users' sessions, each session with one live subscriber (every field of the context)`,
        poolPicker(watchedPool),
      ),
      needs: ["merge-no-history"],
      watched: watchedPool,
    },
    {
      name: "merge-64-on-one",
      description: "the same merge, all 64 connections into one session (atomicity under contention)",
      target: "server",
      sessionsPerRequest: 1,
      requests: (rand) => Array.from({ length: 64 }, (_, n) => post(hot, MERGE, { input: mergeInput(rand, hot, n) })),
      verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
    },
    baselineJson(
      "baseline-json-64k",
      "baseline-json over the ~64 KB contexts: GET, JSON.parse + JSON.stringify into the answer's shape",
      large,
    ),
    {
      ...readOne("peer-read-one-64k", "peer-read-one over the ~64 KB contexts", large, "peer"),
      needs: ["baseline-json-64k"],
    },
    {
      ...readOne("read-one-64k", "read-one over the ~64 KB contexts", large, "server"),
      needs: ["baseline-json-64k", "peer-read-one-64k"],
    },
    {
      ...mergeScenario(
        "merge-64k",
        "merge's merge (two state keys, one appended interaction) into a ~64 KB context of a tenant keeping history",
        (rand) => large.anySessionWithHistory(rand, true),
      ),
      needs: ["baseline-json-64k", "merge"],
    },
    baselineJson("baseline-json-again", "baseline-json once more at the end: the ratios use the mean of both runs"),
  ];
}

/** A random session of a random user of `pool`. */
const poolPicker =
  (pool: readonly (readonly SeededSession[])[]) =>
  (rand: () => number): SeededSession => {
    const user = pool[Math.floor(rand() * pool.length)];
    return user[Math.floor(rand() * user.length)];
  };

/** The merge workload (two state keys, one appended interaction) into sessions `pick` chooses. */
function mergeScenario(name: string, description: string, pick: (rand: () => number) => SeededSession): Scenario {
  return {
    name,
    description,
    target: "server",
    sessionsPerRequest: 1,
    requests: (rand) =>
      Array.from({ length: 256 }, (_, n) => {
        const s = pick(rand);
        return post(s, MERGE, { input: mergeInput(rand, s, n) });
      }),
    verify: (body) => body.startsWith('{"data":{"mergeSessionContext":{"id":'),
  };
}

/**
 * The scenarios named in `only` (all when undefined), with those they need (`needs`, transitively); naming
 * baseline-json brings its second run too.
 */
export function selectScenarios(all: Scenario[], only: readonly string[] | undefined): Scenario[] {
  if (!only) return all;
  const wanted = new Set(only);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of all) {
      for (const name of wanted.has(s.name) ? (s.needs ?? []) : []) {
        if (!wanted.has(name)) grew = wanted.add(name).size > 0;
      }
    }
  }
  if (wanted.has("baseline-json")) wanted.add("baseline-json-again");
  return all.filter((s) => wanted.has(s.name));
}
