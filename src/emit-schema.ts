import "reflect-metadata";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { printPublishedSchema } from "./published-schema";

/** `npm run schema`: writes the published SDL to schema.graphql at the top of the project. */
async function main(): Promise<void> {
  const target = join(__dirname, "..", "schema.graphql");
  writeFileSync(target, await printPublishedSchema());
  process.stdout.write(`${JSON.stringify({ level: "info", msg: "schema written", file: target })}\n`);
}

void main();
