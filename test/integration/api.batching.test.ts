import { errorCodes, MERGE, STORE } from "../helpers/api";
import { type RedisProcess } from "../helpers/redis-server";
import {
  freshTenant,
  gatewayHeaders,
  startTestServer,
  type TestServer,
  useServerOnRedis,
} from "../helpers/test-server";

const LIMIT = 100;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const aliases = (n: number, from = 0) =>
  range(n)
    .map((i) => `s${i + from}: sessionContext(sessionId: "s${i + from}") { sessionId version }`)
    .join("\n");
const representations = (user: string, n: number) =>
  range(n).map((i) => ({ __typename: "SessionContext", userId: user, sessionId: `s${i}` }));
const ENTITIES = `query E($r: [_Any!]!) { _entities(representations: $r) { ... on SessionContext { sessionId version } } }`;

describe("batching against Redis", () => {
  let redis: RedisProcess;
  let server: TestServer;
  useServerOnRedis((started) => ({ redis, server } = started));

  /** How many MGET and GET commands Redis ran while `action` did. */
  async function readCommandsDuring<T>(action: () => Promise<T>): Promise<{ result: T; mget: number; get: number }> {
    const before = await redis.commandCalls();
    const result = await action();
    const after = await redis.commandCalls();
    const delta = (command: string) => (after[command] ?? 0) - (before[command] ?? 0);
    return { result, mget: delta("mget"), get: delta("get") };
  }

  async function storeSessions(tenant: string, user: string, sessionNumbers: number[]): Promise<void> {
    for (const i of sessionNumbers) {
      await server.post({ query: STORE, variables: { input: { sessionId: `s${i}` } } }, gatewayHeaders(tenant, user));
    }
  }

  describe("many reads in one request reach the store as one MGET", () => {
    it("20 sessionContext aliases: one MGET, no GET, each alias answered", async () => {
      const tenant = freshTenant();
      await storeSessions(tenant, "alice", [0, 5, 19]);

      const { result, mget, get } = await readCommandsDuring(() =>
        server.post<Record<string, { sessionId: string } | null>>(
          { query: `{ ${aliases(20)} }` },
          gatewayHeaders(tenant, "alice"),
        ),
      );

      expect(result.body.errors).toBeUndefined();
      expect(mget).toBe(1);
      expect(get).toBe(0);
      const present = Object.entries(result.body.data ?? {}).filter(([, session]) => session !== null);
      expect(present.map(([alias]) => alias).sort()).toEqual(["s0", "s19", "s5"]);
    });

    it("_entities with 20 representations: one MGET, no GET, in order", async () => {
      const tenant = freshTenant();
      await storeSessions(tenant, "alice", [1, 2, 3]);

      const { result, mget, get } = await readCommandsDuring(() =>
        server.post<{ _entities: ({ sessionId: string } | null)[] }>(
          { query: ENTITIES, variables: { r: representations("alice", 20) } },
          gatewayHeaders(tenant, "alice"),
        ),
      );

      expect(result.body.errors).toBeUndefined();
      expect(mget).toBe(1);
      expect(get).toBe(0);
      expect(result.body.data?._entities.map((e) => e?.sessionId ?? null)).toEqual(
        range(20).map((i) => ([1, 2, 3].includes(i) ? `s${i}` : null)),
      );
    });

    it("aliases and _entities together, 100 reads in all (the limit): one MGET", async () => {
      const tenant = freshTenant();
      const query = `query Mixed($r: [_Any!]!) {
        ${aliases(60, 1000)}
        _entities(representations: $r) { ... on SessionContext { sessionId } }
      }`;

      const { result, mget, get } = await readCommandsDuring(() =>
        server.post(
          { query, variables: { r: representations("bob", 40) } },
          gatewayHeaders(tenant, "svc", ["service"]),
        ),
      );

      expect(result.body.errors).toBeUndefined();
      expect(mget).toBe(1);
      expect(get).toBe(0);
    });
  });

  describe(`more than ${LIMIT} session reads in one request are refused before anything is read`, () => {
    it.each<[string, () => { query: string; variables?: Record<string, unknown> }]>([
      [`${LIMIT + 1} sessionContext aliases`, () => ({ query: `{ ${aliases(LIMIT + 1)} }` })],
      [
        `${LIMIT + 1} representations in a variable`,
        () => ({ query: ENTITIES, variables: { r: representations("alice", LIMIT + 1) } }),
      ],
      [
        `${LIMIT + 1} representations written in the document`,
        () => ({
          query: `{ _entities(representations: [${representations("alice", LIMIT + 1)
            .map((r) => `{__typename: "SessionContext", userId: "${r.userId}", sessionId: "${r.sessionId}"}`)
            .join(", ")}]) { __typename } }`,
        }),
      ],
      [
        "60 aliases plus 41 representations",
        () => ({
          query: `query M($r: [_Any!]!) { ${aliases(60)} _entities(representations: $r) { __typename } }`,
          variables: { r: representations("alice", 41) },
        }),
      ],
      [
        `${LIMIT + 1} aliases spread from a fragment`,
        () => ({ query: `{ ...Many } fragment Many on Query { ${aliases(LIMIT + 1)} }` }),
      ],
      [
        `${LIMIT + 1} aliases split between inline fragments`,
        () => ({ query: `{ ... on Query { ${aliases(50)} } ... { ${aliases(51, 50)} } }` }),
      ],
    ])("%s", async (_case, request) => {
      const tenant = freshTenant();

      const { result, mget, get } = await readCommandsDuring(() =>
        server.post(request(), gatewayHeaders(tenant, "alice")),
      );

      expect(result.status).toBe(400);
      expect(result.body.data ?? null).toBeNull();
      expect(["BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"]).toContain(errorCodes(result)[0]);
      expect(result.body.errors).toHaveLength(1);
      expect(result.body.errors?.[0].message).toContain(String(LIMIT));
      expect(mget).toBe(0);
      expect(get).toBe(0);
    });
  });

  describe("the fields of a mutation run one after another", () => {
    it("a later field sees an earlier write of the same request, and a later request reads it", async () => {
      const tenant = freshTenant();
      const alice = gatewayHeaders(tenant, "alice");

      const written = await server.post<Record<string, { version: number; conversationState: object }>>(
        {
          query: `mutation {
            first: storeSessionContext(input: {sessionId: "s1", conversationState: {a: 1}}) { version conversationState }
            second: mergeSessionContext(input: {sessionId: "s1", conversationState: {b: 2}}) { version conversationState }
            third: mergeSessionContext(input: {sessionId: "s1", expectedVersion: 2, conversationState: {c: 3}}) { version conversationState }
          }`,
        },
        alice,
      );
      const read = await server.post(
        { query: `{ sessionContext(sessionId: "s1") { version conversationState } }` },
        alice,
      );

      expect(written.body).toEqual({
        data: {
          first: { version: 1, conversationState: { a: 1 } },
          second: { version: 2, conversationState: { a: 1, b: 2 } },
          third: { version: 3, conversationState: { a: 1, b: 2, c: 3 } },
        },
      });
      expect(read.body).toEqual({ data: { sessionContext: { version: 3, conversationState: { a: 1, b: 2, c: 3 } } } });
    });
  });

  describeConcurrentMerges("redis", () => server);
});

