import { type GraphQLObjectType, GraphQLString, parse, type GraphQLSchema } from "graphql";
import { buildSessionSchema } from "../../src/schema";
import { SessionService } from "../../src/sessions/session.service";
import { createMemoryBackend } from "../../src/store/backend";
import { SHARED_FIELDS, SharingPlans } from "../../src/live/sharing-plan";

/**
 * Which subscriptions may share an event's execution: only selections of fields that read their parent value alone
 * (SHARED_FIELDS), keyed by document, operation and the variables the answer depends on.
 */

let schema: GraphQLSchema;
beforeAll(async () => {
  const backend = createMemoryBackend();
  schema = await buildSessionSchema({
    sessionService: new SessionService({ maxTtlSeconds: 1, maxContextBytes: 1 }),
    backend,
    settingsBounds: { maxTtlSeconds: 1, cleanupMinIntervalSeconds: 1 },
  });
  await backend.sessions.close();
});

const FOLLOW = `subscription Follow($sessionId: ID!, $afterVersion: Int, $userId: ID) {
  sessionContextChanged(sessionId: $sessionId, afterVersion: $afterVersion, userId: $userId) {
    __typename version ...Ctx
  }
}
fragment Ctx on SessionContextEvent { context { version conversationState } }`;

describe("SHARED_FIELDS", () => {
  it("names every field of the event and context types: a new one needs a decision whether it may be shared", () => {
    const fields = ["SessionContextEvent", "SessionContext"].flatMap((name) => {
      const type = schema.getType(name) as GraphQLObjectType;
      return Object.keys(type.getFields()).map((field) => `${name}.${field}`);
    });
    expect([...SHARED_FIELDS].sort()).toEqual(fields.sort());
  });
});

describe("SharingPlans", () => {
  it("gives one key to subscriptions that differ only in the root field's arguments", () => {
    const plans = new SharingPlans(schema);
    const plan = plans.planOf(parse(FOLLOW), undefined)!;
    expect(plan.rootField).toBe("sessionContextChanged");
    const one = plan.sharingKey({ sessionId: "s1", afterVersion: 3 });
    expect(one).toBeDefined();
    expect(plan.sharingKey({ sessionId: "s2", userId: "bob" })).toBe(one);
  });

  it("keys on the variables used below the root field and in directives, and on the document and operation", () => {
    const plans = new SharingPlans(schema);
    const text = `subscription A($s: ID!, $with: Boolean!, $skip: Boolean = false) {
      sessionContextChanged(sessionId: $s) @skip(if: $skip) { version context @include(if: $with) { version } }
    }
    subscription B($s: ID!) { sessionContextChanged(sessionId: $s) { version } }`;
    const document = parse(text);
    const a = plans.planOf(document, "A")!;
    expect(a.sharingKey({ s: "s1", with: true })).toBe(a.sharingKey({ s: "s2", with: true }));
    expect(a.sharingKey({ s: "s1", with: true })).not.toBe(a.sharingKey({ s: "s1", with: false }));
    expect(a.sharingKey({ s: "s1", with: true })).not.toBe(a.sharingKey({ s: "s1", with: true, skip: true }));
    const b = plans.planOf(document, "B")!;
    expect(b.sharingKey({ s: "s1" })).not.toBe(a.sharingKey({ s: "s1" }));
    // The same text parsed again is another document: not the same key (the transports share one parsed copy).
    expect(plans.planOf(parse(text), "B")!.sharingKey({ s: "s1" })).not.toBe(b.sharingKey({ s: "s1" }));
  });

  it("does not share a selection that reaches a field outside SHARED_FIELDS", () => {
    // The real schema has none yet: add one, as a field resolver that depends on who asks would be.
    const event = schema.getType("SessionContextEvent") as GraphQLObjectType;
    const fields = event.getFields();
    fields.seenBy = { ...fields.version, name: "seenBy", type: GraphQLString, resolve: () => "depends on the caller" };
    try {
      const plans = new SharingPlans(schema);
      const plan = plans.planOf(
        parse(`subscription { sessionContextChanged(sessionId: "s1") { version seenBy } }`),
        undefined,
      )!;
      expect(plan.rootField).toBe("sessionContextChanged");
      expect(plan.sharingKey({})).toBeUndefined();
    } finally {
      delete fields.seenBy;
    }
  });

  it("leaves other subscriptions to graphql-js (root field named, nothing shared)", () => {
    const plans = new SharingPlans(schema);
    const plan = plans.planOf(parse(`subscription { userSessionsChanged { sessionId version } }`), undefined)!;
    expect(plan.rootField).toBe("userSessionsChanged");
    expect(plan.sharingKey({})).toBeUndefined();
    expect(plans.planOf(parse(`query { __typename }`), undefined)).toBeUndefined();
  });
});
