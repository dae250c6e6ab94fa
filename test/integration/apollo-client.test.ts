import { ApolloClient, CombinedGraphQLErrors, gql, HttpLink } from "@apollo/client";
import { createSessionCache } from "../../examples/apollo-client/session-cache";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

/**
 * The README's client setup, with the real @apollo/client against a real server: what a frontend developer sees.
 */

const SESSION = gql`
  query Session($sessionId: ID!) {
    sessionContext(sessionId: $sessionId) {
      id
      userId
      sessionId
      version
      conversationState
    }
  }
`;
const MERGE = gql`
  mutation Merge($input: SessionContextInput!) {
    mergeSessionContext(input: $input) {
      id
      userId
      sessionId
      version
      conversationState
    }
  }
`;
const USER_SESSIONS = gql`
  query UserSessions($first: Int, $after: String) {
    userSessions(first: $first, after: $after) {
      edges {
        cursor
        node {
          id
          userId
          sessionId
          version
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
      totalCount
    }
  }
`;

const HISTORY = gql`
  query History($sessionId: ID!) {
    sessionContextHistory(sessionId: $sessionId) {
      edges {
        node {
          __typename
          id
          version
          context {
            conversationState
          }
        }
      }
    }
  }
`;
interface HistoryData {
  sessionContextHistory: {
    edges: { node: { __typename: string; id: string; version: number; context: { conversationState: unknown } } }[];
  };
}

interface SessionData {
  sessionContext: { userId: string; sessionId: string; version: number; conversationState: unknown } | null;
}
interface UserSessionsData {
  userSessions: {
    edges: { node: { sessionId: string } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

describe("Apollo Client with the README's cache setup", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  /** A client for one user of a fresh tenant; `sent` lists the operation names it sent over the network. */
  const clientFor = (userId = "u1") => {
    const sent: string[] = [];
    const client = new ApolloClient({
      link: new HttpLink({
        uri: `${server.url}/graphql`,
        headers: gatewayHeaders(freshTenant(), userId),
        fetch: (input, init) => {
          sent.push(JSON.parse(String(init?.body)).operationName);
          return fetch(input, init);
        },
      }),
      cache: createSessionCache(userId),
    });
    return { client, sent };
  };

  it("shows a session that a query read as null once a merge creates it, without a refetch", async () => {
    const { client, sent } = clientFor();
    const first = await client.query<SessionData>({ query: SESSION, variables: { sessionId: "s1" } });
    const seen: SessionData["sessionContext"][] = [];
    const created = new Promise<void>((resolve) => {
      client.watchQuery<SessionData>({ query: SESSION, variables: { sessionId: "s1" } }).subscribe((result) => {
        if (result.dataState !== "complete") return;
        seen.push(result.data.sessionContext);
        if (result.data.sessionContext !== null) resolve();
      });
    });

    await client.mutate({ mutation: MERGE, variables: { input: { sessionId: "s1", conversationState: { step: 1 } } } });
    await created;

    expect(first.data?.sessionContext).toBeNull();
    expect(seen[0]).toBeNull(); // the watch starts from the cached null
    expect(seen.at(-1)).toMatchObject({ userId: "u1", sessionId: "s1", version: 1, conversationState: { step: 1 } });
    expect(sent).toEqual(["Session", "Merge"]); // no refetch
  });

  it("keeps one cached session per (user, session): a merge's answer updates the query that shows it", async () => {
    const { client } = clientFor();
    await client.mutate({ mutation: MERGE, variables: { input: { sessionId: "s2", conversationState: { a: 1 } } } });
    const first = await client.query<SessionData>({ query: SESSION, variables: { sessionId: "s2" } });

    await client.mutate({ mutation: MERGE, variables: { input: { sessionId: "s2", conversationState: { b: 2 } } } });
    const cached = client.readQuery<SessionData>({ query: SESSION, variables: { sessionId: "s2" } });

    expect(first.data?.sessionContext?.version).toBe(1);
    expect(cached?.sessionContext).toMatchObject({ version: 2, conversationState: { a: 1, b: 2 } });
  });

  it("pages userSessions with relayStylePagination: fetchMore appends the next page", async () => {
    const { client } = clientFor();
    for (const sessionId of ["p1", "p2", "p3", "p4", "p5"]) {
      await client.mutate({ mutation: MERGE, variables: { input: { sessionId } } });
    }
    const watching = client.watchQuery<UserSessionsData>({ query: USER_SESSIONS, variables: { first: 2 } });
    let result = await watching.refetch();

    while (result.data?.userSessions.pageInfo.hasNextPage) {
      result = await watching.fetchMore({ variables: { after: result.data.userSessions.pageInfo.endCursor } });
    }
    const list = client.readQuery<UserSessionsData>({ query: USER_SESSIONS, variables: { first: 2 } });

    expect(list?.userSessions.edges.map((edge) => edge.node.sessionId)).toEqual(["p5", "p4", "p3", "p2", "p1"]);
    expect(list?.userSessions.pageInfo.hasNextPage).toBe(false);
  });

  it("keeps old states out of the current session: history's snapshots never overwrite the cached SessionContext", async () => {
    const { client } = clientFor();
    await client.mutate({ mutation: MERGE, variables: { input: { sessionId: "h1", conversationState: { step: 1 } } } });
    await client.mutate({ mutation: MERGE, variables: { input: { sessionId: "h1", conversationState: { step: 2 } } } });
    await client.query<SessionData>({ query: SESSION, variables: { sessionId: "h1" } });

    const history = await client.query<HistoryData>({ query: HISTORY, variables: { sessionId: "h1" } });
    const current = client.readQuery<SessionData>({ query: SESSION, variables: { sessionId: "h1" } });

    const versions = history.data!.sessionContextHistory.edges.map((edge) => edge.node);
    expect(versions.map((v) => [v.version, v.context.conversationState])).toEqual([
      [2, { step: 2 }],
      [1, { step: 1 }],
    ]);
    expect(current?.sessionContext).toMatchObject({ version: 2, conversationState: { step: 2 } });
    // Each version is an entity of its own, by its id.
    expect(client.cache.identify(versions[1])).toBe(`SessionContextVersion:${versions[1].id}`);
  });

  it("reports the service's error codes as CombinedGraphQLErrors", async () => {
    const { client } = clientFor();

    const refused = await client
      .mutate({ mutation: MERGE, variables: { input: { sessionId: "s1", ttlSeconds: 0 } } })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    const forbidden = await client
      .query({
        query: gql`
          query Other {
            sessionContext(sessionId: "s1", userId: "someone-else") {
              id
              userId
              sessionId
            }
          }
        `,
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );

    for (const [error, code] of [
      [refused, "BAD_USER_INPUT"],
      [forbidden, "FORBIDDEN"],
    ] as const) {
      expect(CombinedGraphQLErrors.is(error)).toBe(true);
      expect((error as CombinedGraphQLErrors).errors.map((e) => e.extensions?.code)).toEqual([code]);
    }
  });
});
