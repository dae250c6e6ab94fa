import Negotiator from "negotiator";

// The media types Apollo Server negotiates a single result between (its MEDIA_TYPES, not exported), in its order.
const APPLICATION_JSON = "application/json; charset=utf-8";
const GRAPHQL_RESPONSE_JSON = "application/graphql-response+json; charset=utf-8";
const GRAPHQL_CALLBACK_JSON = "application/json; callbackSpec=1.0; charset=utf-8";
const SINGLE_RESULT_TYPES = [APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, GRAPHQL_CALLBACK_JSON];

/** Distinct `accept` values remembered: clients send a handful; a client making up new ones only costs a clear. */
const MAX_REMEMBERED = 256;
const remembered = new Map<string, string | null>();

/**
 * The content type Apollo Server would answer a single result with, negotiated exactly as it does (the same
 * library, the same candidates; no `accept`: JSON), or null when that is not one of the two JSON types the lane
 * writes (nothing acceptable: Apollo answers 406; the subscription-callback type: Apollo's business).
 */
export function singleResultContentType(accept: string | undefined): string | null {
  if (!accept) return APPLICATION_JSON;
  let type = remembered.get(accept);
  if (type === undefined) {
    const preferred = new Negotiator({ headers: { accept } }).mediaType(SINGLE_RESULT_TYPES);
    type = preferred === APPLICATION_JSON || preferred === GRAPHQL_RESPONSE_JSON ? preferred : null;
    if (remembered.size >= MAX_REMEMBERED) remembered.clear();
    remembered.set(accept, type);
  }
  return type;
}
