import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import pino from "pino";
import { runExport } from "../../src/data/export-command";
import { runImport } from "../../src/data/import-command";
import { runMigrateLegacy } from "../../src/data/migrate-legacy-command";
import { createRedisClient, whenReady, type RedisClient } from "../../src/store/redis/redis-client";
import { dump, quietDeps, storeOn, TOOL_LIMITS, transferOn } from "../helpers/data-io";
import { startRedisCluster, type RedisClusterProcess } from "../helpers/redis-cluster";
import { startRedis, type RedisProcess } from "../helpers/redis-server";

/**
 * The data tool on a Redis Cluster (3 masters, 3 replicas): a legacy source spread over every master is found with
 * SCAN on each of them and migrated into the cluster (each tenant's keys in its one slot), then exported from the
 * cluster through the tenants' own indexes and imported into a single Redis, document for document.
 */

let cluster: RedisClusterProcess;
let single: RedisProcess;
let clusterClient: RedisClient;
let singleClient: RedisClient;
let dir: string;

beforeAll(async () => {
  [cluster, single] = await Promise.all([startRedisCluster(), startRedis()]);
  const logger = pino({ enabled: false });
  clusterClient = createRedisClient({
    clusterNodes: cluster.ports.map((port) => ({ host: "127.0.0.1", port })),
    logger,
    commandTimeoutMs: 10_000,
  });
  singleClient = createRedisClient({ url: single.url, logger, commandTimeoutMs: 10_000 });
  await Promise.all([whenReady(clusterClient, 10_000), whenReady(singleClient, 5000)]);
  dir = mkdtempSync(join(tmpdir(), "cluster-data-io-"));
}, 60_000);

afterAll(async () => {
  await Promise.all([clusterClient.quit(), singleClient.quit()]);
  await Promise.all([cluster.stop(), single.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

it("migrates legacy keys from every master into the cluster, and exports and imports them exactly", async () => {
  const p = randomUUID();
  const tenants = [`${p}-a`, `${p}-b`, `${p}-c`, `${p}-d`];
  // Legacy keys have no hash tag: they spread over the masters.
  let legacy = 0;
  for (const tenant of tenants)
    for (let i = 0; i < 40; i++, legacy++)
      await cluster.admin.set(
        `tenant:${tenant}:user:u${i % 3}:session:s:${i}`,
        `{"conversation_state": {"i": ${i}, "z": 0.30000000000000004}, "recent_interactions": [{"t": "\\u00e9"}], "last_updated": ${1796000000 + i}}`,
        "EX",
        3600,
      );
  const holders = await Promise.all(
    cluster.admin.nodes("master").map(async (node) => (await node.keys(`tenant:${p}*`)).length),
  );
  expect(holders.filter((count) => count > 0).length).toBeGreaterThan(1);

  const migrated = await runMigrateLegacy(
    {
      sourceLabel: "cluster",
      match: `tenant:${p}*:user:*:session:*`,
      dryRun: false,
      mode: "skip",
      batch: 50,
      report: undefined,
      statePath: join(dir, `${p}.state.json`),
      restart: false,
      legacy: { ...TOOL_LIMITS, ttlIfNone: 3600 },
    },
    clusterClient,
    transferOn(clusterClient),
    quietDeps(),
  );
  expect(migrated.counts).toMatchObject({ keys: legacy, written: legacy, bad: 0 });

  for (const tenant of tenants) {
    const file = join(dir, `${tenant}.ndjson`);
    const exported = await runExport(
      { tenantId: tenant, userId: undefined, out: file, force: false, batch: 16 },
      transferOn(clusterClient),
      quietDeps(),
    );
    const imported = await runImport(
      {
        input: file,
        mode: "skip",
        batch: 10,
        report: undefined,
        restart: false,
        limits: TOOL_LIMITS,
        maxLineBytes: 1 << 20,
      },
      transferOn(singleClient),
      quietDeps(),
    );
    expect(exported.counts.sessions).toBe(40);
    expect(imported.counts).toMatchObject({ written: 40, bad: 0 });
    const pattern = `tenant:\\{${tenant}\\}:user:*:session:*`;
    const [inCluster, inSingle] = await Promise.all([dump(cluster.admin, pattern), dump(single.admin, pattern)]);
    expect([...inSingle.keys()].sort()).toEqual([...inCluster.keys()].sort());
    for (const [key, { value, expiresAt }] of inCluster) {
      expect(inSingle.get(key)?.value).toBe(value);
      expect(Math.abs(inSingle.get(key)!.expiresAt - expiresAt)).toBeLessThan(1000);
    }
    const [record] = await storeOn(singleClient).getMany(tenant, [{ userId: "u1", sessionId: "s:1" }]);
    expect(record).toMatchObject({ version: 1, conversationState: { i: 1, z: 0.30000000000000004 } });
  }
});
