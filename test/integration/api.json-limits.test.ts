import fc from "fast-check";
import { MAX_JSON_DEPTH, MAX_LIST_ENTRIES, MAX_OBJECT_KEYS } from "../../src/sessions/json-limits";
import { MERGE, READ, STORE } from "../helpers/api";
import {
  freshTenant,
  gatewayHeaders,
  type GraphQLResponse,
  type TestServer,
  ON_EACH_STORE,
  useServerOnStore,
} from "../helpers/test-server";

/**
 * JSON that breaks the runtime rather than the rules — nesting thousands of levels deep, numbers a double cannot
 * hold — is refused like any other bad input: BAD_USER_INPUT naming the field, checked before any work, nothing
 * written. Whatever fits the limits round-trips exactly. On Redis and on the embedded store alike.
 */

/** An object of `n` keys. */
function keys(n: number): Record<string, number> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
}

/** JSON text of `levels` nested objects, `{"a":{"a":…{"leaf":true}}}`: made as text, for JSON.stringify itself overflows. */
function nestedObjects(levels: number): string {
  return `${'{"a":'.repeat(levels - 1)}{"leaf":true}${"}".repeat(levels - 1)}`;
}

/** JSON text of an object whose one key holds `levels - 1` nested arrays (one level: a plain value). */
function nestedArrays(levels: number): string {
  return `{"list":${levels === 1 ? "true" : `${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}`}}`;
}

describe.each(ON_EACH_STORE)("JSON limits, on %s", (_name, onRedis) => {
  let server: TestServer;
  useServerOnStore(onRedis, (started) => ({ server } = started));

  /** Sends `query` with an input whose context fields are given as JSON text (`{"conversationState":…}`). */
  const write = async (tenant: string, query: string, fieldsJson: string) => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...gatewayHeaders(tenant, "u1") },
      body: `{"query":${JSON.stringify(query)},"variables":{"input":{"sessionId":"s1",${fieldsJson.slice(1)}}}`,
    });
    return { status: response.status, body: (await response.json()) as GraphQLResponse["body"] };
  };
  const read = async (tenant: string) =>
    (
      await server.post<{ sessionContext: unknown }>(
        { query: READ, variables: { sessionId: "s1" } },
        gatewayHeaders(tenant, "u1"),
      )
    ).body.data?.sessionContext;
  const errorsOf = (response: { body: GraphQLResponse["body"] }) =>
    (response.body.errors ?? []).map((e) => [e.extensions?.code, e.extensions?.field]);

  it.each([
    ["conversationState", `{"conversationState":${nestedObjects(5000)}}`, "input.conversationState"],
    ["userPreferences", `{"userPreferences":${nestedArrays(MAX_JSON_DEPTH + 1)}}`, "input.userPreferences"],
    [
      "a recent interaction",
      `{"recentInteractions":[{},${nestedObjects(MAX_JSON_DEPTH + 1)}]}`,
      "input.recentInteractions.1",
    ],
  ])("refuses %s nested deeper than the limit, naming it, and writes nothing", async (_field, fieldsJson, field) => {
    const tenant = freshTenant();
    for (const query of [STORE, MERGE]) {
      const response = await write(tenant, query, fieldsJson);

      expect(response.status).toBe(200);
      expect(errorsOf(response)).toEqual([["BAD_USER_INPUT", field]]);
      expect(response.body.errors?.[0].message).toContain(`${MAX_JSON_DEPTH} levels`);
    }
    expect(await read(tenant)).toBeNull();
  });

  it.each([
    [
      "conversationState",
      () => `{"conversationState":${JSON.stringify(keys(MAX_OBJECT_KEYS + 1))}}`,
      "input.conversationState",
      "500 top-level keys",
    ],
    [
      "userPreferences",
      () => `{"userPreferences":${JSON.stringify(keys(MAX_OBJECT_KEYS + 1))}}`,
      "input.userPreferences",
      "500 top-level keys",
    ],
    [
      "interruptedQueries",
      () => `{"interruptedQueries":${JSON.stringify(Array.from({ length: MAX_LIST_ENTRIES + 1 }, () => "q"))}}`,
      "input.interruptedQueries",
      "1000 entries",
    ],
    [
      "recentInteractions",
      () => `{"recentInteractions":${JSON.stringify(Array.from({ length: MAX_LIST_ENTRIES + 1 }, () => ({})))}}`,
      "input.recentInteractions",
      "1000 entries",
    ],
  ])(
    "refuses %s over its size in keys or entries (the write's Redis time), naming it, and writes nothing",
    async (_field, fieldsJson, field, limit) => {
      const tenant = freshTenant();
      for (const query of [STORE, MERGE]) {
        const response = await write(tenant, query, fieldsJson());

        expect(errorsOf(response)).toEqual([["BAD_USER_INPUT", field]]);
        expect(response.body.errors?.[0].message).toContain(limit);
      }
      expect(await read(tenant)).toBeNull();
    },
  );

  it("keeps a context nested exactly as deep as the limit, exactly", async () => {
    const tenant = freshTenant();
    const deepest = `{"conversationState":${nestedObjects(MAX_JSON_DEPTH)},"userPreferences":${nestedArrays(MAX_JSON_DEPTH)}}`;

    const response = await write(tenant, STORE, deepest);

    expect(response.body.errors).toBeUndefined();
    expect(await read(tenant)).toMatchObject(JSON.parse(deepest));
  });

  it("refuses a number a double cannot hold (1e400 arrives as Infinity), instead of storing null", async () => {
    const tenant = freshTenant();

    const response = await write(tenant, MERGE, `{"conversationState":{"big":1e400}}`);

    expect(errorsOf(response)).toEqual([["BAD_USER_INPUT", "input.conversationState"]]);
    expect(await read(tenant)).toBeNull();
  });

  it("answers any nesting, of objects and arrays, with a stored context or BAD_USER_INPUT: never an internal error", async () => {
    const shape = fc.record({
      levels: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 200, max: 6000 })),
      arrays: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(shape, async ({ levels, arrays }) => {
        const tenant = freshTenant();
        const nested = arrays ? nestedArrays(levels) : nestedObjects(levels);

        const response = await write(tenant, MERGE, `{"conversationState":${nested}}`);

        if (levels <= MAX_JSON_DEPTH) {
          expect(response.body.errors).toBeUndefined();
          expect(await read(tenant)).toMatchObject({ conversationState: JSON.parse(nested) });
        } else {
          expect(errorsOf(response)).toEqual([["BAD_USER_INPUT", "input.conversationState"]]);
          expect(await read(tenant)).toBeNull();
        }
      }),
      { numRuns: 40 },
    );
  });
});
