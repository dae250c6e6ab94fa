import { execute, parse } from "graphql";
import { buildSessionSchema } from "./schema";
import { SessionService } from "./sessions/session.service";
import { createMemoryBackend } from "./store/backend";

/**
 * The SDL that `_service { sdl }` publishes to a federation router: exactly what is checked in as
 * `schema.graphql`. Built from the type-graphql classes; the store behind it is never touched.
 */
export async function printPublishedSchema(): Promise<string> {
  const backend = createMemoryBackend();
  try {
    const schema = await buildSessionSchema({
      sessionService: new SessionService({ maxTtlSeconds: 1, maxContextBytes: 1 }),
      backend,
      settingsBounds: { maxTtlSeconds: 1, cleanupMinIntervalSeconds: 1 },
    });
    const result = await execute({ schema, document: parse("{ _service { sdl } }") });
    const sdl = (result.data as { _service: { sdl: string } } | null)?._service.sdl;
    if (!sdl) throw new Error(`could not print the schema: ${JSON.stringify(result.errors)}`);
    return sdl.endsWith("\n") ? sdl : `${sdl}\n`;
  } finally {
    await backend.sessions.close();
  }
}