describe("batching against the embedded store", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it(`refuses ${LIMIT + 1} aliases and answers ${LIMIT}`, async () => {
    const alice = gatewayHeaders(freshTenant(), "alice");

    const refused = await server.post({ query: `{ ${aliases(LIMIT + 1)} }` }, alice);
    const answered = await server.post({ query: `{ ${aliases(LIMIT)} }` }, alice);

    expect(errorCodes(refused)).toHaveLength(1);
    expect(refused.body.errors?.[0].message).toContain(String(LIMIT));
    expect(answered.body.errors).toBeUndefined();
    expect(Object.keys(answered.body.data ?? {})).toHaveLength(LIMIT);
  });

  describeConcurrentMerges("embedded", () => server);
});

function describeConcurrentMerges(kind: string, backend: () => TestServer) {
  describe(`merges are atomic through the API (${kind})`, () => {
    it("200 concurrent mergeSessionContext requests to one session all land", async () => {
      const tenant = freshTenant();
      const alice = gatewayHeaders(tenant, "alice");
      const n = 200;

      const responses = await Promise.all(
        range(n).map((i) =>
          backend().post<{ mergeSessionContext: { version: number } }>(
            {
              query: MERGE,
              variables: {
                input: { sessionId: "s1", conversationState: { [`k${i}`]: i }, interruptedQueries: [`q${i}`] },
              },
            },
            alice,
          ),
        ),
      );
      const final = await backend().post<{
        sessionContext: { version: number; conversationState: Record<string, number>; interruptedQueries: string[] };
      }>({ query: `{ sessionContext(sessionId: "s1") { version conversationState interruptedQueries } }` }, alice);

      expect(responses.flatMap((r) => r.body.errors ?? [])).toEqual([]);
      // Each merge saw a distinct version: none overwrote another.
      expect(responses.map((r) => r.body.data?.mergeSessionContext.version).sort((a, b) => a! - b!)).toEqual(
        range(n).map((i) => i + 1),
      );
      const session = final.body.data?.sessionContext;
      expect(session?.version).toBe(n);
      expect(session?.conversationState).toEqual(Object.fromEntries(range(n).map((i) => [`k${i}`, i])));
      // Appends land in the order the merges ran (their versions); the list keeps the newest 100 (tenant cap).
      const queryOfVersion = new Map(responses.map((r, i) => [r.body.data?.mergeSessionContext.version, `q${i}`]));
      expect(session?.interruptedQueries).toEqual(range(100).map((i) => queryOfVersion.get(n - 100 + i + 1)));
    });
  });
}
