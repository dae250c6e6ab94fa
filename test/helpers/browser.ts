import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";

const ROOT = join(__dirname, "..", "..");

/**
 * The Chromium the browser tests drive: `CHROMIUM_PATH`, else Debian's (`apt-get install chromium`). Playwright's
 * own browser downloads are not used: playwright-core drives the system's browser through `executablePath`.
 */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  const found = candidates.find((path): path is string => !!path && existsSync(path));
  if (!found) {
    throw new Error(
      "the browser tests need Chromium: `apt-get install chromium` (Debian), or set CHROMIUM_PATH to a Chromium binary",
    );
  }
  return found;
}

/** Headless Chromium (Playwright runs it without its sandbox, which needs no privileges, as root too). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), timeout: 60_000 });
}

/**
 * Builds the web example (examples/web) with Vite into `outDir`, as `npm run web:build` does, with `env` added to
 * the build's environment (`VITE_GRAPHQL_URL`). Its own process: Vite is ESM and starts its own bundler threads.
 */
export async function buildWebExample(outDir: string, env: Record<string, string>): Promise<void> {
  const vite = join(ROOT, "node_modules", "vite", "bin", "vite.js");
  const args = [vite, "build", "--config", "examples/web/vite.config.mts", "--outDir", outDir, "--emptyOutDir"];
  try {
    await promisify(execFile)(process.execPath, [...args, "--logLevel", "warn"], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`vite build failed: ${(error as Error).message}\n${stdout ?? ""}${stderr ?? ""}`, { cause: error });
  }
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json",
};

export interface StaticSite {
  /** `http://127.0.0.1:<port>`: the page's origin. */
  readonly origin: string;
  close(): Promise<void>;
}

/**
 * Serves the files of `dir` on a free loopback port, as a CDN or any static host would serve the built page (its
 * own origin, apart from the service's); `/` is `index.html`. Files are read per request, so the directory may
 * be filled after it starts.
 */
export async function serveStatic(dir: string): Promise<StaticSite> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const file = normalize(join(dir, path === "/" ? "index.html" : path));
    if (!file.startsWith(normalize(dir))) {
      res.writeHead(403).end();
      return;
    }
    readFile(file).then(
      (body) =>
        res.writeHead(200, { "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream" }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
