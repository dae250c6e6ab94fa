import { readFileSync } from "node:fs";
import { join } from "node:path";
import { printPublishedSchema } from "../../src/published-schema";
import { startTestServer, type TestServer } from "../helpers/test-server";

const SCHEMA_FILE = join(__dirname, "..", "..", "schema.graphql");

/** Why the checked-in schema.graphql differs from the generated SDL, or undefined when it is up to date. */
function staleSchemaProblem(generated: string, checkedIn: string): string | undefined {
  if (generated === checkedIn) return undefined;
  const generatedLines = generated.split("\n");
  const checkedInLines = checkedIn.split("\n");
  const line = generatedLines.findIndex((text, i) => text !== checkedInLines[i]);
  const at = line === -1 ? checkedInLines.length : line;
  return (
    `schema.graphql is stale: run \`npm run schema\` and commit the result. First difference at line ${at + 1}:\n` +
    `  schema.graphql: ${JSON.stringify(checkedInLines[at] ?? "<end of file>")}\n` +
    `  generated:      ${JSON.stringify(generatedLines[at] ?? "<end of file>")}`
  );
}

describe("schema.graphql is generated from the type-graphql classes and checked in", () => {
  it("equals what printPublishedSchema() generates now", async () => {
    const checkedIn = readFileSync(SCHEMA_FILE, "utf8");

    const generated = await printPublishedSchema();

    expect(staleSchemaProblem(generated, checkedIn)).toBeUndefined();
  });

  it("is reported as stale, with the command that fixes it, when it differs", async () => {
    const generated = await printPublishedSchema();
    const edited = generated.replace("version: Int!", "version: Int");

    const problem = staleSchemaProblem(generated, edited);

    expect(problem).toContain("run `npm run schema`");
    expect(problem).toContain('"  version: Int"');
  });
});

describe("_service { sdl } publishes schema.graphql", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers the checked-in SDL to an anonymous router", async () => {
    const checkedIn = readFileSync(SCHEMA_FILE, "utf8");

    const response = await server.post<{ _service: { sdl: string } }>({ query: "{ _service { sdl } }" });

    expect(response.status).toBe(200);
    expect(response.body.data?._service.sdl.trimEnd()).toBe(checkedIn.trimEnd());
  });
});
