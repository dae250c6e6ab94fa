import { buildSubgraphSchema } from "@apollo/subgraph";
import { printSchemaWithDirectives } from "@graphql-tools/utils";
import { parse, type GraphQLSchema } from "graphql";
import { DateTimeResolver } from "graphql-scalars";
import { buildSchema, createResolversMap } from "type-graphql";
import type { RequestContext } from "./context/request-context";
import { SessionContextResolver } from "./sessions/session-context.resolver";
import type { SessionRecord } from "./sessions/session-record";
import type { SessionService } from "./sessions/session.service";

export interface SchemaDeps {
  sessions: SessionService;
}

const FEDERATION_LINK = `
  extend schema
    @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
`;

/**
 * Builds the executable Federation 2 subgraph schema from the type-graphql classes.
 *
 * type-graphql builds the types and resolvers; @apollo/subgraph adds `_service` and `_entities`. The reference
 * resolver added here is outside type-graphql (no authChecker, middlewares or argument validation apply to it),
 * so it goes through SessionService.read: the same id validation, tenant and role checks as `sessionContext`.
 */
export async function buildSessionSchema(deps: SchemaDeps): Promise<GraphQLSchema> {
  const resolvers = new Map<unknown, unknown>([[SessionContextResolver, new SessionContextResolver(deps.sessions)]]);
  const schema = await buildSchema({
    resolvers: [SessionContextResolver],
    container: { get: (someClass) => resolvers.get(someClass) },
    scalarsMap: [{ type: Date, scalar: DateTimeResolver }],
    validate: false,
  });

  const resolverMap = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  resolverMap.SessionContext = {
    ...resolverMap.SessionContext,
    // async: a refused representation must reject its own promise (an error at `_entities.<i>`, that entry null),
    // not throw synchronously out of @apollo/subgraph's map, which would fail every entity of the request.
    __resolveReference: async (
      representation: Record<string, unknown>,
      ctx: RequestContext,
    ): Promise<SessionRecord | null> =>
      deps.sessions.read(ctx, representation.sessionId, representation.userId, "representations."),
  };

  return buildSubgraphSchema([
    { typeDefs: parse(FEDERATION_LINK + printSchemaWithDirectives(schema)), resolvers: resolverMap as never },
  ]);
}
