import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { buildWebExample, launchChromium, serveStatic, type StaticSite } from "../helpers/browser";
import { parseMetrics, valueOf } from "../helpers/metrics";
import { pollUntil } from "../helpers/poll";
import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { buildServer, removeBuild, startServerProcess, type ServerProcess } from "../helpers/server-process";
import { freshTenant } from "../helpers/test-server";
import { mintToken, TEST_JWT_SECRET } from "../helpers/tokens";

/**
 * The web example (examples/web: Vite, React, Apollo Client over graphql-ws) in Debian's Chromium, driven by
 * playwright-core: two browser contexts (two devices of one user, nothing shared but the account) on one session,
 * against the server as its own process in production mode, with Redis. The page is built by Vite and served from
 * an origin of its own, as from a CDN: the server allows it with CORS_ORIGINS.
 */

const ROOT = join(__dirname, "..", "..");
/** Where the screenshot goes (not checked in): two windows side by side. */
const SCREENSHOTS = join(ROOT, ".test-build", "screenshots");
const WAIT = { timeout: 20_000 };
const VIEWPORT = { width: 900, height: 560 };

/** One browser window of the example, signed in as `u1` of `tenant`. */
interface Window {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Page errors and console errors: a CORS refusal or a failed request shows here. */
  readonly problems: string[];
}

