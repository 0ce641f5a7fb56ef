import type { SystemRole } from "../generated/prisma/client.js";

/** What a credential may do. A user session has read and write, and admin when the user is an admin. */
export type Scope = "read" | "write" | "admin";

interface Principal {
  userId: string;
  role: SystemRole;
  scopes: ReadonlySet<Scope>;
}

export type Viewer =
  | { kind: "anonymous" }
  | (Principal & { kind: "session"; sessionId: string; via: "bearer" | "cookie" })
  | (Principal & { kind: "apiKey"; apiKeyId: string; workspaceId: string | null });

export const anonymous: Viewer = { kind: "anonymous" };

/** Effective scopes: what the credential grants AND what the user's role allows. */
export function effectiveScopes(role: SystemRole, granted: Iterable<Scope>): Set<Scope> {
  const scopes = new Set<Scope>();
  for (const scope of granted) {
    // A broader scope includes the narrower ones.
    if (scope === "admin") scopes.add("admin").add("write").add("read");
    if (scope === "write") scopes.add("write").add("read");
    if (scope === "read") scopes.add("read");
  }
  // Workspace roles (next issue) will decide workspace admin rights; system admin needs the role.
  if (role !== "ADMIN") scopes.delete("admin");
  return scopes;
}

export const sessionScopes = (role: SystemRole) =>
  effectiveScopes(role, role === "ADMIN" ? ["admin"] : ["write"]);
