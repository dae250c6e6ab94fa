import pino from "pino";
import { CleanupScheduler } from "../../src/cleanup/cleanup-scheduler";
import { createMemoryBackend } from "../../src/store/backend";

/**
 * The cleanup cadence on the embedded store, with a clock the test moves: runs stay on the tenant's grid, and the
 * grid points that pass while no replica runs collapse into one run, after which the grid goes on as before.
 */
describe("scheduled cleanup cadence", () => {
  const INTERVAL_S = 60;
  const INTERVAL_MS = INTERVAL_S * 1000;
  let clock = 1_700_000_000_000;
  const backend = createMemoryBackend({ now: () => clock });
  const scheduler = new CleanupScheduler({ ...backend, logger: pino({ level: "silent" }), tickMs: 1000 });

  afterAll(() => backend.sessions.close());

  it("runs once per grid point, and once for all the grid points an outage missed", async () => {
    const tenant = "tenant-cadence";
    const first = (await backend.settings.update(tenant, { cleanupIntervalSeconds: INTERVAL_S })).nextCleanupAt;
    const grid = first!.getTime();

    clock = grid; // due exactly now
    expect(await scheduler.runDue()).toBe(1);
    expect(await backend.schedule.nextRun(tenant)).toBe(grid + INTERVAL_MS);
    expect(await scheduler.runDue()).toBe(0); // claimed: not again

    clock = grid + INTERVAL_MS + 500; // a little late: the next stays on the grid
    expect(await scheduler.runDue()).toBe(1);
    expect(await backend.schedule.nextRun(tenant)).toBe(grid + 2 * INTERVAL_MS);

    clock = grid + 5 * INTERVAL_MS + 1; // an outage: grid points 2, 3, 4 and 5 passed without a run
    expect(await scheduler.runDue()).toBe(1); // one run for all of them
    expect(await scheduler.runDue()).toBe(0);
    expect(await backend.schedule.nextRun(tenant)).toBe(grid + 6 * INTERVAL_MS); // the grid goes on
  });
});