describe("The web example (examples/web) in a real browser", () => {
  let browser: Browser;
  let redis: RedisProcess;
  let server: ServerProcess;
  let site: StaticSite;
  const outDir = join(ROOT, ".test-build", `web-${process.pid}`);
  const windows: Window[] = [];

  beforeAll(async () => {
    // First: without Chromium there is nothing to test, and the error says how to get it.
    browser = await launchChromium();
    // Compiled before Redis starts: the compiler runs synchronously and would stall the Redis client's connect.
    buildServer();
    redis = await startRedis();
    site = await serveStatic(outDir);
    server = await startServerProcess({
      NODE_ENV: "production",
      REDIS_URL: redis.url,
      JWT_SECRET: TEST_JWT_SECRET,
      CORS_ORIGINS: site.origin,
    });
    await buildWebExample(outDir, { VITE_GRAPHQL_URL: `${server.url}/graphql` });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await site?.close();
    await redis?.stop();
    removeBuild();
    rmSync(outDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const window of windows.splice(0)) await window.context.close();
    // Closing a window ends its WebSocket; the server lets go of its subscription.
    await followers(0);
  });

  /** Opens the page in a new browser context: its own storage, like another device. */
  const open = async (tenant: string, device: string, sessionId: string): Promise<Window> => {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    const window = { page, context, problems };
    windows.push(window);
    const token = await mintToken({ tenant_id: tenant, sub: "u1" });
    // The token in the fragment, as a person would open it from a link: the page keeps it and clears the address.
    await page.goto(`${site.origin}/?session=${sessionId}&device=${device}#token=${token}`);
    await live(window);
    return window;
  };

  const live = (window: Window) => window.page.locator('[data-testid="connection"][data-state="live"]').waitFor(WAIT);

  /** Writes a message in `window` the way a person does, and waits until the window shows it. */
  const send = async (window: Window, text: string) => {
    await window.page.getByLabel("Message").fill(text);
    await window.page.getByRole("button", { name: "Send" }).click();
    await shows(window, text);
  };

  const shows = (window: Window, text: string) =>
    window.page.getByTestId("messages").getByText(text, { exact: true }).waitFor(WAIT);

  /** The changes the window lists: [version, page load, resync] of each, oldest first. */
  const changes = (window: Window) =>
    window.page
      .getByTestId("changes")
      .locator("li")
      .evaluateAll((items) =>
        items.map((li) => {
          // Runs in the page; the tests' TypeScript has no DOM types, hence the structural cast.
          const data = (li as unknown as { dataset: Record<string, string | undefined> }).dataset;
          return { version: Number(data.version), load: Number(data.load), resync: data.resync === "true" };
        }),
      );

  /** Waits until the server holds exactly `count` sessionContextChanged subscriptions (its own gauge). */
  const followers = (count: number) =>
    pollUntil(
      `${count} sessionContextChanged subscriptions on the server`,
      async () => {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        return valueOf(parseMetrics(text), "graphql_subscriptions_active", { field: "sessionContextChanged" });
      },
      (active) => active === count,
      { timeoutMs: 20_000 },
    );

  const versions = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  describe("two windows on one session", () => {
    it("shows a write made in one window in the other, as it happens", async () => {
      const tenant = freshTenant();
      const a = await open(tenant, "A", "s1");
      const b = await open(tenant, "B", "s1");
      await followers(2);

      await send(a, "hello from A");
      await shows(b, "hello from A");
      await send(b, "and hello from B");
      await shows(a, "and hello from B");

      for (const window of [a, b]) {
        expect((await changes(window)).map((c) => c.version)).toEqual([1, 2]);
        expect(await window.page.getByTestId("version").textContent()).toBe("2");
        expect(window.problems).toEqual([]);
      }
    });
  });

  describe("a reload", () => {
    it("resumes where the window left off: what was written meanwhile is replayed, nothing missed, nothing twice", async () => {
      const tenant = freshTenant();
      const a = await open(tenant, "A", "s1");
      const b = await open(tenant, "B", "s1");
      await followers(2);
      await send(a, "one");
      await send(a, "two");
      await shows(b, "two");

      // Reload B, and hold the new page's script until A has written three more times: B's old page is gone (its
      // subscription with it) and the new one has not subscribed yet, so B can only get them by resuming.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let scriptAsked!: () => void;
      const reloaded = new Promise<void>((resolve) => (scriptAsked = resolve));
      await b.page.route("**/assets/*.js", async (route) => {
        scriptAsked();
        await held;
        await route.continue();
      });
      const reloading = b.page.reload();
      await reloaded;
      await followers(1);
      await send(a, "three");
      await send(a, "four");
      await send(a, "five");
      release();
      await reloading;
      await b.page.unroute("**/assets/*.js");

      await live(b);
      for (const text of ["one", "two", "three", "four", "five"]) await shows(b, text);
      // Then live again, both ways.
      await followers(2);
      await send(b, "six");
      await shows(a, "six");

      const seen = await changes(b);
      expect(seen.map((c) => c.version)).toEqual(versions(1, 6));
      expect(seen.filter((c) => c.load === 1).map((c) => c.version)).toEqual([1, 2]);
      expect(seen.filter((c) => c.load === 2).map((c) => c.version)).toEqual([3, 4, 5, 6]);
      expect(seen.some((c) => c.resync)).toBe(false);
      expect(await b.page.getByTestId("check").textContent()).toBe("v1–v6: none missing, none twice");
      expect(await b.page.getByTestId("version").textContent()).toBe("6");
      expect(a.problems).toEqual([]);
      expect(b.problems).toEqual([]);

      const picture = await sideBySide(a.page, b.page);
      expect(picture.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    });
  });

  describe("a token the server refuses", () => {
    it("is shown as such, with the way out", async () => {
      const context = await browser.newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      windows.push({ page, context, problems: [] });
      const token = await mintToken({ tenant_id: freshTenant(), sub: "u1" }, { secret: `not-${TEST_JWT_SECRET}` });
      await page.goto(`${site.origin}/?session=s1&device=A#token=${token}`);
      // The 401 reaches the page (CORS headers on the refusal too), which tells a refusal from an outage.
      await page.getByTestId("refused").waitFor(WAIT);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByLabel("Token").waitFor(WAIT);
    });
  });

  /** Screenshots of both windows, put side by side in one picture (written to .test-build/screenshots/). */
  const sideBySide = async (left: Page, right: Page): Promise<Buffer> => {
    const shots = await Promise.all([left.screenshot(), right.screenshot()]);
    const gap = 16;
    const sheet = await browser.newPage({
      viewport: { width: 2 * VIEWPORT.width + 3 * gap, height: VIEWPORT.height + 2 * gap },
    });
    try {
      const images = shots.map((png) => `<img src="data:image/png;base64,${png.toString("base64")}">`).join("");
      await sheet.setContent(
        `<body style="margin:0;display:flex;gap:${gap}px;padding:${gap}px;background:#30343c">${images}</body>`,
      );
      const picture = await sheet.screenshot();
      mkdirSync(SCREENSHOTS, { recursive: true });
      writeFileSync(join(SCREENSHOTS, "web-example.png"), picture);
      return picture;
    } finally {
      await sheet.close();
    }
  };
});
