/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by package, as percentages of
 * the busy time (idle left out). Usage: `node -r ts-node/register/transpile-only bench/profile-summary.ts FILE [N]`.
 *
 * To profile the server under a scenario:
 *   BENCH_SCENARIOS=read-one BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `node_modules/@scope/name` or `node_modules/name`; node's own code; our code (dist/ or src/); V8's pseudo-nodes. */
export function packageOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) {
    const parts = url.slice(modules + "node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  if (url.startsWith("node:")) return "node (core)";
  const ours = /\/(dist|src)\/(.*)$/.exec(url);
  if (ours) return `service: ${ours[2].split("/").slice(0, -1).join("/") || "."}`;
  return url;
}

export function summarise(profile: Profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const keyOf = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || "(anonymous)"} ${packageOf(url, functionName)}${url ? `:${lineNumber + 1}` : ""}`;
  };
  let busy = 0;
  let idle = 0;
  for (const [id, micros] of self) {
    const { functionName, url } = byId.get(id)!.callFrame;
    if (functionName === "(idle)") {
      idle += micros;
      continue;
    }
    busy += micros;
    const pkg = packageOf(url, functionName);
    const fn = keyOf(byId.get(id)!);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros);
    // Inclusive: every distinct function on the stack of these samples.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) seen.add(keyOf(byId.get(at)!));
    for (const key of seen) inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, micros]) => ({ name, percent: +((micros / busy) * 100).toFixed(1) }));
  return { busyMs: Math.round(busy / 1000), idleMs: Math.round(idle / 1000), top, byFunction, byPackage, inclusive };
}

if (require.main === module) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write("usage: profile-summary.ts FILE.cpuprofile [N]\n");
    process.exit(2);
  }
  const summary = summarise(JSON.parse(readFileSync(file, "utf8")) as Profile);
  const count = Number(n ?? 25);
  process.stdout.write(`busy ${summary.busyMs} ms, idle ${summary.idleMs} ms\n\nself time by package:\n`);
  for (const { name, percent } of summary.top(summary.byPackage, count))
    process.stdout.write(`${percent.toFixed(1).padStart(6)}%  ${name}\n`);
  process.stdout.write("\nself time by function:\n");
  for (const { name, percent } of summary.top(summary.byFunction, count))
    process.stdout.write(`${percent.toFixed(1).padStart(6)}%  ${name}\n`);
  process.stdout.write("\ninclusive time by function:\n");
  for (const { name, percent } of summary.top(summary.inclusive, count * 2))
    process.stdout.write(`${percent.toFixed(1).padStart(6)}%  ${name}\n`);
}
