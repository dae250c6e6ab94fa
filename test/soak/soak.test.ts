import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { MERGE, READ, STORE } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant, gatewayHeaders } from "../helpers/test-server";

// A bounded soak: mixed reads, stores and merges from many tenants against the real server process, with its RSS
// sampled from /metrics and its live heap measured after full collections. Not part of `npm test` (it loads both
// cores for its whole run, which would make the timing assertions of the fault tests running beside it
// meaningless): `npm run test:soak`, which CI runs after the suite. SOAK_SECONDS sets the duration (default 180).
const SOAK_MS = Number(process.env.SOAK_SECONDS ?? 180) * 1000;
const WORKERS = 16;
const SAMPLE_EVERY_MS = 2000;
// Heap and RSS grow while V8 and Redis connections warm up; nothing from this part is compared.
const WARM_UP_MS = Math.min(20_000, SOAK_MS / 5);
// Generous for the median RSS over a third of the run, which still moves with GC timing; the live heap moves by a
// few per cent at most. A leak of a few hundred bytes per request would pass this bound within minutes at the rates
// seen here.
const GROWTH_TOLERANCE = 1.3;
const REQUEST_TIMEOUT_MS = 5000;

const TENANTS = 20;
const USERS = 5;
const SESSIONS = 10;

interface Sample {
  at: number;
  rss: number;
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} ([0-9.e+]+)$`, "m").exec(text);
  if (!match) throw new Error(`/metrics has no ${name}`);
  return Number(match[1]);
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

describe("soak: mixed load from many tenants on the real server process", () => {
  let redis: RedisProcess;
  let server: ServerProcess;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startServerProcess({
      REDIS_URL: redis.url,
      SLOW_OPERATION_MS: "1000",
      // Runs a full GC on SIGUSR2 and logs the heap left: see liveHeap below.
      NODE_OPTIONS: `--import ${pathToFileURL(join(__dirname, "full-gc-on-signal.mjs")).href}`,
    });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await redis?.stop();
    removeBuild();
  });

  it(
    `answers every request without error and its memory does not grow (${SOAK_MS / 1000} s)`,
    async () => {
      const tenants = Array.from({ length: TENANTS }, () => freshTenant("soak"));
      const latencies: number[] = [];
      const failures: string[] = [];
      const samples: Sample[] = [];
      const startedAt = Date.now();
      const deadline = startedAt + SOAK_MS;
      const maxRequests = (SOAK_MS / 1000) * 20_000; // far above what 2 cores serve: a bound, not a target

      const request = async (n: number, worker: number) => {
        const tenant = tenants[n % TENANTS];
        const user = `u${(n >> 3) % USERS}`;
        const sessionId = `s${(n >> 5) % SESSIONS}`;
        const kind = n % 4; // 0, 1: read; 2: merge; 3: store
        const body =
          kind < 2
            ? { query: READ, variables: { sessionId } }
            : {
                query: kind === 2 ? MERGE : STORE,
                variables: {
                  input: {
                    sessionId,
                    conversationState: { [`k${n % 50}`]: n, worker },
                    // Merges append; the tenant cap (100) keeps every context bounded.
                    recentInteractions: [{ n, at: Date.now(), text: "x".repeat(n % 200) }],
                    interruptedQueries: [`query ${n}`],
                    userPreferences: { lang: n % 2 ? "en" : "fr" },
                  },
                },
              };
        const started = performance.now();
        const response = await fetch(`${server.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", ...gatewayHeaders(tenant, user) },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        const json = (await response.json()) as { errors?: unknown[] };
        latencies.push(performance.now() - started);
        if (response.status !== 200 || json.errors) failures.push(`${response.status} ${JSON.stringify(json.errors)}`);
      };

      // Heap used is a sawtooth whose teeth (major GCs) come with the request rate, so any sample of it says as much
      // about the machine's speed as about a leak. What a leak raises is the heap left after a full collection: the
      // server runs one on demand (full-gc-on-signal.mjs), once after the warm-up and once at the end.
      let collections = 0;
      const liveHeap = async () => {
        const collection = ++collections;
        process.kill(server.pid, "SIGUSR2");
        const line = await server.waitForLine((l) => l.msg === "soak: full gc" && l.collection === collection, 10_000);
        return line.heapUsed as number;
      };
      let liveHeapAfterWarmUp: number | undefined;

      let sent = 0;
      const worker = async (w: number) => {
        while (Date.now() < deadline && sent < maxRequests && failures.length < 20) {
          await request(sent++, w).catch((error: unknown) => void failures.push(String(error)));
        }
      };
      const sampler = async () => {
        while (Date.now() < deadline && failures.length < 20) {
          const text = await (await fetch(`${server.url}/metrics`)).text();
          const at = Date.now() - startedAt;
          samples.push({ at, rss: metric(text, "process_resident_memory_bytes") });
          if (at >= WARM_UP_MS && liveHeapAfterWarmUp === undefined) liveHeapAfterWarmUp = await liveHeap();
          await new Promise((resolve) => setTimeout(resolve, Math.min(SAMPLE_EVERY_MS, deadline - Date.now())));
        }
      };
      await Promise.all([sampler(), ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
      const elapsedS = (Date.now() - startedAt) / 1000;
      const liveHeapAtEnd = await liveHeap();

      const sorted = Float64Array.from(latencies).sort();
      const measured = samples.filter((sample) => sample.at >= WARM_UP_MS);
      const third = Math.floor(measured.length / 3);
      const first = measured.slice(0, third);
      const last = measured.slice(-third);
      const heapGrowth = liveHeapAtEnd / (liveHeapAfterWarmUp ?? NaN);
      const rssGrowth = median(last.map((s) => s.rss)) / median(first.map((s) => s.rss));
      const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
      process.stdout.write(
        `soak: ${elapsedS.toFixed(0)} s, ${latencies.length} requests (${(latencies.length / elapsedS).toFixed(0)}/s), ` +
          `${failures.length} failed, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, ` +
          `max ${sorted[sorted.length - 1].toFixed(1)} ms; heap used after a full GC ${mb(liveHeapAfterWarmUp ?? NaN)} → ` +
          `${mb(liveHeapAtEnd)} MB (×${heapGrowth.toFixed(2)}), RSS ${mb(median(first.map((s) => s.rss)))} → ` +
          `${mb(median(last.map((s) => s.rss)))} MB (×${rssGrowth.toFixed(2)}), ${samples.length} samples\n`,
      );

      expect(failures).toEqual([]);
      expect(third).toBeGreaterThanOrEqual(3);
      expect(heapGrowth).toBeLessThan(GROWTH_TOLERANCE);
      expect(rssGrowth).toBeLessThan(GROWTH_TOLERANCE);
      // The server is still healthy and ready afterwards.
      expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
    },
    SOAK_MS + 60_000,
  );
});
