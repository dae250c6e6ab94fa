import fc from "fast-check";
import {
  activityIndexKey,
  expiryIndexKey,
  historyKey,
  sessionKey,
  settingsKey,
  tenantPrefix,
  userExpiryKey,
  userIndexKey,
} from "../../src/store/keys";
import { MERGE, READ, SESSION_FIELDS, STORE } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant, gatewayHeaders, type GraphQLResponse } from "../helpers/test-server";

// Bad input, made up by fast-check, sent over HTTP to the real server process on a real Redis. Runs are bounded so
// the file takes well under a minute; FUZZ_SEED replays a failure (fast-check prints the seed when one fails).
const RUNS = 150;
const MAX_CONTEXT_BYTES = 4096;
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const options = { numRuns: RUNS, seed, endOnFailure: true } as const;

// Codes a rejection may carry: all say what was wrong with the request. INTERNAL_SERVER_ERROR never.
const REJECTION_CODES = new Set([
  "BAD_USER_INPUT",
  "GRAPHQL_VALIDATION_FAILED",
  "GRAPHQL_PARSE_FAILED",
  "BAD_REQUEST",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "PERSISTED_QUERY_NOT_FOUND",
  "OPERATION_RESOLUTION_FAILURE",
]);

/** The contract's rule for ids, written out independently of src/sessions/ids.ts. */
function validId(id: string): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  const control = /[\u0000-\u001f\u007f]/.test(id);
  // An id must be expressible in UTF-8 (a lone surrogate is not): Redis keys are UTF-8 bytes.
  return id.length > 0 && Buffer.byteLength(id) <= 256 && !control && !/\p{Cs}/u.test(id);
}

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
const anyCodePoint = fc.string({ unit: "binary", minLength: 1, maxLength: 1 });
const keyChars = fc.constantFrom(":", "{", "}", "*", "?", "[", "]", "\\", "%", "%3A", "a", "-", "_", ".", "@");
const idArb = fc.oneof(
  fc.string({ unit: fc.oneof(anyCodePoint, loneSurrogate, keyChars), maxLength: 12 }),
  fc.string({ unit: keyChars, minLength: 1, maxLength: 20 }),
  fc.string({ unit: "grapheme", minLength: 40, maxLength: 120 }), // many multi-byte characters: near 256 bytes
  fc.string({ unit: "grapheme-ascii", minLength: 250, maxLength: 260 }),
  fc.string({ unit: "grapheme-ascii", minLength: 1000, maxLength: 5000 }),
  fc.constantFrom("", " ", "\u0000", "a\nb", "\u007f", "\u001f", "é".repeat(128), "😀".repeat(65), "__proto__"),
);

const objectKey = fc.oneof(
  fc.string({ unit: fc.oneof(anyCodePoint, loneSurrogate), maxLength: 8 }),
  fc.constantFrom("__proto__", "constructor", "prototype", "", "0", "1e3", '"', "\\"),
);
const jsonValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.oneof(anyCodePoint, loneSurrogate), maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 500, maxLength: 2500 }) }, // pushes contexts past the limit
  { weight: 1, arbitrary: fc.constantFrom(0.30000000000000004, 9007199254740991, 1e300, -0, 5e-324, -1.5e-7) },
);
const jsonObject = fc.dictionary(objectKey, jsonValue, { maxKeys: 5 });
const contextArb = fc.record(
  {
    conversationState: jsonObject,
    interruptedQueries: fc.array(fc.string({ unit: fc.oneof(anyCodePoint, loneSurrogate), maxLength: 30 }), {
      maxLength: 4,
    }),
    recentInteractions: fc.array(jsonObject, { maxLength: 3 }),
    userPreferences: jsonObject,
  },
  { requiredKeys: [] },
);

type Context = {
  conversationState?: Record<string, unknown>;
  interruptedQueries?: string[];
  recentInteractions?: Record<string, unknown>[];
  userPreferences?: Record<string, unknown>;
};
type Fields = Required<Context>;

/** What JSON makes of a value (`-0` becomes `0`): what the contract promises comes back. */
const viaJson = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const bytesOf = (fields: Fields) => Buffer.byteLength(JSON.stringify(fields));

