import { buildSubgraphSchema } from "@apollo/subgraph";
import { printSchemaWithDirectives } from "@graphql-tools/utils";
import { parse, type GraphQLSchema } from "graphql";
import { DateTimeResolver } from "graphql-scalars";
import { buildSchema, createResolversMap, getMetadataStorage, type AuthCheckerFn, type PubSub } from "type-graphql";
import type { RequestContext } from "./context/request-context";
import { entriesOf } from "./execution/json-text";
import { OrphanCleanupResolver } from "./cleanup/orphan-cleanup.resolver";
import { ForbiddenError } from "./errors/errors";
import { SessionHistoryResolver } from "./history/session-history.resolver";
import { LiveUpdatesResolver, sessionEventOf } from "./live/live-updates.resolver";
import { SessionContextEvent } from "./live/session-events.type";
import { SessionContextResolver } from "./sessions/session-context.resolver";
import { SessionContext } from "./sessions/session-context.type";
import { SessionListResolver } from "./sessions/session-list.resolver";
import type { Backend } from "./store/backend";
import type { SettingsBounds } from "./tenants/tenant-settings";
import { TenantSettingsResolver } from "./tenants/tenant-settings.resolver";
import type { SessionRecord } from "./sessions/session-record";
import type { SessionService } from "./sessions/session.service";

export interface SchemaDeps {
  sessionService: SessionService;
  backend: Backend;
  settingsBounds: SettingsBounds;
}

const FEDERATION_LINK = `
  extend schema
    @link(url: "https://specs.apollo.dev/federation/v2.4", import: ["@key"])
`;

/**
 * Builds the executable Federation 2 subgraph schema from the type-graphql classes.
 *
 * type-graphql builds the types and resolvers; @apollo/subgraph adds `_service` and `_entities`. The reference
 * resolver added here is outside type-graphql (no authChecker, middlewares or argument validation apply to it),
 * so it goes through SessionService.read: the same id validation, tenant and role checks as `sessionContext`.
 */
export async function buildSessionSchema(deps: SchemaDeps): Promise<GraphQLSchema> {
  const resolvers = new Map<unknown, unknown>([
    [SessionContextResolver, new SessionContextResolver(deps.sessionService)],
    [SessionListResolver, new SessionListResolver(deps.sessionService)],
    [SessionHistoryResolver, new SessionHistoryResolver(deps.sessionService)],
    [TenantSettingsResolver, new TenantSettingsResolver(deps.backend.settings, deps.settingsBounds)],
    [OrphanCleanupResolver, new OrphanCleanupResolver(deps.backend.settings, deps.settingsBounds.maxTtlSeconds)],
    [LiveUpdatesResolver, new LiveUpdatesResolver()],
  ]);
  const schema = await buildSchema({
    resolvers: [
      SessionContextResolver,
      SessionListResolver,
      SessionHistoryResolver,
      TenantSettingsResolver,
      OrphanCleanupResolver,
      LiveUpdatesResolver,
    ],
    pubSub: NO_TOPICS,
    container: { get: (someClass) => resolvers.get(someClass) },
    scalarsMap: [{ type: Date, scalar: DateTimeResolver }],
    authChecker: roleChecker,
    validate: false,
  });

  const resolverMap = createResolversMap(schema) as Record<string, Record<string, unknown>>;
  assertPlainFields(SessionContext);
  resolverMap.SessionContext = {
    // Not type-graphql's resolvers for the other fields: each reads the record's property through a wrapper (an
    // object and a middleware dispatch per field per session) that graphql-jit must call, where without a resolver
    // it reads the property inline. assertPlainFields keeps that safe: no field of the type has roles or middleware.
    ...storedContextResolvers,
    // async: a refused representation must reject its own promise (an error at `_entities.<i>`, that entry null),
    // not throw synchronously out of @apollo/subgraph's map, which would fail every entity of the request.
    __resolveReference: async (
      representation: Record<string, unknown>,
      ctx: RequestContext,
    ): Promise<SessionRecord | null> =>
      deps.sessionService.read(ctx, representation.sessionId, representation.userId, "representations."),
  };

  // Live events: the same for the event type and the subscription's own resolver, run once per event (shared by the
  // subscribers of a change: live-subscribe.ts). type-graphql's wrappers converted the event into an instance of the
  // type class on every field, and the arguments into an instance of their class on every event — about a tenth
  // of the server's CPU for a merge with one subscriber.
  assertPlainFields(SessionContextEvent);
  assertPlainSubscription("sessionContextChanged");
  resolverMap.SessionContextEvent = {};
  resolverMap.Subscription = {
    ...resolverMap.Subscription,
    sessionContextChanged: {
      ...(resolverMap.Subscription.sessionContextChanged as object),
      resolve: sessionEventOf,
    },
  };

  return buildSubgraphSchema([
    { typeDefs: parse(FEDERATION_LINK + printSchemaWithDirectives(schema)), resolvers: resolverMap as never },
  ]);
}

