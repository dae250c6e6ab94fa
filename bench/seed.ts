/**
 * The bench's data sets: 100 tenants × N users × 20 sessions of ~1.7 KB contexts, and beside them 10 tenants of
 * ~64 KB contexts; each id made from the session's index so a request can name any seeded session without a
 * lookup; and the seeding, through RedisSessionStore as the server writes (the stored documents have the real
 * layout, with the entry index and the `spans` trailer).
 */
import { performance } from "node:perf_hooks";
import type { Redis } from "ioredis";
import pino from "pino";
import { settingsKey, sessionKey } from "../src/store/keys";
import { createRedisClient, whenReady } from "../src/store/redis/redis-client";
import { RedisCleanupSchedule } from "../src/store/redis/redis-cleanup-schedule";
import { RedisSessionStore } from "../src/store/redis/redis-session-store";
import { DEFAULT_TENANT_SETTINGS } from "../src/tenants/tenant-settings";
import type { ContextFields } from "../src/sessions/session-record";
import { prng, realisticContext } from "./workload";

const SEED_IN_FLIGHT = 256;
const LIMITS = { maxContextBytes: 262_144 };

export interface SeededSession {
  tenantId: string;
  userId: string;
  sessionId: string;
}

const tenantId = (prefix: string, t: number) => `${prefix}-${String(t).padStart(3, "0")}`;
const userId = (t: number, u: number) => `user-${String(t).padStart(3, "0")}-${String(u).padStart(4, "0")}@example.com`;
const sessionId = (t: number, u: number, s: number) =>
  `sess-${(((t * 7919 + u) * 104729 + s * 15485863) >>> 0).toString(16).padStart(8, "0")}-${s}`;

export interface DataSetShape {
  /** Tenants (an even number: half keep history, half do not). Default 100. */
  tenants?: number;
  /** What the tenant ids start with (`tenant-000`, …): two data sets in one Redis need different ones. */
  tenantPrefix?: string;
  /** The context every session is seeded with, from a PRNG seeded by the session's index. */
  context?: (rand: () => number) => ContextFields;
}

/** Which sessions exist: a user's sessions have consecutive indexes, and so have a tenant's users. */
export class DataSet {
  readonly tenants: number;
  readonly sessionsPerUser = 20;
  readonly usersPerTenant: number;
  /** tenants × usersPerTenant × sessionsPerUser: the requested count rounded to whole users (at least one). */
  readonly total: number;
  readonly context: (rand: () => number) => ContextFields;
  private readonly tenantPrefix: string;

  constructor(sessions: number, shape: DataSetShape = {}) {
    this.tenants = shape.tenants ?? 100;
    this.tenantPrefix = shape.tenantPrefix ?? "tenant";
    this.context = shape.context ?? realisticContext;
    this.usersPerTenant = Math.max(1, Math.round(sessions / this.tenants / this.sessionsPerUser));
    this.total = this.tenants * this.usersPerTenant * this.sessionsPerUser;
  }

  /** The session at `index`, 0 ≤ index < total. */
  session(index: number): SeededSession {
    const s = index % this.sessionsPerUser;
    const u = Math.floor(index / this.sessionsPerUser) % this.usersPerTenant;
    const t = Math.floor(index / this.sessionsPerUser / this.usersPerTenant);
    return { tenantId: tenantId(this.tenantPrefix, t), userId: userId(t, u), sessionId: sessionId(t, u, s) };
  }

  anySession(rand: () => number): SeededSession {
    return this.session(Math.floor(rand() * this.total));
  }

  /**
   * A random session of a tenant that keeps history (even tenant numbers: historyDepth at its default) or of one
   * that does not (odd: historyDepth 0, see `seed`), so the two merge scenarios differ in history alone.
   */
  anySessionWithHistory(rand: () => number, history: boolean): SeededSession {
    const perTenant = this.usersPerTenant * this.sessionsPerUser;
    const t = 2 * Math.floor(rand() * (this.tenants / 2)) + (history ? 0 : 1);
    return this.session(t * perTenant + Math.floor(rand() * perTenant));
  }

  /**
   * `count` whole users of the tenants that keep history (or of those that do not), each as its sessions: the
   * users taken round-robin over those tenants, the k-th of a tenant in both halves, so the two pools are alike
   * (same sizes, same ids but the tenant). At most every user of that half.
   */
  usersWithHistory(count: number, history: boolean): SeededSession[][] {
    const half = this.tenants / 2;
    const users = Math.min(count, half * this.usersPerTenant);
    return Array.from({ length: users }, (_, k) => {
      const t = 2 * (k % half) + (history ? 0 : 1);
      const first = (t * this.usersPerTenant + Math.floor(k / half)) * this.sessionsPerUser;
      return Array.from({ length: this.sessionsPerUser }, (_, s) => this.session(first + s));
    });
  }

  /** Index of a random user's first session: that user's sessions are this index and the next sessionsPerUser - 1. */
  anyUserIndex(rand: () => number): number {
    return Math.floor(rand() * (this.total / this.sessionsPerUser)) * this.sessionsPerUser;
  }

  /** A random user's first session. */
  anyUser(rand: () => number): SeededSession {
    return this.session(this.anyUserIndex(rand));
  }

  /** A random tenant's first session. */
  anyTenant(rand: () => number): SeededSession {
    return this.session(Math.floor(rand() * this.tenants) * this.usersPerTenant * this.sessionsPerUser);
  }
}

/**
 * Stores every session of `data` (SEED_IN_FLIGHT at a time, its `context` each) on a client of its own; resolves
 * with the seconds.
 */
export async function seed(redisUrl: string, data: DataSet): Promise<number> {
  const client = createRedisClient({ url: redisUrl, logger: pino({ level: "silent" }), commandTimeoutMs: 30_000 });
  await whenReady(client, 5000);
  const store = new RedisSessionStore(client, {
    defaults: DEFAULT_TENANT_SETTINGS,
    schedule: new RedisCleanupSchedule(client),
  });
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < data.total; i = next++) {
      const { tenantId: tenant, userId: user, sessionId: session } = data.session(i);
      await store.store(tenant, { userId: user, sessionId: session }, data.context(prng(i + 1)), LIMITS);
    }
  };
  // Odd tenants keep no history (historyDepth 0), even ones the default: what merge and merge-no-history compare.
  for (let t = 1; t < data.tenants; t += 2) {
    await client.hset(
      settingsKey(data.session(t * data.usersPerTenant * data.sessionsPerUser).tenantId),
      "historyDepth",
      "0",
    );
  }
  await Promise.all(Array.from({ length: SEED_IN_FLIGHT }, worker));
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  return seconds;
}

/** The mean size in bytes of the stored documents of `sample` sessions of `data` (spread over the set). */
export async function meanDocumentBytes(admin: Redis, data: DataSet, sample = 100): Promise<number> {
  const sessions = Array.from({ length: Math.min(sample, data.total) }, (_, i) =>
    data.session(Math.floor((i * data.total) / Math.min(sample, data.total))),
  );
  const lengths = await Promise.all(sessions.map((s) => admin.strlen(sessionKey(s.tenantId, s.userId, s.sessionId))));
  return Math.round(lengths.reduce((a, n) => a + n, 0) / lengths.length);
}

/** The stored document's version (0 when there is none) and its size in bytes. */
export async function storedVersion(admin: Redis, s: SeededSession): Promise<{ version: number; bytes: number }> {
  const value = await admin.get(sessionKey(s.tenantId, s.userId, s.sessionId));
  return { version: value ? (JSON.parse(value) as { version: number }).version : 0, bytes: value?.length ?? 0 };
}