describe("fuzz: bad and random input over HTTP never crashes the server, is refused with a clear code and writes nothing", () => {
  let redis: RedisProcess;
  let server: ServerProcess;
  /** Sessions accepted per tenant, to compare with what Redis holds. */
  const accepted = new Map<string, { userId: string; sessionId: string }[]>();

  beforeAll(async () => {
    redis = await startRedis();
    server = await startServerProcess({ REDIS_URL: redis.url, MAX_CONTEXT_BYTES: String(MAX_CONTEXT_BYTES) });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await redis?.stop();
    removeBuild();
  });

  async function post(body: unknown, headers: Record<string, string>): Promise<GraphQLResponse> {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: GraphQLResponse["body"];
    try {
      parsed = JSON.parse(text) as GraphQLResponse["body"];
    } catch {
      throw new Error(`HTTP ${response.status} answered with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    return { status: response.status, headers: response.headers, body: parsed };
  }

  /** A refused request: only errors, each with a clear code, and never a server error status. */
  function expectRejected(response: GraphQLResponse, codes?: readonly string[]): void {
    const errors = response.body.errors ?? [];
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) {
      const code = String(error.extensions?.code);
      expect(REJECTION_CODES.has(code) ? code : `unexpected code ${code}: ${error.message}`).toBe(code);
      if (codes) expect(codes).toContain(code);
    }
    expect(response.status).toBeLessThan(500);
  }

  /** Every key under the tenant's prefix, found with SCAN. */
  async function keysOf(tenantId: string): Promise<string[]> {
    const pattern = `${tenantPrefix(tenantId).replace(/[*?[\]\\]/g, "\\$&")}*`;
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await redis.admin.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== "0");
    return found.sort();
  }

  /**
   * The keys accepted writes leave: each session, its change log and its user's two indexes, the tenant's indexes
   * and settings.
   */
  function expectedKeys(tenantId: string): string[] {
    const sessions = accepted.get(tenantId) ?? [];
    if (sessions.length === 0) return [];
    const keys = new Set([activityIndexKey(tenantId), expiryIndexKey(tenantId), settingsKey(tenantId)]);
    for (const { userId, sessionId } of sessions) {
      keys.add(sessionKey(tenantId, userId, sessionId));
      keys.add(historyKey(tenantId, userId, sessionId));
      keys.add(userIndexKey(tenantId, userId));
      keys.add(userExpiryKey(tenantId, userId));
    }
    return [...keys].sort();
  }

  async function expectAlive(): Promise<void> {
    const live = await fetch(`${server.url}/health/live`);
    await live.arrayBuffer();
    expect(live.status).toBe(200);
  }

  it("random ids (control characters, lone surrogates, key and glob characters, huge, unicode): valid ones round-trip, the rest are BAD_USER_INPUT", async () => {
    const tenant = freshTenant("fuzz-ids");
    const service = gatewayHeaders(tenant, "svc", ["service"]);
    await fc.assert(
      fc.asyncProperty(idArb, idArb, async (sessionId, userId) => {
        const input = { sessionId, userId, conversationState: { sessionId, userId } };
        const stored = await post({ query: STORE, variables: { input } }, service);
        if (validId(sessionId) && validId(userId)) {
          expect(stored.body.errors).toBeUndefined();
          expect(stored.body.data).toMatchObject({
            storeSessionContext: { sessionId, userId, conversationState: { sessionId, userId } },
          });
          const read = await post({ query: READ, variables: { sessionId, userId } }, service);
          expect(read.body.data).toMatchObject({
            sessionContext: { sessionId, userId, conversationState: { sessionId, userId } },
          });
          accepted.set(tenant, [...(accepted.get(tenant) ?? []), { userId, sessionId }]);
        } else {
          expectRejected(stored, ["BAD_USER_INPUT"]);
          const fields = stored.body.errors!.map((error) => error.extensions?.field);
          expect(fields.every((field) => field === "input.sessionId" || field === "input.userId")).toBe(true);
          const read = await post({ query: READ, variables: { sessionId, userId } }, service);
          expectRejected(read, ["BAD_USER_INPUT"]);
        }
      }),
      options,
    );
    // Exactly the accepted sessions are in Redis, each under its own key: no rejected id left a key, and no two
    // different ids shared one.
    expect(await keysOf(tenant)).toEqual(expectedKeys(tenant));
    await expectAlive();
  }, 60_000);

  it("random JSON contexts of random sizes: a store then a merge either round-trip exactly or are BAD_USER_INPUT and change nothing", async () => {
    const tenant = freshTenant("fuzz-json");
    const alice = gatewayHeaders(tenant, "alice");
    let n = 0;
    await fc.assert(
      fc.asyncProperty(contextArb, contextArb, async (first: Context, patch: Context) => {
        const sessionId = `s${n++}`;
        const afterStore: Fields = viaJson({
          conversationState: first.conversationState ?? {},
          interruptedQueries: first.interruptedQueries ?? [],
          recentInteractions: first.recentInteractions ?? [],
          userPreferences: first.userPreferences ?? {},
        });
        const stored = await post({ query: STORE, variables: { input: { sessionId, ...first } } }, alice);
        if (bytesOf(afterStore) > MAX_CONTEXT_BYTES) {
          expectRejected(stored, ["BAD_USER_INPUT"]);
          expect(stored.body.errors![0].extensions?.field).toBe("input");
          expect(await redis.admin.exists(sessionKey(tenant, "alice", sessionId))).toBe(0);
          return;
        }
        expect(stored.body.errors).toBeUndefined();
        expect(stored.body.data).toEqual({ storeSessionContext: expect.objectContaining(afterStore) });
        accepted.set(tenant, [...(accepted.get(tenant) ?? []), { userId: "alice", sessionId }]);

        const p = viaJson(patch);
        const afterMerge: Fields = {
          conversationState: { ...afterStore.conversationState, ...p.conversationState },
          interruptedQueries: [...afterStore.interruptedQueries, ...(p.interruptedQueries ?? [])],
          recentInteractions: [...afterStore.recentInteractions, ...(p.recentInteractions ?? [])],
          userPreferences: { ...afterStore.userPreferences, ...p.userPreferences },
        };
        const before = await redis.admin.get(sessionKey(tenant, "alice", sessionId));
        const merged = await post({ query: MERGE, variables: { input: { sessionId, ...patch } } }, alice);
        const read = await post({ query: READ, variables: { sessionId } }, alice);
        if (bytesOf(afterMerge) > MAX_CONTEXT_BYTES) {
          expectRejected(merged, ["BAD_USER_INPUT"]);
          expect(await redis.admin.get(sessionKey(tenant, "alice", sessionId))).toBe(before);
          expect(read.body.data).toEqual({ sessionContext: expect.objectContaining({ ...afterStore, version: 1 }) });
        } else {
          expect(merged.body.errors).toBeUndefined();
          expect(merged.body.data).toEqual({ mergeSessionContext: expect.objectContaining(afterMerge) });
          expect(read.body.data).toEqual({ sessionContext: expect.objectContaining({ ...afterMerge, version: 2 }) });
        }
      }),
      options,
    );
    expect(await keysOf(tenant)).toEqual(expectedKeys(tenant));
    await expectAlive();
  }, 60_000);

  // Values of the wrong type for each input field, sent as variables (graphql-js refuses them: BAD_USER_INPUT).
  const notAnInteger = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x));
  const notAString = fc.oneof(fc.boolean(), fc.integer(), notAnInteger, fc.object({ maxDepth: 1 }));
  const notAnId = fc.oneof(
    fc.boolean(),
    notAnInteger,
    fc.object({ maxDepth: 1 }),
    fc.array(fc.string(), { minLength: 2 }),
  );
  const notAnObject = fc.oneof(fc.boolean(), fc.integer(), fc.string(), fc.array(fc.jsonValue({ maxDepth: 1 })));
  const notAnInt = fc.oneof(
    fc.string(),
    fc.boolean(),
    notAnInteger,
    fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 1e20),
    fc.object({ maxDepth: 1 }),
  );
  // A single value is coerced to a list of one, so only wrong items (or a wrong single value) are wrong here.
  const wrongByField: Record<string, fc.Arbitrary<unknown>> = {
    sessionId: fc.oneof(fc.constant(null), notAnId),
    userId: notAnId,
    conversationState: notAnObject,
    userPreferences: notAnObject,
    interruptedQueries: fc.oneof(notAString, fc.array(fc.oneof(notAString, fc.constant(null)), { minLength: 1 })),
    recentInteractions: fc.oneof(
      fc.boolean(),
      fc.integer(),
      fc.string(),
      fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.integer())), { minLength: 1 }),
    ),
    ttlSeconds: notAnInt,
    expectedVersion: notAnInt,
    unknownField: fc.jsonValue({ maxDepth: 1 }),
  };

  it("a value of the wrong type in any input field, in a variable, is BAD_USER_INPUT naming the input and writes nothing", async () => {
    const tenant = freshTenant("fuzz-types");
    const alice = gatewayHeaders(tenant, "alice");
    const wrongInput = fc.oneof(
      ...Object.entries(wrongByField).map(([field, wrong]) =>
        wrong.map((value) => ({ field, input: { sessionId: "s1", [field]: value } })),
      ),
      fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.array(fc.integer())).map((input) => ({
        field: "input",
        input,
      })),
    );
    await fc.assert(
      fc.asyncProperty(wrongInput, fc.constantFrom(STORE, MERGE), async ({ field, input }, query) => {
        const response = await post({ query, variables: { input } }, alice);
        expectRejected(response, ["BAD_USER_INPUT"]);
        expect(response.body.data).toBeUndefined();
        expect(response.body.errors![0].message).toContain(field === "unknownField" ? "unknownField" : "input");
      }),
      options,
    );
    expect(await keysOf(tenant)).toEqual([]);
    await expectAlive();
  }, 60_000);

  it("wrong literals written inline are GRAPHQL_VALIDATION_FAILED; random documents and bodies get a clear code", async () => {
    const tenant = freshTenant("fuzz-docs");
    const alice = gatewayHeaders(tenant, "alice");
    const literal = fc.constantFrom(
      "true",
      "1.5",
      "null",
      '"text"',
      "[1, 2]",
      "{ a: 1 }",
      "ENUM",
      "2147483648",
      "-1e3",
    );
    const field = fc.constantFrom(...Object.keys(wrongByField));
    const inline = fc.tuple(field, literal, fc.constantFrom("storeSessionContext", "mergeSessionContext"));
    await fc.assert(
      fc.asyncProperty(inline, async ([name, value, mutation]) => {
        const input = name === "sessionId" ? `{ sessionId: ${value} }` : `{ sessionId: "s1", ${name}: ${value} }`;
        const response = await post({ query: `mutation { ${mutation}(input: ${input}) { version } }` }, alice);
        if (response.body.errors === undefined) {
          // Literals a field's type does accept: a string id, an object where a list of objects goes, …
          expect(response.body.data).toMatchObject({ [mutation]: { version: expect.any(Number) } });
          await redis.admin.del(...(await keysOf(tenant)));
          return;
        }
        expectRejected(response, ["GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "FORBIDDEN"]);
      }),
      options,
    );
    const body = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.string(),
      fc.record(
        {
          query: fc.oneof(fc.string(), fc.constant(`{ sessionContext(sessionId: "s1") { ${SESSION_FIELDS} } }`)),
          variables: fc.jsonValue({ maxDepth: 2 }),
          operationName: fc.jsonValue({ maxDepth: 1 }),
        },
        { requiredKeys: ["query"] },
      ),
      fc
        .string()
        .map((garbage) => `mutation { storeSessionContext(input: { sessionId: "s1" }) ${garbage} }`)
        .map((query) => ({ query })),
    );
    await fc.assert(
      fc.asyncProperty(body, async (random) => {
        const response = await post(typeof random === "string" ? random : JSON.stringify(random), alice);
        if (response.body.errors !== undefined) expectRejected(response);
        else expect(response.status).toBe(200);
      }),
      options,
    );
    await expectAlive();
    expect(server.lines.filter((line) => line.msg === "internal error")).toEqual([]);
  }, 60_000);
});
