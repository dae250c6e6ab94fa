import { ServiceUnavailableError } from "../../src/errors/errors";
import type { SessionRecord } from "../../src/sessions/session-record";
import type { SessionStore } from "../../src/sessions/session-store";
import { AdmittedSessionStore, type Refusal } from "../../src/store/admitted-session-store";

/** A store whose every call waits until the test lets it finish. */
function heldStore() {
  const waiting: (() => void)[] = [];
  const hold = <T>(value: T) => new Promise<T>((resolve) => waiting.push(() => resolve(value)));
  const store = {
    kind: "held",
    getMany: () => hold([]),
    store: () => hold({} as SessionRecord),
    merge: () => hold({} as SessionRecord),
    restore: () => hold({} as SessionRecord),
    history: () => hold({ versions: [], hasNextPage: false }),
    deleteSession: () => hold(true),
    deleteUserSessions: () => hold(0),
    listUserSessions: () => hold({ entries: [], hasNextPage: false, totalCount: 0 }),
    purgeOrphans: () => hold(0),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  } satisfies SessionStore;
  return { store, release: () => waiting.splice(0).forEach((go) => go()), held: () => waiting.length };
}

const ref = { userId: "u", sessionId: "s" };
const limits = { maxContextBytes: 1024 };

async function refusal(call: Promise<unknown>): Promise<ServiceUnavailableError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceUnavailableError);
  return error as ServiceUnavailableError;
}

describe("AdmittedSessionStore: the process's bounds on the store", () => {
  it("refuses every call at once, retryable, while the store has maxInFlight commands in flight, and lets calls through again when they are answered", async () => {
    const { store, release, held } = heldStore();
    let inFlight = 0;
    const refused: Refusal[] = [];
    const admitted = new AdmittedSessionStore(store, {
      maxInFlight: 3,
      tenantWritesInFlight: 100,
      inFlight: () => inFlight,
      refused: (reason) => refused.push(reason),
    });

    inFlight = 3; // e.g. three commands that timed out and that Redis has not answered
    for (const call of [
      admitted.getMany("t", [ref]),
      admitted.merge("t", ref, {}, limits),
      admitted.listUserSessions("t", "u", 10),
      admitted.purgeOrphans("t", 60),
    ]) {
      const error = await refusal(call);
      expect(error.extensions).toMatchObject({ code: "SERVICE_UNAVAILABLE", retryable: true, outcomeUnknown: false });
      expect(error.message).toContain("REDIS_MAX_IN_FLIGHT");
    }
    expect(held()).toBe(0); // nothing reached the store
    expect(refused).toEqual(["in_flight", "in_flight", "in_flight", "in_flight"]);
    await admitted.ping(); // readiness is not refused

    inFlight = 2;
    const read = admitted.getMany("t", [ref]);
    expect(held()).toBe(1);
    release();
    await expect(read).resolves.toEqual([]);
  });

  it("counts the calls it let through when no probe is given", async () => {
    const { store, release } = heldStore();
    const admitted = new AdmittedSessionStore(store, { maxInFlight: 2, tenantWritesInFlight: 100 });
    const first = [admitted.getMany("t", [ref]), admitted.history("t", ref, 5)];
    await refusal(admitted.getMany("t", [ref]));
    release();
    await Promise.all(first);
    const again = admitted.getMany("t", [ref]);
    release();
    await expect(again).resolves.toEqual([]);
  });

  it("refuses a tenant's write beyond tenantWritesInFlight, retryable, while other tenants and reads go through", async () => {
    const { store, release, held } = heldStore();
    const refused: Refusal[] = [];
    const admitted = new AdmittedSessionStore(store, {
      maxInFlight: 1000,
      tenantWritesInFlight: 2,
      inFlight: () => 0,
      refused: (reason) => refused.push(reason),
    });

    const busy = [admitted.merge("busy", ref, {}, limits), admitted.store("busy", ref, {}, limits)];
    const error = await refusal(
      admitted.restore("busy", ref, { version: 1, actor: { userId: "u", roles: [] } }, limits),
    );
    expect(error.extensions).toMatchObject({ code: "SERVICE_UNAVAILABLE", retryable: true });
    expect(error.message).toContain("TENANT_WRITES_IN_FLIGHT");
    expect(refused).toEqual(["tenant_writes"]);
    expect(admitted.writesInFlight("busy")).toBe(2);

    const others = [admitted.merge("quiet", ref, {}, limits), admitted.getMany("busy", [ref])];
    expect(held()).toBe(4);
    release();
    await Promise.all([...busy, ...others]);
    expect(admitted.writesInFlight("busy")).toBe(0);

    const next = admitted.merge("busy", ref, {}, limits);
    release();
    await next;
  });
});
