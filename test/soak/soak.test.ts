import { MERGE, READ, STORE } from "../helpers/api";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant, gatewayHeaders } from "../helpers/test-server";

// A bounded soak: mixed reads, stores and merges from many tenants against the real server process, with its
// memory sampled from /metrics. Not part of `npm test` (it loads both cores for its whole run, which would make
// the timing assertions of the fault tests running beside it meaningless): `npm run test:soak`, which CI runs
// after the suite. SOAK_SECONDS sets the duration (default 180).
const SOAK_MS = Number(process.env.SOAK_SECONDS ?? 180) * 1000;
const WORKERS = 16;
const SAMPLE_EVERY_MS = 2000;
// Heap and RSS grow while V8 and Redis connections warm up; samples from this part are not compared.
const WARM_UP_MS = Math.min(20_000, SOAK_MS / 5);
// Generous: the heap's floor and the median RSS over a third of the run still move a little with GC timing. A leak
// of a few hundred bytes per request would pass this bound within minutes at the rates seen here.
const GROWTH_TOLERANCE = 1.3;
const REQUEST_TIMEOUT_MS = 5000;

const TENANTS = 20;
const USERS = 5;
const SESSIONS = 10;

interface Sample {
  at: number;
  rss: number;
  heapUsed: number;
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
    server = await startServerProcess({ REDIS_URL: redis.url, SLOW_OPERATION_MS: "1000" });
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

      let sent = 0;
      const worker = async (w: number) => {
        while (Date.now() < deadline && sent < maxRequests && failures.length < 20) {
          await request(sent++, w).catch((error: unknown) => void failures.push(String(error)));
        }
      };
      const sampler = async () => {
        while (Date.now() < deadline && failures.length < 20) {
          const text = await (await fetch(`${server.url}/metrics`)).text();
          samples.push({
            at: Date.now() - startedAt,
            rss: metric(text, "process_resident_memory_bytes"),
            heapUsed: metric(text, "nodejs_heap_size_used_bytes"),
          });
          await new Promise((resolve) => setTimeout(resolve, Math.min(SAMPLE_EVERY_MS, deadline - Date.now())));
        }
      };
      await Promise.all([sampler(), ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
      const elapsedS = (Date.now() - startedAt) / 1000;

      const sorted = Float64Array.from(latencies).sort();
      const measured = samples.filter((sample) => sample.at >= WARM_UP_MS);
      const third = Math.floor(measured.length / 3);
      const first = measured.slice(0, third);
      const last = measured.slice(-third);
      // Heap used is a sawtooth: it climbs with garbage until a major GC drops it to what is live (~30 MB here),
      // between 20 and 60 s apart at ~3,000 requests/s, so a median over a third of the run depends on where the
      // teeth fall. The floor — the lowest sample of each half, just after a major GC — is the live heap: a leak
      // raises it. Halves, not thirds, so that each holds at least one major GC.
      const half = Math.floor(measured.length / 2);
      const [firstHalf, lastHalf] = [measured.slice(0, half), measured.slice(-half)];
      const heapFloor = (window: Sample[]) => Math.min(...window.map((s) => s.heapUsed));
      const heapGrowth = heapFloor(lastHalf) / heapFloor(firstHalf);
      const rssGrowth = median(last.map((s) => s.rss)) / median(first.map((s) => s.rss));
      const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
      process.stdout.write(
        `soak: ${elapsedS.toFixed(0)} s, ${latencies.length} requests (${(latencies.length / elapsedS).toFixed(0)}/s), ` +
          `${failures.length} failed, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, ` +
          `max ${sorted[sorted.length - 1].toFixed(1)} ms; heap used after GC ${mb(heapFloor(firstHalf))} → ` +
          `${mb(heapFloor(lastHalf))} MB (×${heapGrowth.toFixed(2)}), RSS ${mb(median(first.map((s) => s.rss)))} → ` +
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
