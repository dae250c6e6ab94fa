/**
 * Redis memory per stored session, after seeding: MEMORY USAGE of sampled session keys against their JSON, the
 * index entries each session adds, and how much used_memory grew per session.
 */
import type { Redis } from "ioredis";
import {
  activityIndexKey,
  expiryIndexKey,
  historyKey,
  sessionKey,
  userExpiryKey,
  userIndexKey,
} from "../src/store/keys";
import type { DataSet, SeededSession } from "./seed";
import { prng } from "./workload";

const SAMPLE = 1000;

/** INFO memory's used_memory, in bytes. */
export async function usedMemory(admin: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await admin.info("memory"))?.[1]);
}

export type MemoryReport = Awaited<ReturnType<typeof memoryReport>> & { history?: HistoryMemoryReport };

/** What one kept version costs Redis, measured on `merges` merges of the bench's merge workload. */
export interface HistoryMemoryReport {
  merges: number;
  /** JSON of what each merge was given (its change), bytes on average. */
  changeBytes: number;
  /** MEMORY USAGE of the session's change log, growth per merge on average: the kept version. */
  bytesPerKeptVersion: number;
}

/**
 * Merges `merges` times (the merge scenario's input) into sessions of tenants that keep history, through `merge`,
 * and measures how much each session's change log grew: what a kept version costs, beside what the write changed.
 */
export async function historyMemoryReport(
  admin: Redis,
  data: DataSet,
  merge: (s: SeededSession, input: Record<string, unknown>) => Promise<void>,
  input: (rand: () => number, n: number) => Record<string, unknown>,
  merges = 200,
): Promise<HistoryMemoryReport> {
  const rand = prng(777);
  let change = 0;
  let growth = 0;
  for (let n = 0; n < merges; n++) {
    const s = data.anySessionWithHistory(rand, true);
    const key = historyKey(s.tenantId, s.userId, s.sessionId);
    const before = Number((await admin.memory("USAGE", key, "SAMPLES", 0)) ?? 0);
    const given = input(rand, n);
    await merge(s, given);
    growth += Number(await admin.memory("USAGE", key, "SAMPLES", 0)) - before;
    change += Buffer.byteLength(JSON.stringify(given));
  }
  return { merges, changeBytes: Math.round(change / merges), bytesPerKeptVersion: Math.round(growth / merges) };
}

/** `usedBefore`: usedMemory() before seeding. */
export async function memoryReport(admin: Redis, data: DataSet, usedBefore: number) {
  const rand = prng(4242);
  let memory = 0;
  let json = 0;
  for (let i = 0; i < SAMPLE; i++) {
    const s = data.anySession(rand);
    const key = sessionKey(s.tenantId, s.userId, s.sessionId);
    memory += Number(await admin.memory("USAGE", key, "SAMPLES", 0));
    json += Number(await admin.strlen(key));
  }
  const perEntry = async (keyOf: (s: SeededSession) => string, samples: number, pickOne: () => SeededSession) => {
    let bytes = 0;
    let entries = 0;
    for (let i = 0; i < samples; i++) {
      const key = keyOf(pickOne());
      bytes += Number(await admin.memory("USAGE", key, "SAMPLES", 0));
      entries += Number(await admin.zcard(key));
    }
    return bytes / entries;
  };
  const tenants = () => data.anyTenant(rand);
  const users = () => data.anyUser(rand);
  const index = {
    tenantActivity: await perEntry((s) => activityIndexKey(s.tenantId), 10, tenants),
    tenantExpiry: await perEntry((s) => expiryIndexKey(s.tenantId), 10, tenants),
    userSessions: await perEntry((s) => userIndexKey(s.tenantId, s.userId), 200, users),
    userExpiry: await perEntry((s) => userExpiryKey(s.tenantId, s.userId), 200, users),
  };
  const usedAfter = await usedMemory(admin);
  const indexPerSession = Object.values(index).reduce((a, b) => a + b, 0);
  return {
    sampledSessions: SAMPLE,
    jsonBytesPerSession: Math.round(json / SAMPLE),
    memoryUsagePerSessionKey: Math.round(memory / SAMPLE),
    keyOverheadRatio: +(memory / json).toFixed(3),
    indexBytesPerSession: Object.fromEntries(Object.entries(index).map(([k, v]) => [k, Math.round(v)])),
    indexBytesPerSessionTotal: Math.round(indexPerSession),
    totalPerSession: Math.round(memory / SAMPLE + indexPerSession),
    usedMemoryDeltaPerSession: Math.round((usedAfter - usedBefore) / data.total),
  };
}
