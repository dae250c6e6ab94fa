import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";

// A request id a client sends is echoed only when it is short and printable, so it is safe in logs and headers.
const SAFE_REQUEST_ID = /^[\w.:@-]{1,128}$/;

/** The id for this request: the caller's `x-request-id` when usable, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}
