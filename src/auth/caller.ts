import { ForbiddenError } from "../errors/errors";
import { assertValidId } from "../sessions/ids";

export type Role = "service" | "admin";

/** Who is calling: always from the request's credentials, never from GraphQL arguments. */
export class Caller {
  constructor(
    readonly tenantId: string,
    readonly userId: string,
    readonly roles: readonly string[],
    /** When the credentials stop being valid (a JWT's `exp`, epoch ms); undefined: they do not expire. */
    readonly expiresAt?: number,
  ) {}

  /** `service` may act on any user of its own tenant; `admin` is `service` and more. */
  get actsForOthers(): boolean {
    return this.roles.includes("service") || this.roles.includes("admin");
  }

  hasRole(role: Role): boolean {
    return role === "service" ? this.actsForOthers : this.roles.includes(role);
  }

  /**
   * The user a request acts on: `userId` when given, else the caller. A caller without the `service` or `admin`
   * role may only name itself (FORBIDDEN otherwise). The tenant is always the caller's own.
   */
  actingFor(userId: string | null | undefined, field = "userId"): string {
    if (userId === undefined || userId === null) return this.userId;
    assertValidId(userId, field);
    if (userId !== this.userId && !this.actsForOthers) {
      throw new ForbiddenError("only the service and admin roles may act on another user's sessions");
    }
    return userId;
  }
}
