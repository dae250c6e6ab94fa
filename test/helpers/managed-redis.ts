import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster, Redis } from "ioredis";
import pino from "pino";
import { CleanupScheduler } from "../../src/cleanup/cleanup-scheduler";
import type { WriteLimits } from "../../src/sessions/session-record";
import type { Backend } from "../../src/store/backend";
import { startRedis, type RedisProcess } from "./redis-server";
import { makeTestCertificates, type TestCertificates } from "./tls";

const README = join(__dirname, "..", "..", "README.md");

/**
 * The README's rules ("Managed Redis"): the service's user on the data nodes (`scs`: the two key patterns and the
 * tenants' change channels) and its user on the Sentinels (`scs-sentinel`: no key, the one channel it subscribes to). Each is one line
 * `ACL SETUSER <user> reset on >CHANGE-ME <head…> +command …`.
 */
const RULES = {
  redis: {
    user: "scs",
    head: ["reset", "on", ">CHANGE-ME", "~tenant:*", "~scs:*", "resetchannels", "&tenant:*", "-@all"],
  },
  sentinel: { user: "scs-sentinel", head: ["reset", "on", ">CHANGE-ME", "resetchannels", "&+switch-master", "-@all"] },
} as const;
/** One command, or one subcommand of a container command (`+cluster|info`): never a category or a pattern. */
const ONE_COMMAND = /^\+[a-z]+(\|[a-z-]+)?$/;

/**
 * A least-privilege ACL rule of the README, as `ACL SETUSER` arguments after the user name, with `password` in
 * place of the README's placeholder. Read from the README so that the rule operators copy is the rule the tests run
 * under. Throws unless the README has exactly one such line, granting exactly the head above and then single
 * commands only.
 */
export function leastPrivilegeRule(password: string, which: keyof typeof RULES = "redis"): string[] {
  const { user, head } = RULES[which];
  const lines = [...readFileSync(README, "utf8").matchAll(new RegExp(`^ACL SETUSER ${user} (reset on .+)$`, "gm"))];
  if (lines.length !== 1) throw new Error(`README.md must have one "ACL SETUSER ${user} reset on …" line`);
  const tokens = lines[0][1].trim().split(/\s+/);
  const commands = tokens.slice(head.length);
  if (tokens.slice(0, head.length).join(" ") !== head.join(" ") || !commands.every((c) => ONE_COMMAND.test(c)))
    throw new Error(`README.md's ACL rule for ${user} must be "${head.join(" ")}" and then +command only`);
  return [...head.map((token) => (token === ">CHANGE-ME" ? `>${password}` : token)), ...commands];
}

/** Creates `username` (or resets it) on each server with exactly the README's rule and `password`. */
export async function createLeastPrivilegeUser(
  admins: readonly (Redis | Cluster)[],
  username: string,
  password: string,
  which: keyof typeof RULES = "redis",
): Promise<void> {
  const rule = leastPrivilegeRule(password, which);
  for (const admin of admins) await admin.call("ACL", "SETUSER", username, ...rule);
}

/**
 * What Redis refused since the log was last reset (`ACL LOG`): each entry as "user: reason object" (`scs: command
 * info`, `scs: key other:x`, `default: auth AUTH`). Redis logs refusals that clients swallow as well (ioredis skips
 * its ready check when INFO is refused), so an empty log means the rule allowed everything tried.
 */
