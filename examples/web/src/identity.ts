/** Who the page acts as: the JWT it sends, and the claims it shows (read, not verified: the server verifies). */
export interface Identity {
  readonly token: string;
  readonly tenantId: string;
  readonly userId: string;
  /** When the token expires (ms since the epoch), if it says. */
  readonly expiresAt?: number;
}

const TOKEN_KEY = "scs-web:token";

/**
 * The token to use: one given in the URL's fragment (`#token=…`, which the browser never sends to a server) is
 * kept in localStorage and removed from the address bar; otherwise the one kept before. Null when there is none or
 * it is not a JWT with `tenant_id` and `sub`.
 */
export function currentIdentity(): Identity | null {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? identityOf(token) : null;
}

/** Keeps `token` for this browser (every tab of the origin); false when it is not a usable JWT. */
export function signIn(token: string): boolean {
  if (!identityOf(token.trim())) return false;
  localStorage.setItem(TOKEN_KEY, token.trim());
  return true;
}

export function signOut(): void {
  localStorage.removeItem(TOKEN_KEY);
}

function identityOf(token: string): Identity | null {
  try {
    const payload = token.split(".")[1];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as {
      tenant_id?: unknown;
      sub?: unknown;
      exp?: unknown;
    };
    if (typeof claims.tenant_id !== "string" || typeof claims.sub !== "string") return null;
    return {
      token,
      tenantId: claims.tenant_id,
      userId: claims.sub,
      expiresAt: typeof claims.exp === "number" ? claims.exp * 1000 : undefined,
    };
  } catch {
    return null;
  }
}
