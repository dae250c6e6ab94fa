import { startRedis, type RedisProcess } from "../helpers/redis-server";
import { freshTenant, gatewayHeaders, startTestServer, type TestServer } from "../helpers/test-server";
import { mintToken, TEST_JWT_SECRET } from "../helpers/tokens";

describe("smoke", () => {
  let redis: RedisProcess;
  let server: TestServer;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startTestServer({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await server.close();
    await redis.stop();
  });

  it("stores and reads back", async () => {
    const tenant = freshTenant();
    const res = await server.post(
      { query: `mutation { storeSessionContext(input: {sessionId: "s", conversationState: {a: 1}}) { version } }` },
      gatewayHeaders(tenant, "u"),
    );
    expect(res.body).toEqual({ data: { storeSessionContext: { version: 1 } } });
  });

  it("mints a token", async () => {
    expect(await mintToken({ tenant_id: "t", sub: "u" }, { secret: TEST_JWT_SECRET })).toMatch(/^ey/);
  });
});