export async function aclDenials(admin: Redis): Promise<string[]> {
  const entries = (await admin.call("ACL", "LOG")) as unknown[][];
  return entries.map((entry) => {
    const fields = new Map<string, unknown>();
    for (let i = 0; i < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
    return `${String(fields.get("username"))}: ${String(fields.get("reason"))} ${String(fields.get("object"))}`;
  });
}

/** A redis-server as a managed Redis serves it: TLS only, a password on `default`, the service's ACL user `scs`. */
export interface ManagedRedis {
  /** The server; its admin client is the `default` user over TLS. */
  readonly redis: RedisProcess;
  readonly certificates: TestCertificates;
  /** The `scs` user's password. */
  readonly password: string;
  /** The server's configuration to reach it as `scs`: REDIS_URL (rediss://scs:…@…) and REDIS_TLS_CA_FILE. */
  readonly env: Readonly<Record<string, string>>;
  /** Stops the server and removes the certificates. */
  stop(): Promise<void>;
}

/** Starts a ManagedRedis with the user `scs` holding exactly the README's least-privilege rule. */
export async function startManagedRedis(): Promise<ManagedRedis> {
  const certificates = makeTestCertificates();
  const password = `scs-${randomUUID()}`;
  let redis: RedisProcess | undefined;
  try {
    redis = await startRedis([], { tls: certificates, adminPassword: `admin-${randomUUID()}` });
    await createLeastPrivilegeUser([redis.admin], "scs", password);
  } catch (error) {
    await redis?.stop();
    certificates.remove();
    throw error;
  }
  const started = redis;
  return {
    redis: started,
    certificates,
    password,
    env: { REDIS_URL: `rediss://scs:${password}@127.0.0.1:${started.port}`, REDIS_TLS_CA_FILE: certificates.caFile },
    stop: async () => {
      await started.stop();
      certificates.remove();
    },
  };
}

const LIMITS: WriteLimits = { maxContextBytes: 262_144 };

/**
 * Runs every operation of the backend once, the way the API and the cleanup scheduler do, and checks the answers:
 * on a Redis where the service's user has exactly the README's rule, a command the rule lacks fails here.
 */
export async function runEveryStoreOperation(backend: Backend): Promise<void> {
  const { sessions, settings, schedule, queryCache } = backend;
  const tenant = `t-${randomUUID()}`;
  const ref = (sessionId: string) => ({ userId: "u", sessionId });

  await sessions.store(tenant, ref("s1"), { conversationState: { step: 1 } }, LIMITS);
  expect(await sessions.merge(tenant, ref("s1"), { interruptedQueries: ["q"] }, LIMITS)).toMatchObject({ version: 2 });
  await sessions.store(tenant, ref("s2"), {}, LIMITS);
  expect((await sessions.getMany(tenant, [ref("s1"), ref("none")])).map((r) => r?.version ?? null)).toEqual([2, null]);
  const first = await sessions.listUserSessions(tenant, "u", 1);
  expect(first).toMatchObject({ totalCount: 2, hasNextPage: true });
  const next = await sessions.listUserSessions(tenant, "u", 1, first.entries[0].cursor);
  expect(next).toMatchObject({ hasNextPage: false, entries: [{ ref: ref("s1") }] });
  expect(await sessions.deleteSession(tenant, ref("s2"))).toBe(true);
  expect(await sessions.purgeOrphans(tenant, 3600)).toBe(0);

  expect(await settings.update(tenant, { cleanupIntervalSeconds: 60 })).toMatchObject({ cleanupIntervalSeconds: 60 });
  expect(await settings.get(tenant)).toMatchObject({ cleanupIntervalSeconds: 60 });
  await schedule.reschedule(tenant, (await schedule.now()) - 1);
  const scheduler = new CleanupScheduler({ ...backend, logger: pino({ level: "silent" }), tickMs: 60_000 });
  expect(await scheduler.runDue()).toBeGreaterThanOrEqual(1);
  expect((await settings.get(tenant)).lastCleanupAt).not.toBeNull();
  expect(await schedule.nextRun(tenant)).toBeGreaterThan(Date.now());

  await queryCache?.set(`apq:${tenant}`, "{ __typename }", { ttl: 60 });
  expect(await queryCache?.get(`apq:${tenant}`)).toBe("{ __typename }");
  await queryCache?.delete(`apq:${tenant}`);

  expect(await sessions.deleteUserSessions(tenant, "u")).toBe(1);
  await sessions.ping();
}