/** Throws unless no field of `type` has `@Authorized` roles or middlewares (which a field resolver would apply). */
function assertPlainFields(type: abstract new () => unknown): void {
  const guarded = getMetadataStorage().fields.filter(
    (field) => field.target === type && ((field.roles?.length ?? 0) > 0 || (field.middlewares?.length ?? 0) > 0),
  );
  if (guarded.length > 0)
    throw new Error(`${type.name}.${guarded[0].name} has roles or middleware: schema.ts drops its field resolvers`);
}

/** Throws unless the subscription `name` has no `@Authorized` roles or middlewares (its own resolver would apply them). */
function assertPlainSubscription(name: string): void {
  const subscription = getMetadataStorage().subscriptions.find((s) => s.methodName === name);
  if (subscription === undefined) throw new Error(`no subscription ${name}`);
  if ((subscription.roles?.length ?? 0) > 0 || (subscription.middlewares?.length ?? 0) > 0)
    throw new Error(`Subscription.${name} has roles or middleware: schema.ts replaces its resolver`);
}

/**
 * The context fields of SessionContext, copied from the stored document into answers written by writeJsonAnswer
 * (HTTP), parsed values elsewhere (subscriptions). Plain functions on the resolver map rather than type-graphql field
 * resolvers: those convert each record into an instance of the type class first, on every field.
 */
const storedContextResolvers = {
  conversationState: (record: SessionRecord, _args: unknown, ctx: RequestContext) =>
    ctx.answerWritesJsonText && record.stored ? record.stored.conversationState : record.conversationState,
  recentInteractions: (record: SessionRecord, _args: unknown, ctx: RequestContext) =>
    ctx.answerWritesJsonText && record.stored
      ? [entriesOf(record.stored.recentInteractions)]
      : record.recentInteractions,
  userPreferences: (record: SessionRecord, _args: unknown, ctx: RequestContext) =>
    ctx.answerWritesJsonText && record.stored ? record.stored.userPreferences : record.userPreferences,
};

/**
 * `@Authorized("service")` passes for service and admin, `@Authorized("admin")` for admin only. A caller without
 * the role gets FORBIDDEN (our error, so the code is the contract's). An arrow function on purpose: type-graphql
 * treats anything with a prototype as an auth-checker class to instantiate.
 */
const roleChecker: AuthCheckerFn<RequestContext> = ({ context }, roles) => {
  for (const role of roles) {
    if (role !== "service" && role !== "admin") throw new Error(`unknown role in @Authorized: ${role}`);
    if (!context.caller.hasRole(role)) throw new ForbiddenError(`this operation needs the ${role} role`);
  }
  return true;
};

/**
 * type-graphql insists on a PubSub once a schema has subscriptions, even when each one brings its own `subscribe`
 * (ours open streams on the store's change feed: src/live). Nothing publishes to or subscribes through topics.
 */
const NO_TOPICS: PubSub = {
  publish() {
    throw new Error("live updates have no topics: the stores announce changes (src/live)");
  },
  subscribe() {
    throw new Error("live updates have no topics: every subscription field has its own subscribe");
  },
};
