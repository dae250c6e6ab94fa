import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { MERGE, READ } from "../helpers/api";
import { SESSION_CHANGED, subscribeWs, wsClient } from "../helpers/live";
import { parseMetrics } from "../helpers/metrics";
import { freshTenant, gatewayHeaders, useServerOnRedis, type TestServer } from "../helpers/test-server";

/**
 * The dashboards and alerts that ship in deploy/observability: the rules are valid and fire when they should
 * (promtool, from Debian's `prometheus` package, which .ci/run installs), and every metric they name is one a
 * running server exports.
 */

const DIR = join(__dirname, "..", "..", "deploy", "observability");
const run = promisify(execFile);

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run("promtool", args, { cwd: DIR });
    return stdout + stderr;
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: string; stdout?: string; stderr?: string };
    if (code === "ENOENT")
      throw new Error("promtool is not on PATH: install Debian's prometheus package", { cause: error });
    throw new Error(`promtool ${args.join(" ")} failed:\n${stdout ?? ""}${stderr ?? ""}`, { cause: error });
  }
}

/** Every metric a PromQL expression of the dashboard or the rules names (ours and the Node process ones). */
function metricsNamed(): Set<string> {
  const dashboard = JSON.parse(readFileSync(join(DIR, "dashboard.json"), "utf8")) as {
    panels: { targets: { expr: string }[] }[];
  };
  const expressions = [
    ...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)),
    readFileSync(join(DIR, "alerts.yml"), "utf8"),
  ];
  const names = new Set<string>();
  for (const text of expressions)
    for (const match of text.matchAll(/\b((?:graphql|session|process|nodejs)_[a-z0-9_]+)\b/g)) names.add(match[1]);
  return names;
}

describe("deploy/observability", () => {
  it("has valid alerting rules that pass their unit tests", async () => {
    expect(await promtool("check", "rules", "alerts.yml")).toMatch(/SUCCESS: 7 rules found/);
    expect(await promtool("test", "rules", "alerts.test.yml")).toMatch(/SUCCESS/);
  });

  describe("against a running server", () => {
    let server: TestServer;
    useServerOnRedis((running) => (server = running.server));

    it("exports every metric the dashboard and the alerts name", async () => {
      // Traffic that gives each labelled metric a sample: operations, an error, store calls, a live event.
      const headers = gatewayHeaders(freshTenant(), "alice");
      const client = wsClient(server.url, { headers });
      try {
        const received = subscribeWs(client, SESSION_CHANGED, { sessionId: "s1", afterVersion: 0 });
        await server.post(
          { query: MERGE, variables: { input: { sessionId: "s1", conversationState: { a: 1 } } } },
          headers,
        );
        await received.next(1);
        await server.post({ query: READ, variables: { sessionId: "s1", userId: "bob" } }, headers); // FORBIDDEN
        const text = await (await fetch(`${server.url}/metrics`)).text();
        const exported = new Set(parseMetrics(text).map((sample) => sample.name));
        const named = metricsNamed();
        expect(named.size).toBeGreaterThan(10);
        expect([...named].filter((name) => !exported.has(name))).toEqual([]);
        expect(text).toMatch(/^session_store_up 1$/m);
      } finally {
        await client.dispose();
      }
    });
  });
});
