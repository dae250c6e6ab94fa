import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MERGE, READ, sessionKeyOf, STORE } from "../helpers/api";
import { onlyError, sampleMax } from "../helpers/faults";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";

// The contract's "under ~2 s", with room for a loaded CI machine.
const FAIL_FAST_MS = 2500;
const WORKERS = 12;
const MAX_REQUESTS = 20_000;
// How long Redis stays down: long enough for the client to go through several reconnect attempts.
const OUTAGE_MS = 1000;

interface Outcome {
  op: "read" | "merge";
  session: Target;
  token: string;
  ok: boolean;
  code?: unknown;
  outcomeUnknown?: unknown;
  elapsedMs: number;
  at: number;
}

interface Target {
  tenant: string;
  user: string;
  session: string;
}

describe("fault: Redis killed and restarted under mixed load from several tenants", () => {
  let redis: RedisProcess;
  let server: TestServer;
  let dataDir: string;

  beforeAll(async () => {
    // Redis keeps an append-only file, synced on every write, so a SIGKILL loses no acknowledged write: after the
    // restart the data is still there and every merge that was answered with success can be counted.
    dataDir = mkdtempSync(join(tmpdir(), "scs-faults-"));
    redis = await startRedis(["--appendonly", "yes", "--appendfsync", "always", "--dir", dataDir]);
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("answers every request with success or SERVICE_UNAVAILABLE in time, recovers by itself, and loses or invents no merge", async () => {
    const targets: Target[] = [];
    for (const label of ["ta", "tb", "tc"]) {
      const tenant = freshTenant(label);
      for (const user of ["u1", "u2"]) targets.push({ tenant, user, session: "s1" });
    }
    for (const target of targets) {
      const stored = await server.post(
        { query: STORE, variables: { input: { sessionId: target.session } } },
        gatewayHeaders(target.tenant, target.user),
      );
      expect(stored.body.errors).toBeUndefined();
    }

    const outcomes: Outcome[] = [];
    let stopLoad = false;
    let sent = 0;
    const worker = async (w: number) => {
      for (let i = 0; !stopLoad && sent < MAX_REQUESTS; i++) {
        const n = sent++;
        const target = targets[n % targets.length];
        const op = n % 3 === 0 ? "read" : "merge";
        const token = `w${w}i${i}`;
        const started = performance.now();
        const response =
          op === "read"
            ? await server.post({ query: READ, variables: { sessionId: target.session } }, headersOf(target))
            : await server.post(
                {
                  query: MERGE,
                  variables: { input: { sessionId: target.session, conversationState: { [token]: n } } },
                },
                headersOf(target),
              );
        const elapsedMs = performance.now() - started;
        const ok = response.body.errors === undefined;
        outcomes.push({
          op,
          session: target,
          token,
          ok,
          elapsedMs,
          at: Date.now(),
          ...(ok ? {} : onlyError(response)),
        });
      }
    };
    const count = (since: number, ok: boolean) => outcomes.filter((o) => o.at >= since && o.ok === ok).length;

    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    const startedAt = Date.now();
    await pollUntil("some traffic succeeds before the kill", () => count(startedAt, true) >= 50, { timeoutMs: 10_000 });

    const queue = sampleMax(() => server.redis!.commandQueue.length);
    const killedAt = Date.now();
    await redis.kill();
    await pollUntil(
      "requests fail while Redis is down",
      () => Date.now() - killedAt >= OUTAGE_MS && count(killedAt, false) >= 100,
      { timeoutMs: 10_000 },
    );
    const maxQueueDuringOutage = queue.stop();

    const restartedAt = Date.now();
    await redis.restart();
    await pollUntil(
      "traffic succeeds again after the restart, with no server restart",
      () => count(restartedAt, true) >= 100,
      { timeoutMs: 10_000 },
    );
    stopLoad = true;
    await load;

    // Every answer was a success or SERVICE_UNAVAILABLE, and every one came in time.
    const failures = outcomes.filter((o) => !o.ok);
    expect(new Set(failures.map((o) => o.code))).toEqual(new Set(["SERVICE_UNAVAILABLE"]));
    expect(Math.max(...outcomes.map((o) => o.elapsedMs))).toBeLessThan(FAIL_FAST_MS);
    // Reads have no outcome to be unsure of.
    expect(failures.filter((o) => o.op === "read" && o.outcomeUnknown !== false)).toEqual([]);
    // The client never queues more than what the workers have in flight (no offline queue, nothing piles up).
    expect(maxQueueDuringOutage).toBeLessThanOrEqual(WORKERS);

    // Versions stay consistent, session by session. Each merge adds its own key to conversationState, so the
    // stored document says exactly which merges were applied: every successful one, none refused before it was
    // sent (outcomeUnknown: false), and any of those whose answer was lost (outcomeUnknown: true). The version
    // is 1 (the first store) plus the number applied.
    for (const target of targets) {
      const raw = await redis.admin.get(sessionKeyOf(target.tenant, target.user, target.session));
      expect(raw).not.toBeNull();
      const doc = JSON.parse(raw!) as { version: number; conversationState: Record<string, number> };
      const applied = new Set(Object.keys(doc.conversationState));
      const merges = outcomes.filter((o) => o.op === "merge" && o.session === target);
      const succeeded = merges.filter((o) => o.ok);
      const refused = merges.filter((o) => !o.ok && o.outcomeUnknown === false);
      const unknown = merges.filter((o) => !o.ok && o.outcomeUnknown === true);

      expect(succeeded.filter((o) => !applied.has(o.token))).toEqual([]);
      expect(refused.filter((o) => applied.has(o.token))).toEqual([]);
      expect(applied.size).toBe(succeeded.length + unknown.filter((o) => applied.has(o.token)).length);
      expect(doc.version).toBe(1 + applied.size);
      expect(doc.version).toBeGreaterThanOrEqual(1 + succeeded.length);
    }
    // The run really crossed the outage: both kinds of answers, on every tenant.
    expect(failures.length).toBeGreaterThanOrEqual(100);
    expect(outcomes.filter((o) => o.ok && o.at >= restartedAt).length).toBeGreaterThanOrEqual(100);
  }, 60_000);
});

function headersOf(target: Target): Record<string, string> {
  return gatewayHeaders(target.tenant, target.user);
}
